package witness

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

var (
	cAddr       = netip.MustParseAddrPort("198.18.1.2:40000")
	sAddr       = netip.MustParseAddrPort("198.18.2.2:9527")
	kAddr       = netip.MustParseAddrPort("198.18.1.1:9527") // the kernel as server
	gvisorHosts = []Host{
		{Name: "client", Addr: cAddr.Addr(), Device: "tcl-client"},
		{Name: "server", Addr: sAddr.Addr(), Device: "tcl-server"},
	}
)

// seg is a segment from src to dst.
type seg struct {
	src, dst netip.AddrPort
	flags    string
	seq, ack uint32
	data     string
}

// exchange is a handshake, "aaa", and a FIN each way.
var exchange = []seg{
	{cAddr, sAddr, "S", 100, 0, ""},
	{sAddr, cAddr, "S.", 500, 101, ""},
	{cAddr, sAddr, ".", 101, 501, ""},
	{cAddr, sAddr, "P.", 101, 501, "aaa"},
	{sAddr, cAddr, ".", 501, 104, ""},
	{cAddr, sAddr, "F.", 104, 501, ""},
	{sAddr, cAddr, "F.", 501, 105, ""},
	{cAddr, sAddr, ".", 105, 502, ""},
}

func names(a netip.AddrPort) string {
	if a == cAddr {
		return "client"
	}
	return "server"
}

// traceOf is the trace two gVisor hosts record for segs: each one sent,
// then received.
func traceOf(segs []seg) []trace.Event {
	var evs []trace.Event
	for _, s := range segs {
		for _, side := range []struct{ host, dir string }{{names(s.src), "out"}, {names(s.dst), "in"}} {
			evs = append(evs, trace.Event{Index: len(evs), Kind: trace.Segment, Host: side.host, Dir: side.dir,
				Src: s.src.String(), Dst: s.dst.String(), Flags: s.flags, Seq: s.seq, Ack: s.ack, Win: 1000,
				Len: len(s.data), Payload: []byte(s.data)})
		}
	}
	for i := range evs {
		if evs[i].Len == 0 {
			evs[i].Payload = nil
		}
	}
	return evs
}

// wireOf is what the capture sees of segs: the sender's copy leaving its
// device, then the receiver's copy entering its own.
func wireOf(segs []seg) []Packet {
	var ps []Packet
	for _, s := range segs {
		p := Packet{Src: s.src, Dst: s.dst, Flags: s.flags, Seq: s.seq, Ack: s.ack, Win: 1000, Len: len(s.data), Payload: []byte(s.data)}
		p.IfName = "tcl-" + names(s.src)
		ps = append(ps, p)
		p.IfName, p.ToDevice = "tcl-"+names(s.dst), true
		ps = append(ps, p)
	}
	return ps
}

// reindex renumbers the events after an edit.
func reindex(evs []trace.Event) []trace.Event {
	for i := range evs {
		evs[i].Index = i
	}
	return evs
}

// wantMismatches checks that r has exactly len(want) mismatches and that
// each contains its substring.
func wantMismatches(t *testing.T, r Result, want ...string) {
	wantKinds(t, r, 0, want...)
}

// wantKinds is wantMismatches that also checks every mismatch has kind k
// (0: any).
func wantKinds(t *testing.T, r Result, k Kind, want ...string) {
	t.Helper()
	if len(r.Mismatches) != len(want) {
		t.Fatalf("%d mismatches, want %d:\n%s", len(r.Mismatches), len(want), strings.Join(r.Strings(), "\n"))
	}
	for i, w := range want {
		if !strings.Contains(r.Mismatches[i].Text, w) {
			t.Errorf("mismatch %d = %q, want it to contain %q", i, r.Mismatches[i], w)
		}
		if k != 0 && r.Mismatches[i].Kind != k {
			t.Errorf("mismatch %d has kind %d, want %d", i, r.Mismatches[i].Kind, k)
		}
	}
}

func TestAgree(t *testing.T) {
	r := Compare(Config{Hosts: gvisorHosts}, traceOf(exchange), wireOf(exchange))
	wantMismatches(t, r)
	if len(r.Streams) != 4 {
		t.Fatalf("%d streams, want 4", len(r.Streams))
	}
	for _, s := range r.Streams {
		if s.Wire != s.Events || s.Matched != s.Events || s.Events == 0 {
			t.Errorf("stream %+v: want all matched", s)
		}
	}
}

