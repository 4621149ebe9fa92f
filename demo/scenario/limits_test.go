package scenario

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// Every number the language takes is bounded, with an error at its
// file:line:col naming the limit; nonsense that used to pass in silence is
// an error too.
func TestParseLimits(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"client write 999999999999999999", `x.lab:1:14: write size 999999999999999999 out of range: want 0-1099511627776, 1 TiB`},
		{"client write 99999999999999999999999", `x.lab:1:14: write size 99999999999999999999999 out of range: want 0-1099511627776, 1 TiB`},
		{"server read 999999999999999999", `x.lab:1:13: read size 999999999999999999 out of range: want 1-16777216, 16 MiB`},
		{"server read 0", `x.lab:1:13: read size 0 out of range: want 1-16777216, 16 MiB`},
		{"server listen 9527 backlog 99999999999", `x.lab:1:28: backlog 99999999999 out of range: want 0-65535`},
		{"client connect server:9527 from 0", `x.lab:1:33: local port 0 out of range: want 1-65535`},
		{"server read expect -1 bytes", `x.lab:1:20: byte count -1 out of range: want 0-1099511627776, 1 TiB`},
		{"client write 5 expect -1", `x.lab:1:23: byte count -1 out of range: want 0-1099511627776, 1 TiB`},
		{"expect client sent SSSS", `x.lab:1:20: bad TCP flags "SSSS": S appears more than once`},
		{"expect client sent F..", `x.lab:1:20: bad TCP flags "F..": . appears more than once`},
		{"expect client sent F count 99999999", `x.lab:1:28: count 99999999 out of range: want 0-1000000`},
		{"wire drop client F count 0", `x.lab:1:26: count 0 out of range: want 1-1000000`},
		{"expect client buffer snd -3", `x.lab:1:26: byte count -3 out of range: want 0-1099511627776, 1 TiB`},
		{"client set linger -5", `x.lab:1:19: linger off or seconds -5 out of range: want 0-86400`},
		{"client set linger 99999999999", `x.lab:1:19: linger off or seconds 99999999999 out of range: want 0-86400`},
		{"client set sndbuf 99999999999", `x.lab:1:19: sndbuf in bytes 99999999999 out of range: want 1-268435456, 256 MiB`},
		{"client set rcvbuf 0", `x.lab:1:19: rcvbuf in bytes 0 out of range: want 1-268435456, 256 MiB`},
		{"sleep 3000000h", `x.lab:1:7: expected how long to sleep (a duration such as 5s or 200ms, from 0 to 24h), found "3000000h"`},
		{"client sleep 25h", `x.lab:1:14: expected how long to sleep (a duration such as 5s or 200ms, from 0 to 24h), found "25h"`},
		{"wait quiet 48h", `x.lab:1:12: expected how long the wire must be quiet (a duration such as 5s or 200ms, from 0 to 24h), found "48h"`},
		{"config finwait2 -1s", `x.lab:1:17: expected finwait2 (a duration such as 5s or 200ms, from 0 to 24h), found "-1s"`},
		{"server listen 1 as a\nclient connect server:1 as a\nserver accept as a", `x.lab:3:18: server already has a socket named "a" (line 1); pick another name`},
		{"", `x.lab:1:1: no steps: a scenario needs at least one call, wait or expectation (see tcplab syntax)`},
		{"# only a comment\n\nconfig timewait 1s\n", `x.lab:1:1: no steps`},
		{"note \"x\"\n" + strings.Repeat("#", MaxLine+1) + "\n", `x.lab:2:1: line longer than 1048576 bytes (1 MiB, the limit)`},
	} {
		_, err := Parse("x.lab", strings.NewReader(tc.src))
		if err == nil {
			t.Errorf("Parse(%.40q) = nil error, want %q", tc.src, tc.want)
			continue
		}
		if _, ok := err.(*Error); !ok || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%.40q) error:\n got %s (%T)\nwant %s", tc.src, err, err, tc.want)
		}
	}
	// The same name on the two hosts is two sockets, and the limits
	// themselves are accepted.
	src := "server listen 1 backlog 65535 as a\nclient connect server:1 as a\nclient write 1099511627776\nserver read 16777216\nsleep 24h\nclient set linger 86400\n"
	if _, err := Parse("x.lab", strings.NewReader(src)); err != nil {
		t.Errorf("limits themselves: %v", err)
	}
}

