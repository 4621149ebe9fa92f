package explain

import (
	"net/netip"
	"sort"
	"time"
)

// tuple is a connection's 4-tuple, the lower address first.
type tuple struct{ a, b netip.AddrPort }

func tupleOf(p Packet) tuple {
	if p.Src.Compare(p.Dst) < 0 {
		return tuple{p.Src, p.Dst}
	}
	return tuple{p.Dst, p.Src}
}

// Analyzer follows the TCP connections of a capture packet by packet and
// hands each one, explained, to its Done function when it is over: when a
// SYN starts a new connection on its 4-tuple, when it has ended and been
// quiet for a while, or at Flush. Cost: the state of the connections still
// open (a few hundred bytes each), plus their packets when KeepPackets.
type Analyzer struct {
	// Done receives each connection once it is over, explained; the
	// Analyzer forgets it afterwards.
	Done func(*Conn)
	// KeepPackets keeps every packet of a connection for the timeline.
	KeepPackets bool
	// Keep, if set, decides per connection, when its first packet is
	// seen, whether its packets are kept (instead of KeepPackets): a
	// filter such as --conn keeps only what it will show.
	Keep func(*Conn) bool

	conns   map[tuple]*Conn
	next    int
	sinceGC int
	origin  time.Time // the first packet's time
}

// idle is how long an ended connection stays in the table after its last
// packet (of capture time), for stray segments that follow a teardown.
const idle = 30 * time.Second

// Add takes the next packet of the capture, in file order.
func (a *Analyzer) Add(p Packet) {
	if a.conns == nil {
		a.conns = map[tuple]*Conn{}
		a.origin = p.Time
	}
	k := tupleOf(p)
	c := a.conns[k]
	if c != nil && p.Flags&(flagSYN|flagACK) == flagSYN && c.newSYN(p) {
		a.finish(c)
		c = nil
	}
	if c == nil {
		a.next++
		c = newConn(a.next, p)
		c.Origin = a.origin
		c.keep = a.KeepPackets
		if a.Keep != nil {
			c.keep = a.Keep(c)
		}
		a.conns[k] = c
	}
	c.add(p, c.keep)
	a.sinceGC++
	if a.sinceGC >= 1<<14 && len(a.conns) > 64 {
		a.sinceGC = 0
		a.gc(p.Time)
	}
}

// gc finishes the connections that have ended and been quiet for idle.
func (a *Analyzer) gc(now time.Time) {
	var done []*Conn
	for _, c := range a.conns {
		if c.over() && now.Sub(c.Last) > idle {
			done = append(done, c)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].N < done[j].N })
	for _, c := range done {
		a.finish(c)
	}
}

// Flush finishes every connection still in the table, in order of first
// packet: the end of the capture.
func (a *Analyzer) Flush() {
	var done []*Conn
	for _, c := range a.conns {
		done = append(done, c)
	}
	sort.Slice(done, func(i, j int) bool { return done[i].N < done[j].N })
	for _, c := range done {
		a.finish(c)
	}
}

func (a *Analyzer) finish(c *Conn) {
	delete(a.conns, tupleOf(Packet{Src: c.side[0].addr, Dst: c.side[1].addr}))
	c.finish()
	if a.Done != nil {
		a.Done(c)
	}
}

// newSYN reports whether the SYN p starts a new connection on c's 4-tuple
// rather than repeating c's own.
func (c *Conn) newSYN(p Packet) bool {
	cl := &c.side[0]
	if p.Src == cl.addr && cl.synPkt != 0 && p.Seq == cl.base && !c.over() {
		return false // a retransmitted SYN
	}
	return c.Packets > 0
}

// over reports whether both sides have closed (or wait in TIME-WAIT), or
// a RST ended the connection.
func (c *Conn) over() bool {
	if c.firstRS != 0 {
		return true
	}
	for _, s := range c.side {
		if s.state != "CLOSED" && s.state != "TIME-WAIT" {
			return false
		}
	}
	return true
}

