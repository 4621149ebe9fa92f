package scenario

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// TestParseKnobs checks what config gvisor|kernel, needs, set keepalive,
// took, field conditions, refused and after parse into.
func TestParseKnobs(t *testing.T) {
	src := `config gvisor sack off
config gvisor keepalive-idle 2s
config kernel tcp_rfc1337 1
config kernel net.ipv4.tcp_fin_timeout 5s
config kernel somaxconn 16
config kernel client
needs exact-segments "one RST"
server listen 9527
client connect server:9527
client set keepalive on
client close               expect ok took 2s..3s
server read                expect took 0..10ms
expect client sent F. seq 4 ack >=1 win !=0 len 0
expect server refused R reason ~ "challenge" after client sent F.
expect client sent . before server refused R
`
	s, err := Parse("k.lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Knob{
		{Stack: "gvisor", Key: "sack", Value: "off"},
		{Stack: "gvisor", Key: "keepalive-idle", Value: "2s"},
		{Stack: "kernel", Key: "net.ipv4.tcp_rfc1337", Value: "1"},
		{Stack: "kernel", Key: "net.ipv4.tcp_fin_timeout", Value: "5"},
		{Stack: "kernel", Key: "net.core.somaxconn", Value: "16"},
	}
	if len(s.Knobs) != len(want) {
		t.Fatalf("Knobs = %+v", s.Knobs)
	}
	for i, k := range s.Knobs {
		if k.Stack != want[i].Stack || k.Key != want[i].Key || k.Value != want[i].Value || k.Pos.Line != i+1 {
			t.Errorf("Knobs[%d] = %+v, want %+v at line %d", i, k, want[i], i+1)
		}
	}
	if s.Kernel != "client" || s.ExactSegments != "one RST" {
		t.Errorf("Kernel %q ExactSegments %q", s.Kernel, s.ExactSegments)
	}
	if got := s.GVisorOptions(); len(got) != 2 || got[0] != (stack.Option{Key: "sack", Value: "off"}) {
		t.Errorf("GVisorOptions = %v", got)
	}
	if got := s.KernelSettings(); len(got) != 3 || got[2] != [2]string{"net.core.somaxconn", "16"} {
		t.Errorf("KernelSettings = %v", got)
	}
	if c := s.Steps[2].(*Call); c.Opt != "keepalive" || c.Val != "on" {
		t.Errorf("set keepalive = %+v", c)
	}
	if c := s.Steps[3].(*Call); !c.Expect.OK || c.Expect.Took == nil || *c.Expect.Took != (Span{2 * time.Second, 3 * time.Second}) {
		t.Errorf("expect ok took = %+v", c.Expect)
	}
	if c := s.Steps[4].(*Call); c.Expect.OK || c.Expect.Bytes != -1 || *c.Expect.Took != (Span{0, 10 * time.Millisecond}) {
		t.Errorf("expect took alone = %+v", c.Expect)
	}
	e := s.Steps[5].(*Expect)
	wantF := []FieldCond{{"seq", "=", 4}, {"ack", ">=", 1}, {"win", "!=", 0}, {"len", "=", 0}}
	if len(e.Fields) != 4 {
		t.Fatalf("Fields = %+v", e.Fields)
	}
	for i := range wantF {
		if e.Fields[i] != wantF[i] {
			t.Errorf("Fields[%d] = %+v, want %+v", i, e.Fields[i], wantF[i])
		}
	}
	if e := s.Steps[6].(*Expect); e.What != "refused" || e.Reason != "challenge" || e.After == nil || e.After.Flags != "F." {
		t.Errorf("refused after = %+v", e)
	}
	if e := s.Steps[7].(*Expect); e.Before == nil || e.Before.What != "refused" {
		t.Errorf("before refused = %+v", e)
	}
}