// A write of N bytes of filler is no N-byte buffer: parsing "write 1 TiB"
// allocates nothing of that size.
func TestParseBigWriteAllocatesNothing(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := Parse("x.lab", strings.NewReader("client write 1099511627776 bytes\n"))
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("parsing write 1 TiB allocated %d bytes", grew)
	}
	if c := s.Steps[0].(*Call); c.Fill != 1<<40 || c.Data != nil {
		t.Errorf("Fill = %d, Data %d bytes", c.Fill, len(c.Data))
	}
}

// A long filler write is streamed, at most MaxWriteChunk per call, from one
// buffer: 1 GiB costs about what 1 MiB does, the bytes are the filler
// stream without a seam between calls, and "expect N bytes" sees the total.
func TestWriteFillStreams(t *testing.T) {
	const n = 1 << 30
	sock := &sinkSocket{seamless: true}
	lab := Lab{Client: &sinkPeer{name: "client", s: sock}, Server: &sinkPeer{name: "server"}, Trace: trace.NewRecorder(nil)}
	s, err := Parse("x.lab", strings.NewReader("client connect server:1\nclient write 1073741824 expect 1073741824 bytes\n"))
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := Run(context.Background(), s, lab, Options{Settle: func(context.Context) {}})
	runtime.ReadMemStats(&after)
	if !res.OK() || res.Checked != 1 {
		t.Fatalf("checked %d, failures: %v", res.Checked, res.Failures)
	}
	if sock.total != n || sock.maxCall > MaxWriteChunk {
		t.Errorf("wrote %d bytes, largest call %d; want %d, at most %d", sock.total, sock.maxCall, n, MaxWriteChunk)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("writing 1 GiB of filler allocated %d bytes, want < 16 MiB", grew)
	}
	if !sock.seamless {
		t.Errorf("the filler has a seam between calls")
	}
	if want := Filler(0, 100); !bytes.Equal(sock.head, want) {
		t.Errorf("filler starts %q, want %q", sock.head, want)
	}
}

// sinkSocket discards what is written to it, checking that each call
// continues the filler stream where the last one ended.
type sinkSocket struct {
	stack.Socket
	total, maxCall int
	head           []byte
	seamless       bool
}

func (s *sinkSocket) ID() string { return "c1" }
func (s *sinkSocket) Write(_ context.Context, p []byte) (int, error) {
	if len(p) > 0 && p[0] != fillAlphabet[s.total%len(fillAlphabet)] {
		s.seamless = false
	}
	if s.head == nil {
		s.head = append([]byte(nil), p[:min(100, len(p))]...)
	}
	s.total += len(p)
	s.maxCall = max(s.maxCall, len(p))
	return len(p), nil
}

// sinkPeer dials s; it has no listener.
type sinkPeer struct {
	name string
	s    *sinkSocket
}

func (p *sinkPeer) Name() string     { return p.name }
func (p *sinkPeer) Addr() netip.Addr { return netip.MustParseAddr("198.18.0.1") }
func (p *sinkPeer) Listen(uint16, int) (stack.ListenSocket, error) {
	return nil, errors.New("sinkPeer: no listen")
}
func (p *sinkPeer) Dial(context.Context, netip.AddrPort, uint16) (stack.Socket, error) {
	return p.s, nil
}

