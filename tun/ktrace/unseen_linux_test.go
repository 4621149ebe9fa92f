package ktrace

import (
	"net/netip"
	"testing"
	"time"
)

// TestUnseenTracker: a forward jump in a connection's sent sequence space
// opens a hole; a late segment (another CPU's) fills it, wholly or in
// part; retransmissions, RSTs, forwarded packets, received segments and
// another socket's packets with the same addresses open none; SYN and FIN
// count one; sequence numbers wrap.
func TestUnseenTracker(t *testing.T) {
	a, b := netip.MustParseAddrPort("198.18.0.1:80"), netip.MustParseAddrPort("198.18.0.2:4000")
	seg := func(kind Kind, flags string, seq uint32, n int, ms int) *Event {
		return &Event{Kind: kind, Sock: 0xff00, Local: a, Remote: b, HasSegment: true, Originated: kind != Received, Flags: flags, Seq: seq, Len: n, Mono: time.Duration(ms) * time.Millisecond}
	}
	var isn uint32 = 1<<32 - 1500 // wraps
	u := unseenTracker{next: map[flowKey]sent{}}
	u.track(seg(Sent, "S.", isn, 0, 1))
	u.track(seg(Sent, ".", isn+1, 1000, 2))
	u.track(seg(Sent, ".", isn+5001, 1000, 3)) // hole 1001..5001
	u.track(seg(Sent, ".", isn+2001, 1000, 4)) // late: fills the middle
	u.track(seg(Sent, ".", isn+1, 1000, 5))    // a retransmission
	u.track(seg(Sent, "R.", isn+90000, 0, 6))  // a RST's sequence number
	u.track(seg(Received, ".", isn+70000, 10, 6))
	fwd := seg(Sent, ".", isn+80000, 10, 6)
	fwd.Originated = false
	u.track(fwd)
	raw := seg(Sent, ".", isn+50000, 0, 6) // from a raw socket: starts afresh
	raw.Sock = 0xee00
	u.track(raw)
	u.track(seg(Sent, ".", isn+5001, 1000, 6)) // the socket again: afresh too
	u.track(seg(Sent, "F.", isn+6001, 0, 7))   // FIN, no hole
	u.track(seg(Sent, ".", isn+6003, 0, 8))    // a pure ACK after the FIN: hole of one (6002)
	if got := u.due(3*time.Millisecond, false); len(got) != 0 {
		t.Errorf("holes revealed at 3 ms reported before 3 ms: %+v", got)
	}
	got := u.due(0, true)
	want := []hole{
		{key: flowKey{a, b}, seq: isn + 1001, end: isn + 2001, at: 3 * time.Millisecond},
		{key: flowKey{a, b}, seq: isn + 3001, end: isn + 5001, at: 3 * time.Millisecond},
		{key: flowKey{a, b}, seq: isn + 6002, end: isn + 6003, at: 8 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("holes %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("hole %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	u.track(&Event{Kind: Destroy, Local: a, Remote: b})
	if len(u.next) != 0 {
		t.Errorf("Destroy left %d flows", len(u.next))
	}
}
