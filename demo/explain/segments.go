package explain

import (
	"time"
)

// Segment is one packet of a connection as explain read it, for tools that
// rebuild the connection's story (tcplab replay, the ladder): who sent it,
// when, its flags, and its numbers relative to each side's ISN.
type Segment struct {
	// N is the packet's number in the file, from 1.
	N int
	// T is its time since the connection's first packet; Time its
	// capture time.
	T    time.Duration
	Time time.Time
	// From is "client" (the side that sent the SYN) or "server".
	From string
	// Flags are the TCP flags in tcpdump notation (S, S., ., P., F., R, R.);
	// Bits the same as the header's byte.
	Flags string
	Bits  uint8
	// Seq is relative to the sender's ISN, Ack to the receiver's (valid
	// when Flags has '.').
	Seq, Ack uint32
	// Win is the advertised window as on the wire; Window is it scaled by
	// the sender's window scale once both SYNs agreed on scaling.
	Win    uint16
	Window uint32
	// Len is the payload length.
	Len int
	// Retrans marks a retransmission (its sequence space was sent before);
	// Missed a segment the capture lacks sequence space before.
	Retrans, Missed bool
	// Src and Dst are the addresses, "198.18.1.2:44521".
	Src, Dst string
	// Finding is the explanation of the FIN or RST this packet is, nil
	// for other packets.
	Finding *Finding
}

// FIN reports whether the segment carries FIN.
func (s Segment) FIN() bool { return s.Bits&flagFIN != 0 }

// RST reports whether the segment carries RST.
func (s Segment) RST() bool { return s.Bits&flagRST != 0 }

// SYN reports whether the segment carries SYN.
func (s Segment) SYN() bool { return s.Bits&flagSYN != 0 }

// PSH reports whether the segment carries PSH.
func (s Segment) PSH() bool { return s.Bits&flagPSH != 0 }

// ACK reports whether the segment carries ACK.
func (s Segment) ACK() bool { return s.Bits&flagACK != 0 }

// Segments returns the connection's packets in capture order, with the
// findings of its FINs and RSTs attached. It is empty unless the packets
// were kept (Analyze with keep, Analyzer.KeepPackets). Cost: one Segment
// per packet.
func (c *Conn) Segments() []Segment {
	byPkt := make(map[int]*Finding, len(c.Findings))
	for _, f := range c.Findings {
		byPkt[f.Packet] = f
	}
	scaled := c.synAck != 0 && c.side[0].wscale >= 0 && c.side[1].wscale >= 0
	out := make([]Segment, 0, len(c.recs))
	for _, r := range c.recs {
		s, o := &c.side[r.from], &c.side[1-r.from]
		w := uint32(r.win)
		if scaled && r.flags&flagSYN == 0 && s.wscale > 0 {
			w <<= uint(s.wscale)
		}
		seg := Segment{
			N: r.n, T: r.t.Sub(c.First), Time: r.t, From: s.role, Flags: FlagString(r.flags), Bits: r.flags,
			Seq: s.rel(r.seq), Win: r.win, Window: w, Len: r.len, Retrans: r.re, Missed: r.missed,
			Src: s.addr.String(), Dst: o.addr.String(), Finding: byPkt[r.n],
		}
		if r.flags&flagACK != 0 {
			seg.Ack = o.rel(r.ack)
		}
		out = append(out, seg)
	}
	return out
}

// RefusedOnSYN reports whether the connection's SYN was answered by RST.
func (c *Conn) RefusedOnSYN() bool { return c.synRST }

// Established reports whether the capture shows the handshake completed
// (or the connection was already open when the capture started).
func (c *Conn) Established() bool { return c.estab != 0 || c.midSYN }

// MidStream reports whether the capture lacks the connection's SYN.
func (c *Conn) MidStream() bool { return c.midSYN }

// WScale returns the window scale each side offered in its SYN (-1 for
// none), client first.
func (c *Conn) WScale() (client, server int) {
	return int(c.side[0].wscale), int(c.side[1].wscale)
}