// Ctrl-C (the run's context ending) is an interruption at the step that
// was running, not a failed expectation.
func TestRunInterrupted(t *testing.T) {
	s, err := Parse("x.lab", strings.NewReader("note \"a\"\nsleep 10s\nexpect client sent S\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lab := Lab{Client: &sinkPeer{name: "client"}, Server: &sinkPeer{name: "server"}, Trace: trace.NewRecorder(nil)}
	res := Run(ctx, s, lab, Options{Settle: func(context.Context) {}, Step: func(st Step) {
		if _, ok := st.(*Sleep); ok {
			cancel()
		}
	}})
	if !res.Interrupted || res.Where.String() != "x.lab:2:1" || len(res.Failures) != 0 || res.OK() || res.Checked != 0 {
		t.Errorf("Interrupted %v at %s, failures %v, checked %d", res.Interrupted, res.Where, res.Failures, res.Checked)
	}
}

// A step that cannot run is a stop, not an expectation that failed.
func TestRunStopIsNotAFailedExpectation(t *testing.T) {
	s, err := Parse("x.lab", strings.NewReader("server accept\nexpect client sent S\n"))
	if err != nil {
		t.Fatal(err)
	}
	lab := Lab{Client: &sinkPeer{name: "client"}, Server: &sinkPeer{name: "server"}, Trace: trace.NewRecorder(nil)}
	res := Run(context.Background(), s, lab, Options{Settle: func(context.Context) {}})
	if !res.Stopped || res.Failed() != 0 || len(res.Failures) != 1 || !res.Failures[0].Stop || res.Where.Line != 1 {
		t.Errorf("Stopped %v at %s, Failed() %d, failures %+v", res.Stopped, res.Where, res.Failed(), res.Failures)
	}
}

// FuzzNumber: parseNumber never panics, and what it accepts is in range
// and is what the text says.
func FuzzNumber(f *testing.F) {
	for _, s := range []string{"0", "1", "65535", "-1", "+7", "999999999999999999", "99999999999999999999999", "1099511627776", "0x10", "1e3", "", " 1"} {
		f.Add(s, int64(0), int64(MaxWrite))
	}
	f.Fuzz(func(t *testing.T, text string, lo, hi int64) {
		if lo > hi {
			lo, hi = hi, lo
		}
		n, err := parseNumber(text, "a number", lo, hi)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if n < lo || n > hi {
			t.Fatalf("parseNumber(%q, %d, %d) = %d, out of range", text, lo, hi, n)
		}
	})
}

// FuzzDuration: parseDuration never panics and accepts only 0 to
// MaxDuration.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"0", "5s", "200ms", "24h", "24h0m0.000000001s", "3000000h", "-1s", "9223372036854775807ns", "1e3s", ".5s", "1h1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		d, err := parseDuration(text, "a duration")
		if err != nil {
			if !strings.Contains(err.Error(), "24h") {
				t.Fatalf("error does not name the limit: %v", err)
			}
			return
		}
		if d < 0 || d > MaxDuration {
			t.Fatalf("parseDuration(%q) = %v, out of range", text, d)
		}
	})
}

// On the memory wire too, "write 1 GiB" costs about what a 1 MiB write
// does: the call blocks once the buffers are full (nobody reads), and the
// 1 GiB was never built.
func TestBigWriteOnTheMemoryWire(t *testing.T) {
	s, err := Parse("x.lab", strings.NewReader("server listen 9527\nclient connect server:9527\nserver accept\nclient write 1073741824\n"))
	if err != nil {
		t.Fatal(err)
	}
	lab, _, err := memwire.NewLab(memwire.LabConfig{RealTime: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := Run(context.Background(), s, Lab{Client: lab.Client.Peer(), Server: lab.Server.Peer(), Trace: lab.Trace},
		Options{StepTimeout: 300 * time.Millisecond})
	runtime.ReadMemStats(&after)
	if res.Stopped || len(res.Failures) != 1 || !strings.Contains(res.Failures[0].Msg, "still blocked after 300ms") {
		t.Fatalf("failures %+v", res.Failures)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 128<<20 {
		t.Errorf("a blocked write of 1 GiB allocated %d MiB, want < 128 MiB", grew>>20)
	}
}

// repeatReader repeats line forever.
type repeatReader struct {
	line string
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.line[r.off:])
		n += c
		r.off = (r.off + c) % len(r.line)
	}
	return n, nil
}

// An endless input ends in an error naming the limit, not in all the
// memory.
func TestEndlessInput(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"note \"x\"\n", "x.lab:100001:1: more than 100000 steps (the limit)"},
		{"# a comment that makes no step at all, again and again\n", "scenario longer than 4194304 bytes (4 MiB, the limit)"},
	} {
		_, err := Parse("x.lab", &repeatReader{line: tc.line})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(endless %q) = %v, want %q", tc.line, err, tc.want)
		}
	}
}
