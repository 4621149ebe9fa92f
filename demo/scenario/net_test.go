package scenario

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

func TestParseNet(t *testing.T) {
	both := []stack.Direction{stack.ClientToServer, stack.ServerToClient}
	for _, tc := range []struct {
		src    string
		dirs   []stack.Direction
		clear  bool
		cond   stack.Conditions
		fields []string
	}{
		{"net loss 5%", both, false, stack.Conditions{Loss: 5}, []string{"loss"}},
		{"net client->server loss 0.5% delay 100ms jitter 10ms", []stack.Direction{stack.ClientToServer}, false,
			stack.Conditions{Loss: 0.5, Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond}, []string{"loss", "delay", "jitter"}},
		{"net server->client reorder 25% delay 10ms duplicate 1% corrupt 100% rate 2mbit", []stack.Direction{stack.ServerToClient}, false,
			stack.Conditions{Reorder: 25, Delay: 10 * time.Millisecond, Duplicate: 1, Corrupt: 100, Rate: 2_000_000}, []string{"reorder", "delay", "duplicate", "corrupt", "rate"}},
		{"net clear", both, true, stack.Conditions{}, nil},
		{"net server->client clear loss 1%", []stack.Direction{stack.ServerToClient}, true, stack.Conditions{Loss: 1}, []string{"loss"}},
		{"net rate 1kbit", both, false, stack.Conditions{Rate: 1000}, []string{"rate"}},
		{"net rate 100gbit loss 0%", both, false, stack.Conditions{Rate: 100e9}, []string{"rate", "loss"}},
	} {
		s, err := Parse("x.lab", strings.NewReader(tc.src))
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.src, err)
			continue
		}
		n := s.Steps[0].(*Net)
		if !reflect.DeepEqual(n.Dirs, tc.dirs) || n.Clear != tc.clear || n.Cond != tc.cond || !reflect.DeepEqual(n.Fields, tc.fields) {
			t.Errorf("Parse(%q) = dirs %v clear %v %+v %v, want %v %v %+v %v", tc.src, n.Dirs, n.Clear, n.Cond, n.Fields, tc.dirs, tc.clear, tc.cond, tc.fields)
		}
		if !s.UsesNet() {
			t.Errorf("Parse(%q).UsesNet() = false", tc.src)
		}
	}
}

func TestParseNetErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"net", `x.lab:1:4: expected network conditions (loss, delay, jitter, reorder, duplicate, corrupt, rate, clear), found end of line`},
		{"net client->server", `x.lab:1:19: expected network conditions`},
		{"net lose 5%", `x.lab:1:5: expected a network condition (loss, delay, jitter, reorder, duplicate, corrupt, rate, clear), found "lose"; did you mean "loss"?`},
		{"net loss 120%", `x.lab:1:10: loss 120% out of range: want 0%-100%`},
		{"net loss -1%", `x.lab:1:10: loss -1% out of range: want 0%-100%`},
		{"net loss 5", `x.lab:1:10: expected loss as a percentage (e.g. 5% or 0.5%, 0%-100%), found "5"`},
		{"net duplicate NaN%", `x.lab:1:15: expected duplicate as a percentage`},
		{"net delay 11s", `x.lab:1:11: delay 11s out of range: want 0-10s`},
		{"net delay 100ms jitter -1ms", `x.lab:1:24: jitter -1ms out of range: want 0-10s`},
		{"net delay soon", `x.lab:1:11: expected delay (a duration such as 100ms, from 0 to 10s), found "soon"`},
		{"net rate 999bit", `x.lab:1:10: rate 999bit out of range: want 1kbit-100gbit`},
		{"net rate 101gbit", `x.lab:1:10: rate 101gbit out of range: want 1kbit-100gbit`},
		{"net rate 99999999999999999999gbit", `x.lab:1:10: rate 99999999999999999999gbit out of range: want 1kbit-100gbit`},
		{"net rate 1mbps", `x.lab:1:10: expected a rate (e.g. 1mbit; units bit, kbit, mbit, gbit; 1kbit-100gbit), found "1mbps"`},
		{"net loss 1% loss 2%", `x.lab:1:13: loss given twice on one line`},
		{"net loss 1% clear", `x.lab:1:13: clear comes first, once`},
		{"net loss 1% client->server", `x.lab:1:13: expected a direction client->server or server->client (first, after net), found "client->server"`},
		{"net client->client loss 1%", `x.lab:1:5: expected a direction client->server or server->client (first, after net), found "client->client"`},
	} {
		_, err := Parse("x.lab", strings.NewReader(tc.src))
		if err == nil {
			t.Errorf("Parse(%q) = nil error, want %q", tc.src, tc.want)
			continue
		}
		if _, ok := err.(*Error); !ok || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error:\n got %s\nwant %s", tc.src, err, tc.want)
		}
	}
}

