package scenario

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
)

func TestParseEveryConstruct(t *testing.T) {
	src := `# demo: every construct
#
# Second paragraph.
config timewait 2s
config finwait2 3s
config kernel server
server listen 9527 backlog 4 as L
client connect server:9527 from 40000 as c
server accept on L as s
client write "a \"quoted\" b" on c
client write 100 bytes
server read 10 on s expect 10 bytes
server read all expect "x"
server read expect EOF
server read expect error ECONNRESET
client shutdown wr
client shutdown rd
client shutdown rdwr
client set linger 0
client set linger off
client set nodelay on
client set sndbuf 4096
client set rcvbuf 8192
client close expect ok
server close on L
server sleep 5s
sleep 100ms
wait quiet
wait quiet 50ms
note "hello"
wire hold
wire release
wire drop client F. count 2
expect client sent R. reason ~ "after close" before server received R.
expect client received F count 1 on c
expect server sent F never
expect client state TIME-WAIT never
expect client state CLOSING
expect server final CLOSED on s
expect server buffer rcv 3
`
	s, err := Parse("demo.lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "demo" || s.TimeWait != 2*time.Second || s.FinWait2 != 3*time.Second || s.Kernel != "server" {
		t.Errorf("script settings = %q %v %v %q", s.Name, s.TimeWait, s.FinWait2, s.Kernel)
	}
	if want := "demo: every construct\n\nSecond paragraph."; s.Doc != want {
		t.Errorf("Doc = %q, want %q", s.Doc, want)
	}
	if got, want := len(s.Steps), 34; got != want {
		t.Fatalf("len(Steps) = %d, want %d", got, want)
	}
	c := s.Steps[1].(*Call)
	if c.Op != "connect" || c.Port != 9527 || c.From != 40000 || c.As != "c" {
		t.Errorf("connect = %+v", c)
	}
	w := s.Steps[3].(*Call)
	if string(w.Data) != `a "quoted" b` || w.On != "c" {
		t.Errorf("write = %q on %q", w.Data, w.On)
	}
	if w := s.Steps[4].(*Call); w.Fill != 100 || w.Data != nil {
		t.Errorf("write 100 bytes = %d bytes of filler, data %q", w.Fill, w.Data)
	}
	if r := s.Steps[5].(*Call); r.N != 10 || r.Expect == nil || r.Expect.Bytes != 10 {
		t.Errorf("read 10 = %+v", r)
	}
	if r := s.Steps[6].(*Call); !r.All || r.Expect.Data == nil || *r.Expect.Data != "x" {
		t.Errorf("read all = %+v", r)
	}
	if r := s.Steps[8].(*Call); r.Expect.Errno != "ECONNRESET" {
		t.Errorf("read expect error = %+v", r.Expect)
	}
	if sl := s.Steps[19].(*Sleep); sl.Host != "server" || sl.D != 5*time.Second {
		t.Errorf("sleep = %+v", sl)
	}
	if wq := s.Steps[22].(*WaitQuiet); wq.D != 50*time.Millisecond {
		t.Errorf("wait quiet = %v", wq.D)
	}
	if wd := s.Steps[26].(*Wire); wd.Op != "drop" || wd.Host != "client" || wd.Flags != "F." || wd.Count != 2 {
		t.Errorf("wire drop = %+v", wd)
	}
	e := s.Steps[27].(*Expect)
	if e.Host != "client" || e.What != "sent" || e.Flags != "R." || e.Reason != "after close" || e.Before == nil || e.Before.What != "received" {
		t.Errorf("expect = %+v", e)
	}
	if e := s.Steps[28].(*Expect); e.Count != 1 || e.On != "c" {
		t.Errorf("expect count = %+v", e)
	}
	if e := s.Steps[33].(*Expect); e.Queue != "rcv" || e.Bytes != 3 {
		t.Errorf("expect buffer = %+v", e)
	}
	if got := s.Steps[27].Position().String(); got != "demo.lab:34:1" {
		t.Errorf("Position = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"client wirte \"x\"", `x.lab:1:8: expected a socket call (listen, connect, accept, write, read, shutdown, close, set, sleep, socket, bind), found "wirte"; did you mean "write"?`},
		{"clinet close", `x.lab:1:1: expected a statement (client, server, sleep, wait, note, expect, config, wire, net, inject, needs), found "clinet"; did you mean "client"?`},
		{"server listen", `x.lab:1:14: expected a port (a number 1-65535)`},
		{"server listen 70000", `x.lab:1:15: port 70000 out of range: want 1-65535`},
		{"client connect 9527", `x.lab:1:16: expected where to connect as HOST:PORT (e.g. server:9527), found "9527"`},
		{"client connect client:1", `x.lab:1:16: client cannot connect to itself; connect to server:1`},
		{"client write \"abc", `x.lab:1:14: unterminated string: missing closing "`},
		{"client shutdown both", `x.lab:1:17: expected a direction (rd, wr, rdwr), found "both"`},
		{"server read expect maybe", `x.lab:1:20: expected an outcome (EOF, ok, error), found "maybe"`},
		{"server read expect error ECONNREST", `x.lab:1:26: expected an error name (ECONNRESET, EPIPE, ECONNREFUSED, ECONNABORTED, ENOTCONN, ETIMEDOUT, EADDRINUSE, EINVAL, EAGAIN, EINPROGRESS, EALREADY, EISCONN, EBADF), found "ECONNREST"; did you mean "ECONNRESET"?`},
		{"expect client state TIME_WAIT", `x.lab:1:21: expected a TCP state (CLOSED, LISTEN, SYN-SENT, SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT), found "TIME_WAIT"; did you mean "TIME-WAIT"?`},
		{"expect client sent X", `x.lab:1:20: bad TCP flags "X": use the letters S F P R U E W and . for ACK`},
		{"expect client sent R reason \"x\" extra", `x.lab:1:33: unexpected "extra" (expected never, count N, reason ~ "...", seq|ack|win|len N, before ... or after ...)`},
		{"sleep forever", `x.lab:1:7: expected how long to sleep (a duration such as 5s or 200ms, from 0 to 24h), found "forever"`},
		{"client set linger maybe", `x.lab:1:19: expected linger off or seconds (a number 0-86400), found "maybe"`},
		{"client close now", `x.lab:1:14: unexpected "now" (expected on NAME, as NAME or expect ...)`},
		{"client close as x", `x.lab:1:14: only socket, listen, connect and accept create a socket to name with "as"`},
		{"config timewait", `x.lab:1:16: expected timewait (a duration such as 5s or 200ms, from 0 to 24h)`},
		{"wire cut", `x.lab:1:6: expected a fault (hold, release, drop), found "cut"`},
		{"\n\n   server   explode", `x.lab:3:13: expected a socket call (listen, connect, accept, write, read, shutdown, close, set, sleep, socket, bind), found "explode"`},
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

func TestFlagsMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, flags string
		want           bool
	}{
		{"R", "R", true}, {"R", "R.", true}, {"R.", "R", false},
		{"F", "F.", true}, {"F", "FP.", true}, {"F.", "F.", true},
		{".", ".", true}, {".", "P.", false}, {".", "F.", false},
		{"P.", "P.", true}, {"P.", "FP.", false}, {"S", "S.", true}, {"S", "S", true},
		{"S.", "S", false}, {"F", "R.", false},
	} {
		if got := FlagsMatch(tc.pattern, tc.flags); got != tc.want {
			t.Errorf("FlagsMatch(%q, %q) = %v, want %v", tc.pattern, tc.flags, got, tc.want)
		}
	}
}

