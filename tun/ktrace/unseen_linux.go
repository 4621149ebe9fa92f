package ktrace

import (
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// unseenWait is how long a hole in a connection's sent sequence space may
// stay open before it is reported: events of two CPUs reach the ring
// buffer nearly, not strictly, in time order, so a segment sent on one CPU
// may follow one sent later on another. Holes still open this long after
// the event that revealed them were never sent observed.
const unseenWait = 5 * time.Millisecond

// flowKey is one direction of a connection: the sender's endpoint and the
// receiver's.
type flowKey struct{ local, remote netip.AddrPort }

// hole is a range of sequence space [seq, end) that a connection's Sent
// events skipped, revealed by the event at Mono at.
type hole struct {
	key      flowKey
	seq, end uint32
	at       time.Duration
}

// seqAfter reports whether a comes after b in sequence space.
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// unseenTracker follows, per connection, the end of the sequence space its
// Sent events have covered, and the holes they left. It is used by the
// reader goroutine only.
type unseenTracker struct {
	next  map[flowKey]sent
	holes []hole
}

// sent is how far a connection's Sent events have covered its sequence
// space, and the socket that sent them.
type sent struct {
	next uint32
	sock uint64
}

// track updates the tracker with e. Only segments a socket of the
// namespace sent count (Sent and Dropped with Originated: a packet dropped
// before the wire was observed too); forwarded packets may legitimately
// skip sequence space.
func (u *unseenTracker) track(e *Event) {
	switch {
	case e.Kind == Destroy:
		delete(u.next, flowKey{e.Local, e.Remote})
		return
	case e.Kind != Sent && e.Kind != Dropped, !e.Originated, !e.HasSegment, strings.Contains(e.Flags, "R"):
		return
	}
	k := flowKey{e.Local, e.Remote}
	end := e.Seq + uint32(e.Len)
	if strings.Contains(e.Flags, "F") {
		end++
	}
	if strings.Contains(e.Flags, "S") {
		end++
	}
	st, ok := u.next[k]
	if !ok || st.sock != e.Sock || strings.Contains(e.Flags, "S") {
		u.next[k] = sent{next: end, sock: e.Sock}
		return
	}
	u.fill(k, e.Seq, end)
	if seqAfter(e.Seq, st.next) {
		u.holes = append(u.holes, hole{key: k, seq: st.next, end: e.Seq, at: e.Mono})
	}
	if seqAfter(end, st.next) {
		u.next[k] = sent{next: end, sock: e.Sock}
	}
}

// fill removes [seq, end) of flow k from the open holes: a segment that
// arrived late.
func (u *unseenTracker) fill(k flowKey, seq, end uint32) {
	if len(u.holes) == 0 || seq == end {
		return
	}
	var keep []hole
	for _, h := range u.holes {
		if h.key != k || !seqAfter(end, h.seq) || !seqAfter(h.end, seq) {
			keep = append(keep, h) // no overlap
			continue
		}
		if seqAfter(seq, h.seq) {
			keep = append(keep, hole{key: k, seq: h.seq, end: seq, at: h.at})
		}
		if seqAfter(h.end, end) {
			keep = append(keep, hole{key: k, seq: end, end: h.end, at: h.at})
		}
	}
	u.holes = keep
}

// due removes and returns the holes revealed before cutoff (all of them
// when all is set).
func (u *unseenTracker) due(cutoff time.Duration, all bool) []hole {
	var out, keep []hole
	for _, h := range u.holes {
		if all || h.at < cutoff {
			out = append(out, h)
		} else {
			keep = append(keep, h)
		}
	}
	u.holes = keep
	return out
}

// monoNow returns CLOCK_MONOTONIC, the clock of the kernel's stamps.
func monoNow() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// unseenEvent is the Unseen event of h.
func (o *Observer) unseenEvent(h hole) Event {
	at := h.at - 1 // just before the segment that revealed it
	return Event{
		Kind: Unseen, Time: o.clk.at(at), Mono: at,
		Local: h.key.local, Remote: h.key.remote,
		Seq: h.seq, Len: int(h.end - h.seq), Originated: true,
	}
}

// Unseen returns how many bytes of sequence space (data, SYN and FIN each
// count one) the kernel sent without the observer seeing them, as reported
// by Unseen events so far. It costs one atomic load.
func (o *Observer) Unseen() uint64 { return o.unseenBytes.Load() }