// TestMissingPacket: the trace says the client sent its FIN and the server
// received it, but the wire never carried it.
func TestMissingPacket(t *testing.T) {
	wire := wireOf(exchange)
	wire = append(wire[:10:10], wire[12:]...) // both copies of the client's FIN
	r := Compare(Config{Hosts: gvisorHosts}, traceOf(exchange), wire)
	wantKinds(t, r, TraceOnly,
		"client out: the trace has a segment the wire lacks (event 10): 198.18.1.2:40000 > 198.18.2.2:9527: Flags [F.], seq 104",
		"server in: the trace has a segment the wire lacks (event 11)")
}

// TestExtraPacket: a teardown RST on the wire that the trace lacks is
// reported twice: the client's copy and the server's.
func TestExtraPacket(t *testing.T) {
	rst := seg{cAddr, sAddr, "R.", 105, 502, ""}
	r := Compare(Config{Hosts: gvisorHosts}, traceOf(exchange), wireOf(append(exchange[:len(exchange):len(exchange)], rst)))
	wantKinds(t, r, WireOnly,
		"client out: the wire has a segment the trace lacks (packet 6 at 00:00:00.000000): tcl-client In 198.18.1.2:40000 > 198.18.2.2:9527: Flags [R.], seq 105",
		"server in: the wire has a segment the trace lacks (packet 6 at 00:00:00.000000): tcl-server Out 198.18.1.2:40000 > 198.18.2.2:9527: Flags [R.], seq 105")
}

// TestExtraEvent: the trace records a segment the client never sent.
func TestExtraEvent(t *testing.T) {
	evs := traceOf(exchange)
	extra := evs[4] // client out [P.] "aaa"
	extra.Flags, extra.Seq = "P.", 104
	evs = reindex(append(evs[:6:6], append([]trace.Event{extra}, evs[6:]...)...))
	r := Compare(Config{Hosts: gvisorHosts}, evs, wireOf(exchange))
	wantKinds(t, r, TraceOnly, "client out: the trace has a segment the wire lacks (event 6): 198.18.1.2:40000 > 198.18.2.2:9527: Flags [P.], seq 104")
}

// TestReordered: the server received the client's ACK and data in the
// other order than the trace says.
func TestReordered(t *testing.T) {
	evs := traceOf(exchange)
	// server in: events 5 (ACK) and 7 (data) swap places.
	evs[5], evs[7] = evs[7], evs[5]
	r := Compare(Config{Hosts: gvisorHosts}, reindex(evs), wireOf(exchange))
	wantKinds(t, r, Reordered, "server in: out of order: 198.18.1.2:40000 > 198.18.2.2:9527: Flags [")
}

// TestWrongField: the trace has the server's ACK with the wrong window,
// and the client's data with the wrong payload.
func TestWrongField(t *testing.T) {
	evs := traceOf(exchange)
	evs[8].Win = 999               // server out [.] ack 104
	evs[6].Payload = []byte("aab") // client out [P.]
	r := Compare(Config{Hosts: gvisorHosts}, evs, wireOf(exchange))
	wantKinds(t, r, Differs,
		`client out: segment 3 differs (trace event 6, wire packet 3): payload: trace "aab", wire "aaa"`,
		"server out: segment 2 differs (trace event 8, wire packet 2): win: trace 999, wire 1000")
}

// TestRecordedDrop: a FIN dropped by fault injection is in the trace as
// sent, with the note, and on the wire not at all; its retransmission is
// on both. That agrees. Without the note, it does not.
func TestRecordedDrop(t *testing.T) {
	withRetrans := append(exchange[:5:5], exchange[5], exchange[5], exchange[6], exchange[7])
	evs := traceOf(withRetrans)
	// The first FIN was sent but never received: drop its "in" event and
	// put the note in its place.
	note := trace.Event{Kind: trace.Note, Host: "client", Text: "fault injection: dropped [F.] (FIN)"}
	evs = reindex(append(evs[:11:11], append([]trace.Event{note}, evs[12:]...)...))
	r := Compare(Config{Hosts: gvisorHosts}, evs, wireOf(exchange))
	wantMismatches(t, r)
	if s := r.Streams[0]; s.Dropped != 1 || s.Matched != 5 {
		t.Errorf("client out: %+v, want 1 dropped and 5 matched", s)
	}
	evs[11].Text = "something else"
	wantMismatches(t, Compare(Config{Hosts: gvisorHosts}, evs, wireOf(exchange)), "client out: the trace has a segment the wire lacks")
}

