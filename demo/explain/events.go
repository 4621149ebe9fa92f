package explain

import (
	"fmt"

	"github.com/tcplab/tcplab/stack/trace"
)

// Events returns the connection's packets as trace events, so that
// tcplab's renderers (the terminal ladder, the SVG) draw a capture as they
// draw a run: one "out" segment event per packet, from its sender ("client"
// or "server"), connection "cN", time since the capture's first packet,
// absolute sequence numbers; a FIN's or RST's Reason is explain's
// inferred cause with its confidence; a note after the last packet gives
// the teardown. A capture has no arrivals (one point on the wire), no
// calls and no states: the renderers draw none. Empty unless the packets
// were kept. Cost: one event per packet.
func (c *Conn) Events() []trace.Event {
	byPkt := make(map[int]*Finding, len(c.Findings))
	for _, f := range c.Findings {
		byPkt[f.Packet] = f
	}
	conn := fmt.Sprintf("c%d", c.N)
	out := make([]trace.Event, 0, len(c.recs)+1)
	for _, r := range c.recs {
		s, o := &c.side[r.from], &c.side[1-r.from]
		e := trace.Event{
			T: r.t.Sub(c.Origin), Host: s.role, Kind: trace.Segment, Conn: conn, Dir: "out",
			Src: s.addr.String(), Dst: o.addr.String(), Flags: FlagString(r.flags),
			Seq: r.seq, Win: r.win, Len: r.len,
		}
		if r.flags&flagACK != 0 {
			e.Ack = r.ack
		}
		if f := byPkt[r.n]; f != nil {
			e.Reason = fmt.Sprintf("inferred [%s]: %s", f.Confidence, f.Reason)
		}
		switch {
		case r.probe:
			e.Text = fmt.Sprintf("#%d keepalive probe", r.n)
		case r.re:
			e.Text = fmt.Sprintf("#%d retransmission", r.n)
		default:
			e.Text = fmt.Sprintf("#%d", r.n)
		}
		out = append(out, e)
	}
	if len(c.recs) > 0 {
		out = append(out, trace.Event{T: c.Last.Sub(c.Origin), Host: "client", Kind: trace.Note, Conn: conn,
			Text: fmt.Sprintf("conn %d: %s (Zeek %s)", c.N, c.Teardown(), c.Zeek())})
	}
	return out
}