func TestParseNetSpec(t *testing.T) {
	n, err := ParseNet("client->server loss 5% delay 20ms")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Apply(stack.Conditions{}); got != (stack.Conditions{Loss: 5, Delay: 20 * time.Millisecond}) || len(n.Dirs) != 1 {
		t.Errorf("ParseNet = %+v %v", got, n.Dirs)
	}
	_, err = ParseNet("loss 5% delay 20s")
	if err == nil || err.Error() != `--net:1:15: delay 20s out of range: want 0-10s` {
		t.Errorf("ParseNet(delay 20s) error = %v", err)
	}
}

// TestNetApplyMerges checks that a net step changes only what it names.
func TestNetApplyMerges(t *testing.T) {
	s, err := Parse("x.lab", strings.NewReader("net loss 5% delay 10ms\nnet delay 20ms\nnet clear duplicate 1%\n"))
	if err != nil {
		t.Fatal(err)
	}
	var c stack.Conditions
	for i, want := range []stack.Conditions{
		{Loss: 5, Delay: 10 * time.Millisecond},
		{Loss: 5, Delay: 20 * time.Millisecond},
		{Duplicate: 1},
	} {
		c = s.Steps[i].(*Net).Apply(c)
		if c != want {
			t.Errorf("after line %d: %+v, want %+v", i+1, c, want)
		}
	}
}