// TestParseKnobErrors checks the messages, with file:line:col, of bad
// settings, requirements and expectations.
func TestParseKnobErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"config gvisor sack maybe", `x.lab:1:20: gVisor setting sack: want on or off, found "maybe"`},
		{"config gvisor sackk on", `x.lab:1:15: unknown gVisor setting "sackk"; valid ones: congestion-control, keepalive-count, keepalive-idle, keepalive-interval, max-retries, moderate-receive-buffer, nagle, rack, rto-max, rto-min, sack, syn-cookies, syn-retries, tw-reuse; did you mean "sack"?`},
		{"config gvisor timestamps off", `x.lab:1:15: gVisor has no setting "timestamps": gVisor always offers TCP timestamps (RFC 7323) and uses them when the peer does`},
		{"config gvisor congestion-control bbr", `x.lab:1:34: gVisor setting congestion-control: want reno or cubic, found "bbr"`},
		{"config gvisor rto-min -1s", `x.lab:1:23: gVisor setting rto-min: want a duration such as 200ms or 5s (more than 0, at most 24h), found "-1s"`},
		{"config gvisor", `x.lab:1:14: expected a gVisor setting (congestion-control, keepalive-count, keepalive-idle, keepalive-interval, max-retries, moderate-receive-buffer, nagle, rack, rto-max, rto-min, sack, syn-cookies, syn-retries, tw-reuse)`},
		{"config gvisor sack", `x.lab:1:19: expected a value for sack`},
		{"config gvisor rto-max 100ms\nclient close", `x.lab:1:1: gVisor's rto-min 200ms is above its rto-max 100ms (defaults 200ms and 120s)`},
		{"config gvisor rto-max 1s\nconfig gvisor rto-min 2s\nclient close", `x.lab:2:1: gVisor's rto-min 2s is above its rto-max 1s (defaults 200ms and 120s)`},
		{"config gvisor sack on\nconfig gvisor sack off", `x.lab:2:15: gvisor sack set twice (first at line 1)`},
		{"config kernel tcp_rfc1338 1", `x.lab:1:15: unknown kernel setting "tcp_rfc1338"; valid ones: somaxconn, tcp_abort_on_overflow, tcp_fin_timeout, tcp_keepalive_intvl, tcp_keepalive_probes, tcp_keepalive_time, tcp_max_syn_backlog, tcp_orphan_retries, tcp_retries2, tcp_rfc1337, tcp_sack, tcp_syncookies, tcp_timestamps, tcp_tw_reuse, tcp_window_scaling; did you mean "tcp_rfc1337"?`},
		{"config kernel tcp_rfc1337 2", `x.lab:1:27: tcp_rfc1337: 2 out of range: want 0-1`},
		{"config kernel tcp_rfc1337 yes", `x.lab:1:27: tcp_rfc1337: want a number 0-1, found "yes"`},
		{"config kernel tcp_fin_timeout 1500ms", `x.lab:1:31: tcp_fin_timeout: 1500ms is not a whole number of seconds (the kernel counts in seconds)`},
		{"config kernel net.ipv4.ip_forward 1", `x.lab:1:15: unknown kernel setting "net.ipv4.ip_forward"; valid ones: somaxconn, tcp_abort_on_overflow, tcp_fin_timeout, tcp_keepalive_intvl, tcp_keepalive_probes, tcp_keepalive_time, tcp_max_syn_backlog, tcp_orphan_retries, tcp_retries2, tcp_rfc1337, tcp_sack, tcp_syncookies, tcp_timestamps, tcp_tw_reuse, tcp_window_scaling`},
		{"needs luck", `x.lab:1:7: expected a requirement (exact-segments), found "luck"`},
		{"needs exact-segments", `x.lab:1:21: expected why the story depends on exact segment counts (a "quoted string")`},
		{"needs exact-segments \"a\"\nneeds exact-segments \"b\"", `x.lab:2:1: needs exact-segments given twice`},
		{"client set keepalive yes", `x.lab:1:22: expected keepalive on or off, found "yes"`},
		{"client close expect took 3s", `x.lab:1:26: expected a range of durations D1..D2 such as 1s..3s or 0..10ms, found "3s"`},
		{"client close expect took 3s..1s", `x.lab:1:26: empty range "3s..1s": 3s is more than 1s`},
		{"client close expect took 1x..2s", `x.lab:1:26: expected a duration (a duration such as 5s or 200ms, from 0 to 24h), found "1x" in "1x..2s" (a range of durations D1..D2 such as 1s..3s or 0..10ms)`},
		{"client close expect ok took", `x.lab:1:28: expected a range of durations D1..D2 such as 1s..3s or 0..10ms`},
		{"expect client sent F. seq", `x.lab:1:26: expected a number for seq (e.g. seq 4, seq >0, seq <=100)`},
		{"expect client sent F. win 70000", `x.lab:1:27: win 70000 out of range: want 0-65535`},
		{"expect client sent F. seq 1 seq 2", `x.lab:1:29: seq given twice`},
		{"expect client sent F. len >x", `x.lab:1:27: expected len (a number 0-65535), found "x"`},
		{"expect client refused", `x.lab:1:22: expected TCP flags in tcpdump notation (S, S., ., P., F., R, R.)`},
		{"expect client sent F. after client state CLOSED", `x.lab:1:48: "after" needs a segment: HOST sent|received|refused FLAGS`},
		{"expect client sent F. after", `x.lab:1:28: expected a host (client, server, relay), found end of line`},
	} {
		_, err := Parse("x.lab", strings.NewReader(tc.src))
		if err == nil {
			t.Errorf("Parse(%q) = nil error, want %q", tc.src, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q) error:\n got %s\nwant %s", tc.src, err, tc.want)
		}
	}
}

