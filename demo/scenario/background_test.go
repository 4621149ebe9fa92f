package scenario_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack/trace"
)

func TestParseConcurrency(t *testing.T) {
	src := `server socket as L
server set linger 0 on L
server bind server:9527 on L
server listen backlog 1 on L
client socket as c
client set nonblock on on c
client bind 0 on c
client connect server:9527 on c  expect error EINPROGRESS
server accept on L as s &
server read on s expect "x"&
client read all on c  expect blocked &
wait s
wait client
wait all
wait quiet
`
	s, err := scenario.Parse("x.lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	call := func(i int) *scenario.Call { return s.Steps[i].(*scenario.Call) }
	if c := call(0); c.Op != "socket" || c.As != "L" || c.Background {
		t.Errorf("socket = %+v", c)
	}
	if c := call(1); c.Op != "set" || c.Opt != "linger" || c.Val != "0" || c.On != "L" {
		t.Errorf("set on L = %+v", c)
	}
	if c := call(2); c.Op != "bind" || c.Port != 9527 || c.On != "L" {
		t.Errorf("bind = %+v", c)
	}
	if c := call(3); c.Op != "listen" || c.Port != 0 || c.Backlog != 1 || c.On != "L" {
		t.Errorf("listen on L = %+v", c)
	}
	if c := call(5); c.Opt != "nonblock" || c.Val != "on" || c.On != "c" {
		t.Errorf("set nonblock = %+v", c)
	}
	if c := call(6); c.Op != "bind" || c.Port != 0 {
		t.Errorf("bind 0 = %+v", c)
	}
	if c := call(7); c.Op != "connect" || c.On != "c" || c.Expect.Errno != "EINPROGRESS" || c.Background {
		t.Errorf("connect on c = %+v", c)
	}
	if c := call(8); !c.Background || c.As != "s" || c.Op != "accept" {
		t.Errorf("accept & = %+v", c)
	}
	if c := call(9); !c.Background || c.Expect == nil || *c.Expect.Data != "x" {
		t.Errorf("read expect \"x\"& = %+v", c)
	}
	if c := call(10); !c.Background || !c.All || c.Expect == nil || !c.Expect.Blocked {
		t.Errorf("read all expect blocked & = %+v", c)
	}
	for i, want := range map[int]string{11: "s", 12: "client", 13: "all"} {
		if w, ok := s.Steps[i].(*scenario.Wait); !ok || w.Name != want {
			t.Errorf("step %d = %#v, want wait %s", i, s.Steps[i], want)
		}
	}
	if _, ok := s.Steps[14].(*scenario.WaitQuiet); !ok {
		t.Errorf("wait quiet = %#v", s.Steps[14])
	}
}

func TestParseConcurrencyErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"wait foo", `x.lab:1:6: wait: no background call named "foo" before this line (a call ending in "&" is named by its "as NAME" or "on NAME"; wait client|server|all waits for a host's or every background call, wait quiet [D] for a quiet lab)`},
		{"server accept as a &\nwait b", `x.lab:2:6: wait: no background call named "b" before this line`},
		{"wait quite", `did you mean "quiet"?`},
		{"wait", `x.lab:1:5: expected what to wait for (quiet, all, client, server)`},
		{"note \"x\" &", `x.lab:1:10: "&" runs a socket call in the background; "note \"x\" &" is not a call`},
		{"expect client sent F &", `x.lab:1:22: "&" runs a socket call in the background; "expect client sent F &" is not a call`},
		{"client read on foo", `x.lab:1:16: client has no socket named "foo" before this line`},
		{"server socket as L\nclient close on L", `x.lab:2:17: client has no socket named "L" before this line`},
		{"server listen on L", `x.lab:1:18: server has no socket named "L" before this line`},
		{"client socket", `x.lab:1:14: socket needs a name: client socket as NAME`},
		{"server listen backlog 1", `x.lab:1:1: expected a port: server listen PORT, or server listen [PORT] ... on NAME`},
		{"client socket as c\nclient bind server:80 on c", `x.lab:2:13: client can bind only its own address: client:80, found "server:80"`},
		{"client set nonblock maybe", `x.lab:1:21: expected nonblock on or off, found "maybe"`},
		{"client read & expect EOF", `x.lab:1:13: "&" must end the line: HOST CALL ... [expect ...] &`},
	} {
		_, err := scenario.Parse("x.lab", strings.NewReader(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}

// simulate runs src on the memory wire in virtual time.
func simulate(t *testing.T, src string) (*scenario.Result, []trace.Event) {
	t.Helper()
	s, err := scenario.Parse("bg.lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, events, err := scenario.Simulate(ctx, s, scenario.SimConfig{QuietWindow: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return res, events
}

// index returns the index of the first event whose rendered call or note
// contains sub, or -1.
func index(events []trace.Event, host, call string) int {
	for i, e := range events {
		if e.Host == host && e.Kind == trace.Call && e.Call == call {
			return i
		}
	}
	return -1
}

const bgSetup = `server listen 9527
client connect server:9527
server accept as s
`

// A background read returns after a later step (the write), and its
// expectation is checked then: a wrong one fails at the read's line.
func TestBackgroundCallCompletesLater(t *testing.T) {
	res, events := simulate(t, bgSetup+`server read on s expect "hi" &
note "the script goes on"
client write "hi"
wait s
`)
	if !res.OK() || res.Checked != 1 {
		t.Fatalf("failures %v, checked %d", res.Failures, res.Checked)
	}
	w, r := index(events, "client", "write"), index(events, "server", "read")
	if w < 0 || r < 0 || r < w {
		t.Errorf("read (event %d) should follow the write (event %d)", r, w)
	}

	res, _ = simulate(t, bgSetup+`server read on s expect "no" &
client write "hi"
wait all
`)
	if len(res.Failures) != 1 || res.Failures[0].Pos.Line != 4 || !strings.Contains(res.Failures[0].Msg, `want "no", got 2 bytes "hi"`) || res.Stopped {
		t.Errorf("failures %+v, want one at line 4", res.Failures)
	}
}

// A background call still blocked at the end is reported with its
// expectation, in virtual time since it started; "expect blocked" holds;
// one without an expectation is only noted.
func TestStillBlockedAtTheEnd(t *testing.T) {
	start := time.Now()
	res, events := simulate(t, bgSetup+`server read on s expect "x" &
client read expect blocked &
server sleep 3s
`)
	if len(res.Failures) != 1 || res.Stopped || res.Checked != 2 {
		t.Fatalf("failures %+v (checked %d), want one", res.Failures, res.Checked)
	}
	f := res.Failures[0]
	for _, want := range []string{"still blocked after 3s", "at the end of the scenario", `want "x"`} {
		if !strings.Contains(f.Msg, want) || f.Pos.Line != 4 {
			t.Errorf("failure %v lacks %q", f, want)
		}
	}
	notes := 0
	for _, e := range events {
		if e.Kind == trace.Note && strings.Contains(e.Text, "still blocked after 3s") {
			notes++
		}
	}
	if notes != 2 {
		t.Errorf("%d still-blocked notes, want 2", notes)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("a 3 s scenario with blocked calls took %s of real time: virtual time stalled", d)
	}
}

// A foreground call still blocked after the step timeout is a failure that
// names it, not a stop: the script goes on. "wait" reports a call still
// blocked after the step timeout the same way.
func TestStillBlockedAfterTheStepTimeout(t *testing.T) {
	res, _ := simulate(t, bgSetup+`server read expect EOF
expect server state ESTABLISHED
client read on c1 expect "y" &
wait c1
`)
	if res.Stopped || len(res.Failures) != 2 || res.Checked != 3 {
		t.Fatalf("failures %+v (checked %d), want 2 and no stop", res.Failures, res.Checked)
	}
	if f := res.Failures[0]; f.Pos.Line != 4 || !strings.Contains(f.Msg, "still blocked after 10s (the step timeout") || !strings.Contains(f.Msg, "want EOF") {
		t.Errorf("first failure %v", f)
	}
	if f := res.Failures[1]; f.Pos.Line != 6 || !strings.Contains(f.Msg, "still blocked after 10s (at wait c1)") || !strings.Contains(f.Msg, `want "y"`) {
		t.Errorf("second failure %v", f)
	}
}

// A non-blocking socket gives EAGAIN where a blocking one would wait, and
// a non-blocking connect EINPROGRESS; options and bind apply before
// connect.
func TestNonblockOnTheMemoryWire(t *testing.T) {
	res, events := simulate(t, `server socket as L
server set rcvbuf 65536 on L
server listen 9527 backlog 4 on L
server set nonblock on on L
server accept on L expect error EAGAIN
client socket as c
client set nonblock on on c
client bind 40000 on c
client connect server:9527 on c expect error EINPROGRESS
client write "abc" on c expect 3 bytes
server accept on L as s expect ok
server set nonblock on on s
server read on s expect "abc"
server read on s expect error EAGAIN
client read on c expect error EAGAIN
expect client final ESTABLISHED on c
`)
	if !res.OK() || res.Checked != 8 {
		t.Fatalf("failures %v, checked %d", res.Failures, res.Checked)
	}
	var calls []string
	for _, e := range events {
		if e.Kind == trace.Call && e.Host == "client" {
			calls = append(calls, e.Call+"("+e.Arg+")")
		}
	}
	want := "socket() fcntl(O_NONBLOCK=true) bind(198.18.0.1:40000) connect(198.18.0.2:9527)"
	if got := strings.Join(calls, " "); !strings.HasPrefix(got, want) {
		t.Errorf("client calls %s, want them to start %s", got, want)
	}
}

// A background call blocked for a long time does not make virtual time run
// ahead of the script: the sleep moves the clock by exactly its length.
func TestBackgroundCallDoesNotMoveTheClock(t *testing.T) {
	_, events := simulate(t, bgSetup+`server read on s &
note "before"
sleep 2s
note "after"
`)
	var before, after time.Duration = -1, -1
	for _, e := range events {
		if e.Kind == trace.Note && e.Text == "before" {
			before = e.T
		}
		if e.Kind == trace.Note && e.Text == "after" {
			after = e.T
		}
	}
	if before < 0 || after-before < 2*time.Second || after-before > 2*time.Second+10*time.Millisecond {
		t.Errorf("notes at %v and %v: want 2s apart", before, after)
	}
}

// What a background call made is known to the steps after it returned,
// without a wait: an accept in the background names its socket.
func TestBackgroundSocketKnownWithoutWait(t *testing.T) {
	res, _ := simulate(t, `server listen 9527
server accept as s  expect ok &
client connect server:9527
expect server final ESTABLISHED on s
server read on s expect "x" &
client write "x"
client close
server read on s expect EOF
`)
	if !res.OK() || res.Checked != 4 {
		t.Fatalf("failures %v, checked %d", res.Failures, res.Checked)
	}
}

// Options set on a gVisor listener before it listens reach accepted
// endpoints only as gVisor passes them on: SO_LINGER 0 does not (close()
// sends FIN, where Linux, which copies the listener, resets; see
// tun/kernelpeer's TestFreshListenerOptionsInherited).
func TestListenerOptionsOnGVisor(t *testing.T) {
	res, _ := simulate(t, `server socket as L
server set linger 0 on L
server listen 9527 on L
client connect server:9527
server accept on L as s expect ok
server close on s
expect server sent F.
expect server sent R never
`)
	if !res.OK() || res.Checked != 3 {
		t.Fatalf("failures %v, checked %d", res.Failures, res.Checked)
	}
}