// simulateText runs src on the memory wire in virtual time and returns
// the result, the events and the text timeline.
func simulateText(t *testing.T, src string, cfg SimConfig) (*Result, []trace.Event, string) {
	t.Helper()
	s, err := Parse("net.lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if cfg.QuietWindow == 0 {
		cfg.QuietWindow = 10 * time.Millisecond
	}
	res, events, err := Simulate(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	render.NewText(&b, render.TextOptions{NoBuffers: true}).WriteAll(events)
	return res, events, b.String()
}

const netPrologue = "server listen 9527\nclient connect server:9527\nserver accept\n"

// TestNetOnTheMemoryWire runs each condition on the memory wire and checks
// its effect in the trace.
func TestNetOnTheMemoryWire(t *testing.T) {
	t.Run("delay", func(t *testing.T) {
		_, ev, text := simulateText(t, "net client->server delay 100ms\n"+netPrologue+"client write \"aaa\"\nserver read expect \"aaa\"\n", SimConfig{})
		sent, got := segTime(ev, "client", "out", "P."), segTime(ev, "server", "in", "P.")
		if sent < 0 || got-sent != 100*time.Millisecond+250*time.Microsecond {
			t.Errorf("[P.] sent at %v, received at %v: want 100.25ms later\n%s", sent, got, text)
		}
		if !strings.Contains(text, "# net client->server: delay 100ms") || !strings.Contains(text, "# net server->client: clear") == false {
			t.Errorf("the setting is not noted (once, for its direction):\n%s", text)
		}
		if strings.Contains(text, "delayed") {
			t.Errorf("a fixed delay is noted per segment:\n%s", text)
		}
	})
	t.Run("loss", func(t *testing.T) {
		res, _, text := simulateText(t, netPrologue+"net client->server loss 100%\nclient write \"aaa\"\nwait quiet\nexpect server received P. never\nnet clear\nsleep 2s\nexpect server received P.\n", SimConfig{})
		if !res.OK() {
			t.Errorf("failures %v\n%s", res.Failures, text)
		}
		if !strings.Contains(text, "# net client->server: lost [P.] seq 1, ack 1, length 3 (loss 100%)") {
			t.Errorf("the loss is not noted with relative numbers:\n%s", text)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		res, ev, text := simulateText(t, netPrologue+"net client->server duplicate 100%\nclient write \"aaa\"\nserver read expect \"aaa\"\nexpect server received P. count 2\nexpect client sent P. count 1\n", SimConfig{})
		if !res.OK() {
			t.Errorf("failures %v\n%s", res.Failures, text)
		}
		if !strings.Contains(text, "duplicated (duplicate 100%)") {
			t.Errorf("the duplicate is not noted:\n%s", text)
		}
		_ = ev
	})
	t.Run("corrupt", func(t *testing.T) {
		res, ev, text := simulateText(t, netPrologue+"net client->server corrupt 100%\nclient write \"aaa\"\nwait quiet\nexpect server received P.\nexpect server buffer rcv 0\n", SimConfig{})
		if !res.OK() {
			t.Errorf("failures %v\n%s", res.Failures, text)
		}
		refused := false
		for _, e := range ev {
			if e.Kind == trace.Segment && e.Host == "server" && e.Dir == "in" && e.Flags == "P." {
				refused = e.Verdict == trace.Refused && strings.Contains(e.Why, "checksum")
			}
		}
		if !refused || !strings.Contains(text, "corrupted: bit") {
			t.Errorf("the corrupted segment is not refused for its checksum, or not noted:\n%s", text)
		}
	})
	t.Run("reorder", func(t *testing.T) {
		res, ev, text := simulateText(t, netPrologue+"net client->server delay 50ms reorder 50%\nclient write 10000\nsleep 1s\nserver read expect 10000 bytes\n", SimConfig{Seed: 3})
		if res.Failed() != 0 {
			t.Errorf("failures %v\n%s", res.Failures, text)
		}
		overtaken := false
		var last uint32
		for _, e := range ev {
			if e.Kind == trace.Segment && e.Host == "server" && e.Dir == "in" && e.Len > 0 {
				overtaken = overtaken || e.Seq < last
				last = max(last, e.Seq)
			}
		}
		if !overtaken || !strings.Contains(text, "reordered") {
			t.Errorf("no segment overtook another (%v) or none is noted:\n%s", overtaken, text)
		}
	})
	t.Run("rate", func(t *testing.T) {
		_, ev, text := simulateText(t, "net client->server rate 80kbit\n"+netPrologue+"client write 10000\nsleep 3s\n", SimConfig{})
		// 80 kbit/s is 10 kB/s: 10 kB and its headers take over a second.
		last := time.Duration(0)
		for _, e := range ev {
			if e.Kind == trace.Segment && e.Host == "server" && e.Dir == "in" && e.Len > 0 {
				last = e.T
			}
		}
		if last < time.Second || !strings.Contains(text, "delayed") {
			t.Errorf("10000 bytes at 80kbit arrived by %v (want over 1 s), delays noted: %v\n%s", last, strings.Contains(text, "delayed"), text)
		}
	})
	t.Run("jitter needs a delay", func(t *testing.T) {
		res, _, _ := simulateText(t, "net jitter 10ms\n", SimConfig{})
		if !res.Stopped || !strings.Contains(res.Failures[0].Msg, "jitter needs a delay") {
			t.Errorf("net jitter without delay: %+v", res.Failures)
		}
	})
}

// TestNetSeededLossRepeats runs a lossy exchange twice with the same seed:
// the traces are byte-identical; a different seed loses other segments.
func TestNetSeededLossRepeats(t *testing.T) {
	src := netPrologue + "net loss 30% delay 10ms jitter 5ms\nclient write 4000\nsleep 5s\nserver read\n"
	_, _, a := simulateText(t, src+"", SimConfig{Seed: 7})
	_, _, b := simulateText(t, src, SimConfig{Seed: 7})
	if a != b {
		t.Errorf("two runs with seed 7 differ:\n%s", lineDiffText(a, b))
	}
	if !strings.Contains(a, "lost") {
		t.Errorf("30%% loss lost nothing:\n%s", a)
	}
	_, _, c := simulateText(t, src, SimConfig{Seed: 8})
	if a == c {
		t.Errorf("seeds 7 and 8 gave the same trace")
	}
}

// TestNetOption checks that Options.Net applies before the first step.
func TestNetOption(t *testing.T) {
	n, err := ParseNet("server->client delay 50ms")
	if err != nil {
		t.Fatal(err)
	}
	res, ev, text := simulateText(t, netPrologue, SimConfig{Net: n})
	if !res.OK() {
		t.Errorf("failures %v\n%s", res.Failures, text)
	}
	if !strings.HasPrefix(strings.TrimSpace(text), "0.000000 server -   # net server->client: delay 50ms") {
		t.Errorf("the --net note is not first:\n%s", text)
	}
	if got := segTime(ev, "client", "in", "S.") - segTime(ev, "server", "out", "S."); got != 50*time.Millisecond+250*time.Microsecond {
		t.Errorf("[S.] took %v to arrive, want 50.25ms", got)
	}
}

func segTime(ev []trace.Event, host, dir, flags string) time.Duration {
	for _, e := range ev {
		if e.Kind == trace.Segment && e.Host == host && e.Dir == dir && e.Flags == flags {
			return e.T
		}
	}
	return -1
}

func lineDiffText(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if x != y {
			out = append(out, "-"+x, "+"+y)
		}
	}
	return strings.Join(out, "\n")
}