// simulate runs src on the memory wire in virtual time.
func simulate(t *testing.T, src string, cfg SimConfig) (*Result, []trace.Event) {
	t.Helper()
	s, err := Parse("t.lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg.QuietWindow = 10 * time.Millisecond
	res, events, err := Simulate(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res, events
}

func failures(res *Result) string {
	var b strings.Builder
	for _, f := range res.Failures {
		b.WriteString(f.Error() + "\n")
	}
	return b.String()
}

// TestRunFieldsAndTook runs the new expectations on the memory wire: the
// passing forms hold, and each failing form fails with its message.
func TestRunFieldsAndTook(t *testing.T) {
	const setup = `config gvisor sack off
config kernel tcp_rfc1337 1
server listen 9527
client connect server:9527
server accept
client write "aaa"
server read                expect "aaa"
`
	res, events := simulate(t, setup+`inject server R seq 1000
wait quiet
client set linger 2
wire drop server . count 20
client close               expect ok took 2s..2100ms
server read                expect took 0..1ms
expect client sent S seq 0 win >0
expect client sent . seq 1 ack 1 len 0
expect client sent P. seq 1 len 3
expect client sent F. seq 4 ack 1
expect server refused R reason ~ "challenge"
expect server refused R after client sent P.
expect server sent . reason ~ "challenge" after server refused R
expect server refused . count 0
`, SimConfig{})
	if !res.OK() {
		t.Errorf("failures:\n%s", failures(res))
	}
	if res.Checked != 11 {
		t.Errorf("Checked = %d, want 11", res.Checked)
	}
	var notes []string
	for _, e := range events {
		if e.Kind == trace.Note && strings.HasPrefix(e.Text, "config ") {
			notes = append(notes, e.Text)
		}
	}
	wantNotes := []string{
		"config gvisor sack off: set on the gVisor stack of client and server",
		"config kernel net.ipv4.tcp_rfc1337 = 1: not applied, no Linux kernel plays a side in this run (--kernel client|server)",
	}
	if strings.Join(notes, "\n") != strings.Join(wantNotes, "\n") {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(notes, "\n"), strings.Join(wantNotes, "\n"))
	}

	res, _ = simulate(t, setup+`client set linger 2
wire drop server . count 20
client close               expect ok took 0..1s
expect client sent P. seq 2
expect client sent P. len >3
expect client sent . after client sent F.
expect server refused R
expect client sent F. before client sent P.
`, SimConfig{})
	got := failures(res)
	for _, want := range []string{
		`t.lab:10:1: client close               expect ok took 0..1s: took 2s, want 0..1s`,
		`t.lab:11:1: expect client sent P. seq 2: client never sent [P.] with seq 2; with these flags: [P.] seq 1 ack 1 win 4096 len 3`,
		`t.lab:12:1: expect client sent P. len >3: client never sent [P.] with len >3; with these flags: [P.] seq 1 ack 1 win 4096 len 3`,
		`t.lab:13:1: expect client sent . after client sent F.: client sent [.] came before client sent [F.]`,
		`t.lab:14:1: expect server refused R: server never refused [R]`,
		`t.lab:15:1: expect client sent F. before client sent P.: client sent [F.] came after client sent [P.]`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("failures lack\n%s\ngot:\n%s", want, got)
		}
	}
}