// add books packet p of the connection.
func (c *Conn) add(p Packet, keep bool) {
	from := uint8(0)
	if p.Src != c.side[0].addr {
		from = 1
	}
	if c.isDup(from, p) {
		c.Dups++
		return
	}
	s, o := &c.side[from], &c.side[1-from]
	c.Packets++
	c.gap = 0
	if c.Packets > 1 {
		c.gap = p.Time.Sub(c.Last)
	}
	c.Last = p.Time
	r := rec{n: p.N, t: p.Time, from: from, flags: p.Flags, seq: p.Seq, ack: p.Ack, win: p.Win, len: p.Len}
	if keep {
		defer func() { c.recs = append(c.recs, r) }()
		for i := range c.side {
			c.side[i].track, c.side[i].atPkt, c.side[i].atTime = true, p.N, p.Time
		}
	}
	syn, fin, rst, ack := p.Flags&flagSYN != 0, p.Flags&flagFIN != 0, p.Flags&flagRST != 0, p.Flags&flagACK != 0
	if !rst {
		if !s.ttlSet {
			s.ttl, s.ttlSet = p.TTL, true
		} else if p.TTL != s.ttl {
			s.ttlVaries = true
		}
		if p.HasID {
			switch d := p.ID - s.lastID; {
			case s.pkts == 0:
			case d >= 1 && d <= 16:
				s.idRun++
			default:
				s.idBroke = true
			}
			s.lastID = p.ID
		}
	}
	switch {
	case syn:
		if s.synPkt == 0 {
			s.base, s.baseSet, s.synPkt, s.synTime, s.wscale = p.Seq, true, p.N, p.Time, p.WScale
		}
	case !s.baseSet && rst:
		s.base, s.baseSet = p.Seq, true
	case !s.baseSet:
		s.base, s.baseSet = p.Seq-1, true
	}
	if c.midSYN && s.state == "" && !syn {
		s.record("ESTABLISHED")
		o.record("ESTABLISHED")
		s.state, o.state = "ESTABLISHED", "ESTABLISHED"
	}

	if rst {
		c.Findings = append(c.Findings, c.explainRST(from, p))
		s.rst, s.rstPkt = true, p.N
		if c.firstRS == 0 {
			c.firstRS = int(from) + 1
		}
		if o.state == "SYN-SENT" && s.synPkt == 0 {
			c.synRST = true
		}
		s.setState("CLOSED")
		o.setState("CLOSED")
		s.pkts++
		s.lastPkt, s.lastTime = p.N, p.Time
		return
	}

	// Sequence space: SYN, data, FIN.
	end := p.Seq + uint32(p.Len)
	if syn {
		end++
	}
	if fin {
		end++
	}
	if syn && !ack {
		if s.synPkt != p.N {
			s.retrans++
			if c.estab != 0 {
				s.synAgain = p.N
			}
		}
		s.setState("SYN-SENT")
	} else if syn {
		if s.synPkt != p.N {
			s.retrans++
		} else {
			c.synAck = p.N
			if s.wscale < 0 || o.wscale < 0 {
				s.wscale, o.wscale = -1, -1
			}
		}
		s.setState("SYN-RECEIVED")
	}
	// A keepalive probe: nothing in flight, the peer's window open, and a
	// segment of 0 or 1 byte one below the next sequence number.
	probe := ack && !syn && !fin && p.Len <= 1 && s.nxtSet && p.Seq == s.nxt-1 &&
		o.ackSet && o.ack == s.nxt && o.win > 0 && c.estab != 0
	if probe {
		if s.probes == 0 || o.lastPkt > s.lastProbe {
			s.probes, s.firstProbe, s.probeGap = 0, p.N, c.gap
		}
		s.probes++
		s.lastProbe = p.N
		r.probe = true
	} else if p.Len > 0 || (fin && !syn) {
		start := p.Seq
		if syn {
			start++
		}
		switch {
		case s.nxtSet && seqLE(end, s.nxt):
			s.retrans++
			s.reBytes += int64(p.Len)
			r.re = true
			if s.tailRetrans == 0 || o.lastPkt > s.firstTail {
				s.tailRetrans, s.firstTail = 0, p.N
			}
			s.tailRetrans++
		default:
			if s.nxtSet && seqGT(start, s.nxt) {
				s.missed += int64(start - s.nxt)
				r.missed = true
			}
			n := int64(p.Len)
			if s.nxtSet && seqLT(start, s.nxt) {
				old := int64(s.nxt - start)
				n -= old
				s.reBytes += old
				r.re = true
			}
			if n > 0 {
				s.sent += n
				s.lastData = p.N
			}
		}
	}
	if !s.nxtSet || seqGT(end, s.nxt) {
		s.nxt, s.nxtSet = end, true
	}

	// Window, scaled once both SYNs agreed on scaling.
	if syn && ack {
		s.maxWin = max(s.maxWin, uint32(p.Win)) // never scaled
	}
	if !syn {
		w := uint32(p.Win)
		if s.wscale > 0 && c.synAck != 0 {
			w <<= uint(s.wscale)
		}
		s.win = w
		if w > s.maxWin {
			s.maxWin = w
		}
	}

	if ack {
		if !s.ackSet || seqGT(p.Ack, s.ack) {
			if s.fin && s.ackSet && p.N != s.finPkt {
				data := p.Ack - s.ack
				if o.fin && seqGE(p.Ack, o.finSeq+1) && seqLE(s.ack, o.finSeq) {
					data--
				}
				if int32(data) > 0 {
					s.ackedAfterFin = append(s.ackedAfterFin, p.N)
				}
			}
			s.ack, s.ackSet, s.ackPkt = p.Ack, true, p.N
		}
		// The handshake.
		if s.state == "SYN-SENT" && o.synPkt != 0 && seqGE(p.Ack, o.base+1) {
			s.setState("ESTABLISHED")
		}
		if o.state == "SYN-RECEIVED" && seqGE(p.Ack, o.base+1) && !syn {
			o.setState("ESTABLISHED")
			if s.state == "SYN-SENT" || s.state == "SYN-RECEIVED" {
				s.setState("ESTABLISHED")
			}
			if c.estab == 0 {
				c.estab = p.N
				c.estabTime = p.Time
			}
		}
		// The peer's FIN, acknowledged.
		if o.fin && o.finAcked == 0 && seqGE(p.Ack, o.finSeq+1) {
			o.finAcked = p.N
			switch s.state {
			case "ESTABLISHED", "SYN-RECEIVED":
				s.setState("CLOSE-WAIT")
			case "FIN-WAIT-1":
				if s.fin && s.finAcked == 0 {
					s.setState("CLOSING")
				} else {
					s.setState("TIME-WAIT")
				}
			case "FIN-WAIT-2":
				s.setState("TIME-WAIT")
			}
			switch o.state {
			case "FIN-WAIT-1":
				o.setState("FIN-WAIT-2")
			case "CLOSING":
				o.setState("TIME-WAIT")
			case "LAST-ACK":
				o.setState("CLOSED")
			}
		}
	}

	if fin {
		seq := p.Seq + uint32(p.Len)
		if syn {
			seq++
		}
		if s.fin && seq == s.finSeq {
			c.Findings = append(c.Findings, c.explainFINAgain(from, p))
		} else if !s.fin {
			f := c.finding(from, p, "FIN")
			s.fin, s.finSeq, s.finPkt, s.finTime, s.finAck, s.finF = true, seq, p.N, p.Time, p.Ack, f
			s.finGap = c.gap
			f.afterPeerFin = s.state == "CLOSE-WAIT"
			switch s.state {
			case "CLOSE-WAIT":
				s.setState("LAST-ACK")
			case "SYN-SENT":
				// Zeek's SH: a FIN before any answer.
			default:
				s.setState("FIN-WAIT-1")
			}
			c.Findings = append(c.Findings, f)
		}
	}
	s.pkts++
	s.lastPkt, s.lastTime = p.N, p.Time
	if p.Len > 0 {
		s.lastDataEnd = p.Seq + uint32(p.Len)
	}
}

func seqGE(a, b uint32) bool { return int32(a-b) >= 0 }