func TestCatalogueParses(t *testing.T) {
	names := Names()
	if len(names) < 12 || names[0] != "close" || names[1] != "shutdown" {
		t.Fatalf("Names() = %v", names)
	}
	for _, n := range names {
		s, err := Builtin(n)
		if err != nil {
			t.Errorf("Builtin(%q): %v", n, err)
			continue
		}
		if !strings.HasPrefix(s.Doc, n+": ") {
			t.Errorf("%s: doc must start with %q, got %q", n, n+": ", s.Doc)
		}
		if len(s.Doc) < 200 {
			t.Errorf("%s: explanation too short (%d chars)", n, len(s.Doc))
		}
	}
	if _, err := Builtin("clsoe"); err == nil || !strings.Contains(err.Error(), `did you mean "close"`) {
		t.Errorf("Builtin(clsoe) = %v, want a suggestion", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range Names() {
		b, _ := Source(n)
		f.Add(string(b))
	}
	f.Add("client write \"\\x00\" on c expect 3 bytes")
	// Large and negative numbers, durations and repeated names: every one
	// must be an error with a position, never a panic or a huge buffer.
	for _, src := range []string{
		"client write 999999999999999999",
		"server read 999999999999999999",
		"client write 1099511627776 bytes expect 1099511627776 bytes",
		"server listen 9527 backlog 9223372036854775807",
		"client set linger 99999999999",
		"client set sndbuf -1",
		"sleep 3000000h",
		"wait quiet 9223372036854775807ns",
		"wire drop client SSSS count 99999999999999999999",
		"expect client sent F count -1",
		"server read expect -1 bytes",
		"server listen 1 as a\nserver accept as a",
		"net client->server loss 99.9% delay 10s jitter 10s reorder 1e2% duplicate 0x1% corrupt 1e-300% rate 100gbit",
		"net rate 18446744073709551615bit",
		"inject server R. seq -2147483648 ack 4294967295 win 65535 data \"x\" on c abs",
		"config gvisor rto-min 24h\nconfig gvisor rto-max 1ns\nconfig kernel tcp_fin_timeout 99999999999999999999s",
		"expect client sent F. seq >=-1 ack !=4294967296 len <65536 after server refused R within 24h\nclient close expect took 0..24h",
	} {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse("fuzz.lab", strings.NewReader(src))
		if err != nil {
			if _, ok := err.(*Error); !ok && !strings.Contains(err.Error(), "fuzz.lab") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		if len(s.Steps) == 0 || len(s.Steps) > MaxSteps {
			t.Fatalf("%d steps accepted", len(s.Steps))
		}
		for _, st := range s.Steps {
			_ = st.String()
			// What the parser accepts is within the documented limits.
			switch st := st.(type) {
			case *Call:
				if st.Fill < 0 || st.Fill > MaxWrite || st.N < 0 || st.N > MaxRead || st.Backlog < 0 || st.Backlog > MaxBacklog {
					t.Fatalf("%s: out of limits: %+v", st, st)
				}
				if st.Expect != nil && st.Expect.Bytes > MaxWrite {
					t.Fatalf("%s: expect %d bytes", st, st.Expect.Bytes)
				}
			case *Sleep:
				if st.D < 0 || st.D > MaxDuration {
					t.Fatalf("%s: sleep %v", st, st.D)
				}
			case *Expect:
				if st.Count > MaxCount || st.Bytes < 0 || st.Bytes > MaxWrite {
					t.Fatalf("%s: out of limits: %+v", st, st)
				}
			case *Wire:
				if st.Count < 1 || st.Count > MaxCount {
					t.Fatalf("%s: count %d", st, st.Count)
				}
			case *Net:
				// Each value is within its range (a jitter or reorder
				// without a delay is refused when the step runs).
				c := st.Apply(stack.Conditions{})
				c.Jitter, c.Reorder = 0, 0
				if err := c.Validate(); err != nil {
					t.Fatalf("%s: accepted %+v: %v", st, c, err)
				}
			case *Inject:
				if st.Win < 0 || st.Win > 65535 || len(st.Data) > MaxInjectData || st.Seq < math.MinInt32 || st.Seq > math.MaxUint32 {
					t.Fatalf("%s: out of limits: %+v", st, st)
				}
			}
		}
	})
}