// TestRunKnobsApplied checks that gVisor settings reach the stacks: with
// sack off the SYN offers no SACK, and keepalive timers make an idle
// connection with a silent peer time out.
func TestRunKnobsApplied(t *testing.T) {
	res, events := simulate(t, `config gvisor keepalive-idle 1s
config gvisor keepalive-interval 500ms
config gvisor keepalive-count 2
server listen 9527
client connect server:9527
server accept
client set keepalive on
wire drop server . count 5
sleep 3s
expect client sent . seq 0 count 2
client read                expect error ETIMEDOUT
`, SimConfig{KeepPackets: true})
	if !res.OK() {
		t.Errorf("failures:\n%s", failures(res))
	}
	var probes []time.Duration
	for _, e := range events {
		if e.Kind == trace.Segment && e.Host == "client" && e.Dir == "out" && e.Flags == "." && e.Len == 0 && e.T > 100*time.Millisecond {
			probes = append(probes, e.T)
		}
	}
	if len(probes) != 2 || probes[0] < time.Second || probes[1]-probes[0] != 500*time.Millisecond {
		t.Errorf("keepalive probes at %v, want two, the first after 1s idle, 500ms apart", probes)
	}
	for _, sack := range []string{"on", "off"} {
		_, events := simulate(t, "config gvisor sack "+sack+"\nserver listen 9527\nclient connect server:9527\n", SimConfig{KeepPackets: true})
		for _, e := range events {
			if e.Kind == trace.Segment && e.Flags == "S" {
				// The SACK-permitted option: kind 4, length 2.
				has := bytes.Contains(e.Packet[40:], []byte{4, 2})
				if has != (sack == "on") {
					t.Errorf("sack %s: SYN options % x", sack, e.Packet[40:])
				}
			}
		}
	}
}

// TestSeededLossRepeats runs a scenario under random loss twice with the
// same seed: the traces are byte-identical, and the losses are in them.
func TestSeededLossRepeats(t *testing.T) {
	n, err := ParseNet("loss 20%")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for range 2 {
		s, err := Builtin("fin-retransmit-random-loss")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, events, err := Simulate(ctx, s, SimConfig{Seed: 7, Net: n, QuietWindow: 10 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() {
			t.Errorf("failures:\n%s", failures(res))
		}
		var b strings.Builder
		for _, e := range events {
			j, _ := e.MarshalJSON()
			b.Write(j)
			b.WriteByte('\n')
		}
		texts = append(texts, b.String())
	}
	if texts[0] != texts[1] {
		t.Errorf("two runs with seed 7 differ")
	}
	if !strings.Contains(texts[0], "lost [") {
		t.Errorf("the trace notes no lost segment:\n%s", texts[0])
	}
}

// TestRunWithin checks "within D": an expectation that holds only once a
// lost FIN has been retransmitted waits for it on the lab's clock (and a
// note says how long), and one whose D is too short fails saying so.
func TestRunWithin(t *testing.T) {
	const setup = "server listen 9527\nclient connect server:9527\nserver accept\nwire drop client F.\nclient close\n"
	res, events := simulate(t, setup+"expect client final FIN-WAIT-2 within 2s\nexpect server received F. within 1s\n", SimConfig{})
	if !res.OK() {
		t.Errorf("failures:\n%s", failures(res))
	}
	var notes []string
	for _, e := range events {
		if e.Kind == trace.Note && strings.Contains(e.Text, "held after waiting") {
			notes = append(notes, e.Text)
		}
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "expect client final FIN-WAIT-2 within 2s: held after waiting 2") {
		t.Errorf("notes %q, want one for the FIN-WAIT-2 expectation (the retransmission comes after about 200ms)", notes)
	}
	res, _ = simulate(t, setup+"expect client final FIN-WAIT-2 within 50ms\n", SimConfig{})
	if got := failures(res); !strings.Contains(got, "t.lab:6:1: expect client final FIN-WAIT-2 within 50ms: client is in FIN-WAIT-1, want FIN-WAIT-2 (after waiting 50ms)") {
		t.Errorf("failures:\n%s", got)
	}
	for _, tc := range []struct{ src, want string }{
		{"expect client state CLOSED never within 1s", `x.lab:1:41: within needs something to wait for: not with never, and more than 0`},
		{"expect client final CLOSED within", `x.lab:1:34: expected how long the expectation may wait (a duration such as 5s or 200ms, from 0 to 24h)`},
		{"expect client sent F. within 1s within 2s", `x.lab:1:40: within given twice`},
	} {
		if _, err := Parse("x.lab", strings.NewReader(tc.src)); err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %s", tc.src, err, tc.want)
		}
	}
}