// TestKernelHost: with the kernel as the server, each packet is seen once,
// on the client's device, and makes both the client's and the kernel's
// stream.
func TestKernelHost(t *testing.T) {
	hosts := []Host{{Name: "client", Addr: cAddr.Addr(), Device: "tcl-client"}, {Name: "server", Addr: kAddr.Addr()}}
	var segs []seg
	for _, s := range exchange {
		if s.src == sAddr {
			s.src = kAddr
		}
		if s.dst == sAddr {
			s.dst = kAddr
		}
		segs = append(segs, s)
	}
	var wire []Packet
	for _, p := range wireOf(segs) {
		if p.IfName == "tcl-client" {
			wire = append(wire, p)
		}
	}
	evs := traceOf(segs)
	r := Compare(Config{Hosts: hosts}, evs, wire)
	wantMismatches(t, r)
	for _, s := range r.Streams {
		if s.Matched == 0 || s.Matched != s.Wire {
			t.Errorf("stream %+v: want all matched", s)
		}
	}
	// A kernel arrival that never was on the wire (the mirrored arrival of
	// a dropped segment) is caught.
	extra := evs[11]
	extra.Seq = 999
	wantMismatches(t, Compare(Config{Hosts: hosts}, reindex(append(evs, extra)), wire), "server in: the trace has a segment the wire lacks")
}

// TestUnknownHosts: segments of hosts or addresses the lab does not have
// are mismatches, not silently skipped.
func TestUnknownHosts(t *testing.T) {
	evs := traceOf(exchange)
	evs[0].Host = "relay"
	wire := wireOf(exchange)
	wire[0].Src = netip.MustParseAddrPort("10.0.0.1:1")
	r := Compare(Config{Hosts: gvisorHosts}, evs, wire)
	if len(r.Mismatches) < 2 || !strings.Contains(r.Mismatches[0].Text, `host "relay"`) || !strings.Contains(r.Mismatches[1].Text, "addresses the lab does not have") {
		t.Errorf("mismatches:\n%s", strings.Join(r.Strings(), "\n"))
	}
}

// TestTiming: with the trace's start known, an arrival recorded before the
// wire carried the segment (a peer's arrival booked when the other side
// sent it) and a departure recorded after it are caught; events on the
// right side of their packets are not.
func TestTiming(t *testing.T) {
	start := time.Unix(1700000000, 0)
	evs := traceOf(exchange)
	wire := wireOf(exchange)
	// Segment k: sent at k ms, on the wire (both copies) at k ms + 100 µs,
	// received at k ms + 200 µs.
	for i := range evs {
		evs[i].T = time.Duration(i/2)*time.Millisecond + time.Duration(i%2)*200*time.Microsecond
	}
	for i := range wire {
		wire[i].Time = start.Add(time.Duration(i/2)*time.Millisecond + 100*time.Microsecond)
	}
	cfg := Config{Hosts: gvisorHosts, Start: start, Slack: 50 * time.Microsecond}
	wantMismatches(t, Compare(cfg, evs, wire))
	// The server's arrival of the FIN (segment 6) booked 5 ms early.
	evs[11].T -= 5 * time.Millisecond
	// The client's ACK (segment 8) booked as sent 3 ms late.
	evs[14].T += 3 * time.Millisecond
	wantKinds(t, Compare(cfg, evs, wire), Timing,
		"client out: segment 5 recorded as sent 2.9ms after the wire carried it (event 14",
		"server in: segment 4 recorded as received 4.9ms before the wire carried it (event 11")
	// Without Start, times are not compared.
	wantMismatches(t, Compare(Config{Hosts: gvisorHosts}, evs, wire))
}
