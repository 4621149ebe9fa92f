package stack

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/tcplab/tcplab/stack/trace"
)

// This file gives every arrival its verdict: accepted by the stack, or
// refused and why. See the package documentation for the method.

// rxModel is what a Conn knows of its receive side, enough to apply
// gVisor's acceptability rules (receiver.acceptable, handleReset, the
// SYN and TIME-WAIT rules) to an arriving segment. It is guarded by
// Conn.mu.
type rxModel struct {
	nxt     uint32 // RCV.NXT: the latest of the probe's, our last ACK, accepted in-order arrivals
	haveNxt bool
	win     uint16 // the window last advertised on the wire (unscaled)
	haveWin bool
	synWin  bool  // win is from our SYN or SYN-ACK: never scaled
	scale   uint8 // receive window scale, from the probe or the SYN options
	ourWS   int   // the window scale option of our SYN, -1 for none
	peerWS  bool  // the peer's SYN carried a window scale option
	probed  bool  // scale comes from a probe snapshot

	// answers are the ACKs the stack owes refused arrivals (a challenge
	// ACK, an ACK to a segment outside the window), oldest first: each
	// is owed until an ACK leaves or the probe shows that the stack
	// handled its arrival without answering (rate limit).
	answers []owed
	// queued counts arrivals handed to the endpoint in a synchronized
	// state (each fires the probe once handled), probes the probe's
	// callbacks.
	queued, probes int
}

// owed is one answer a refused arrival is owed.
type owed struct {
	reason string
	rst    bool // the answer is a RST (else a bare ACK)
	at     int  // the arrival's number among queued
}

// window returns the receive window [RCV.NXT, RCV.NXT+advertised] the
// stack checks arrivals against, and whether it is known.
func (m *rxModel) window() (nxt, acc seqnum.Value, ok bool) {
	if !m.haveNxt || !m.haveWin {
		return 0, 0, false
	}
	scale := m.scale
	if m.synWin || !m.probed && (m.ourWS < 0 || !m.peerWS) {
		scale = 0
	}
	n := seqnum.Value(m.nxt)
	return n, n.Add(seqnum.Size(m.win) << scale), true
}

// advance moves RCV.NXT to n if n is beyond it.
func (m *rxModel) advance(n uint32) {
	if !m.haveNxt || after(n, m.nxt) {
		m.nxt, m.haveNxt = n, true
	}
}

// rxOut updates the model from a segment the host sent: every segment
// with ACK carries RCV.NXT and the window the stack advertises.
func (c *Conn) rxOut(s *segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := &c.rx
	syn := s.flags&header.TCPFlagSyn != 0
	if syn {
		m.ourWS = s.ws
	}
	if s.flags&header.TCPFlagRst != 0 || s.flags&header.TCPFlagAck == 0 || (m.haveWin && !m.synWin && syn) {
		return
	}
	m.advance(s.ack)
	m.win, m.haveWin, m.synWin = s.win, true, syn
}

// rxProbe updates the model from the probe's snapshot, taken after the
// stack handled one arrival. It runs on the processor goroutine with the
// endpoint locked.
func (c *Conn) rxProbe(st *tcp.TCPEndpointState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := &c.rx
	m.advance(uint32(st.Receiver.RcvNxt))
	m.scale, m.probed = st.Receiver.RcvWndScale, true
	m.probes++
	if m.probes > m.queued {
		// A segment queued before the connection was synchronized,
		// handled after: count it.
		m.queued = m.probes
	}
	for len(m.answers) > 0 && m.answers[0].at <= m.probes {
		// The stack handled the refused arrival without answering it
		// (e.g. the challenge ACK was rate-limited).
		m.answers = m.answers[1:]
	}
}

// answerFor returns the reason of s if it answers a refused arrival (a
// bare ACK, or a RST without ACK), and forgets it.
func (c *Conn) answerFor(s *segment) string {
	rst := s.flags == header.TCPFlagRst
	if !rst && s.flags != header.TCPFlagAck || s.len != 0 {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rx.answers) == 0 || c.rx.answers[0].rst != rst {
		return ""
	}
	r := c.rx.answers[0].reason
	c.rx.answers = c.rx.answers[1:]
	return r
}

// synchronized reports whether gVisor handles an endpoint's arrivals with
// handleSegmentLocked, which calls the probe once per segment.
func synchronized(st tcp.EndpointState) bool {
	switch st {
	case tcp.StateEstablished, tcp.StateFinWait1, tcp.StateFinWait2, tcp.StateCloseWait, tcp.StateClosing, tcp.StateLastAck:
		return true
	}
	return false
}

// judgement is a verdict on one arrival.
type judgement struct {
	verdict  string
	why      string
	observed bool
	evidence string
	answer   string // reason for the ACK the stack will answer with
}

func accept(evidence string) judgement {
	return judgement{verdict: trace.Accepted, evidence: evidence}
}

func refuse(why, evidence, answer string) judgement {
	return judgement{verdict: trace.Refused, why: why, evidence: evidence, answer: answer}
}

// judge applies gVisor's rules for a connection in state st to s (see
// transport/tcp: handleSegmentLocked, handleReset, receiver.acceptable,
// handleRcvdSegmentClosing, handleTimeWaitSegment). The result is
// inferred: tcplab's reading of the rules, against RCV.NXT and the window
// it observed.
func (c *Conn) judge(s *segment, st tcp.EndpointState) judgement {
	c.mu.Lock()
	defer c.mu.Unlock()
	rst := s.flags&header.TCPFlagRst != 0
	syn := s.flags&header.TCPFlagSyn != 0
	ack := s.flags&header.TCPFlagAck != 0
	switch st {
	case tcp.StateListen:
		switch {
		case rst:
			return refuse(trace.WhyNoConnection, "a listener ignores a RST", "")
		case syn && ack:
			return refuse(trace.WhyNoConnection, "a listener answers a SYN-ACK with RST (RFC 793 p. 65)", "")
		}
		return accept("handed to the listener")
	case tcp.StateSynSent, tcp.StateConnecting:
		return c.judgeSynSent(s)
	case tcp.StateSynRecv:
		return c.judgeSynRcvd(s)
	case tcp.StateInitial, tcp.StateBound:
		return accept("no handshake yet")
	case tcp.StateClose, tcp.StateError:
		return accept("the connection is closing down")
	}
	nxt, acc, ok := c.rx.window()
	if !ok {
		return accept("receive window not known yet")
	}
	seq := seqnum.Value(s.seq)
	wnd := fmt.Sprintf("RCV.NXT %d, window [%d, %d]", nxt, nxt, acc)
	if st == tcp.StateTimeWait {
		switch {
		case rst:
			return refuse(trace.WhyTimeWaitRST, "TIME-WAIT drops every RST (RFC 1337)", "")
		case syn && nxt.LessThan(seq):
			return accept("a new SYN in TIME-WAIT, beyond " + wnd + ": handed to the listener")
		case !ack:
			return refuse(trace.WhyNoACK, "TIME-WAIT drops segments without ACK", "")
		case s.flags&header.TCPFlagFin != 0 && seq.Add(1) == nxt:
			return accept("retransmitted FIN in TIME-WAIT: acknowledged again, TIME-WAIT restarts")
		case seq != nxt || s.len != 0:
			return refuse(trace.WhyOutOfWindow, fmt.Sprintf("seq %d: in TIME-WAIT only RCV.NXT %d without data is acceptable", seq, nxt),
				reasonTimeWait)
		}
		return accept("in TIME-WAIT, at RCV.NXT")
	}
	// Synchronized states.
	switch {
	case rst:
		if !header.Acceptable(seq, 0, nxt, acc) {
			return refuse(trace.WhyOutOfWindow, fmt.Sprintf("RST seq %d outside %s: dropped silently (RFC 5961 3.2)", seq, wnd), "")
		}
		if seq != nxt {
			return refuse(trace.WhyChallenge, fmt.Sprintf("RST seq %d inside %s but not RCV.NXT (RFC 5961 3.2)", seq, wnd),
				reasonChallengeRST)
		}
		return accept(fmt.Sprintf("RST seq %d = RCV.NXT: the connection is reset", seq))
	case syn:
		return refuse(trace.WhyChallenge, fmt.Sprintf("SYN on a synchronized connection (%s, RFC 5961 4.2)", StateName(uint32(st))),
			reasonChallengeSYN)
	case !ack:
		return refuse(trace.WhyNoACK, "a synchronized connection drops segments without ACK (RFC 793 p. 72)", "")
	}
	if !header.Acceptable(seq, seqnum.Size(s.len), nxt, acc) {
		why, answer := trace.WhyOutOfWindow, reasonOutOfWindow
		end := seq.Add(seqnum.Size(s.len))
		switch {
		case s.len > 0 && end.LessThanEq(nxt):
			why, answer = trace.WhyDuplicate, reasonDuplicate
		case s.len == 0 && seq.LessThan(nxt):
			why, answer = trace.WhyOldSegment, reasonOldSegment
		}
		return refuse(why, fmt.Sprintf("seq %d length %d outside %s", seq, s.len, wnd), answer)
	}
	switch st {
	case tcp.StateCloseWait, tcp.StateClosing, tcp.StateLastAck:
		if nxt.LessThan(seq) {
			return refuse(trace.WhyOutOfWindow, fmt.Sprintf("seq %d beyond the peer's FIN (RCV.NXT %d), in %s", seq, nxt, StateName(uint32(st))), "")
		}
	}
	if st != tcp.StateEstablished && c.led.haveOut && after(s.ack, c.sndNxt()) {
		return refuse(trace.WhyUnsentACK, fmt.Sprintf("ack %d beyond what was sent, in %s", s.ack, StateName(uint32(st))),
			reasonUnsentACK)
	}
	// Accepted: an in-order segment moves RCV.NXT (what gVisor's
	// consumeSegment does), so that the next arrival, perhaps still
	// queued behind this one, is judged against the right window.
	if end := seq.Add(seqnum.Size(s.logicalLen())); seq.LessThanEq(nxt) && nxt.LessThan(end) {
		c.rx.advance(uint32(end))
	}
	return accept(fmt.Sprintf("seq %d length %d inside %s", seq, s.len, wnd))
}

// judgeSynSent applies handshake.synSentState: a RST counts only if it
// acknowledges our SYN; any other ACK of something else is answered with
// a RST; without SYN nothing else matters. Called with c.mu.
func (c *Conn) judgeSynSent(s *segment) judgement {
	if !c.led.haveOut {
		return accept("our SYN not seen yet")
	}
	iss1 := c.led.isnOut + 1
	ack := s.flags&header.TCPFlagAck != 0
	switch {
	case s.flags&header.TCPFlagRst != 0:
		if ack && s.ack == iss1 {
			return accept(fmt.Sprintf("RST acknowledging our SYN (ack %d = ISS+1): the connection is refused", s.ack))
		}
		return refuse(trace.WhyBadACK, fmt.Sprintf("RST in SYN-SENT without ACK %d of our SYN: dropped (RFC 793 p. 66)", iss1), "")
	case ack && s.ack != iss1:
		return refuse(trace.WhyBadACK, fmt.Sprintf("ack %d in SYN-SENT, want ISS+1 = %d", s.ack, iss1), reasonBadACKRST)
	case s.flags&header.TCPFlagSyn == 0:
		return refuse(trace.WhyNoSYN, "SYN-SENT drops segments without SYN (RFC 793 p. 68)", "")
	}
	return accept(fmt.Sprintf("SYN acknowledging our SYN (ack %d)", s.ack))
}

// judgeSynRcvd applies handshake.synRcvdState: a RST counts inside the
// window; an ACK must acknowledge our SYN (or be a valid SYN cookie, which
// tcplab cannot check: it assumes none); the sequence number must be in
// the window. Called with c.mu.
func (c *Conn) judgeSynRcvd(s *segment) judgement {
	nxt, acc, ok := c.rx.window()
	if !ok || !c.led.haveOut {
		return accept("our SYN-ACK not seen yet")
	}
	seq := seqnum.Value(s.seq)
	in := seq.InWindow(nxt, nxt.Size(acc))
	wnd := fmt.Sprintf("window [%d, %d)", nxt, acc)
	switch {
	case s.flags&header.TCPFlagRst != 0:
		if in {
			return accept(fmt.Sprintf("RST seq %d inside %s: the handshake is aborted", seq, wnd))
		}
		return refuse(trace.WhyOutOfWindow, fmt.Sprintf("RST seq %d outside %s: dropped (RFC 793 p. 69)", seq, wnd), "")
	case s.flags&header.TCPFlagAck != 0 && s.ack != c.led.isnOut+1:
		return refuse(trace.WhyBadACK, fmt.Sprintf("ack %d in SYN-RECEIVED, want ISS+1 = %d (and no SYN cookie)", s.ack, c.led.isnOut+1), reasonBadACKRST)
	case !in:
		return refuse(trace.WhyOutOfWindow, fmt.Sprintf("seq %d outside %s", seq, wnd), reasonOutOfWindow)
	}
	return accept(fmt.Sprintf("seq %d inside %s", seq, wnd))
}

// sndNxt is SND.NXT as the tap saw it: the end of the highest byte sent,
// or ISN+1 before any data, one more once a FIN left. Called with c.mu.
func (c *Conn) sndNxt() uint32 {
	n := c.led.isnOut + 1
	if c.led.hasSent && after(c.led.sentEnd, n) {
		n = c.led.sentEnd
	}
	if c.finSent && after(c.finSeq+1, n) {
		n = c.finSeq + 1
	}
	return n
}

// logicalLen is the segment's length in sequence space (SYN and FIN
// count one).
func (s *segment) logicalLen() int {
	n := s.len
	if s.flags&header.TCPFlagSyn != 0 {
		n++
	}
	if s.flags&header.TCPFlagFin != 0 {
		n++
	}
	return n
}

// counters are the stack's drop counters for arrivals that fail its
// synchronous checks, read around the delivery of one packet.
type counters struct {
	ipMalformed, l4Malformed, tcpInvalid, tcpChecksum, tcpValid uint64
}

// counterSet holds the stack's counters that counters reads.
type counterSet struct {
	ipMalformed, l4Malformed, tcpInvalid, tcpChecksum, tcpValid *tcpip.StatCounter
}

func newCounterSet(s *tcpipstack.Stack) counterSet {
	st := s.Stats()
	return counterSet{
		ipMalformed: st.IP.MalformedPacketsReceived,
		l4Malformed: st.NICs.MalformedL4RcvdPackets,
		tcpInvalid:  st.TCP.InvalidSegmentsReceived,
		tcpChecksum: st.TCP.ChecksumErrors,
		tcpValid:    st.TCP.ValidSegmentsReceived,
	}
}

// counters reads the stack's counters: five atomic loads.
func (h *Host) counters() counters {
	cs := &h.tap.ctr
	return counters{
		ipMalformed: cs.ipMalformed.Value(),
		l4Malformed: cs.l4Malformed.Value(),
		tcpInvalid:  cs.tcpInvalid.Value(),
		tcpChecksum: cs.tcpChecksum.Value(),
		tcpValid:    cs.tcpValid.Value(),
	}
}

// arrival is one inbound segment between its tap and its verdict.
type arrival struct {
	s       segment
	c       *Conn
	ep      *tcp.Endpoint // the endpoint gVisor will hand it to, nil for none
	guess   judgement     // the verdict expected before delivery
	pending *trace.Pending
	before  counters
}

// arrive records an inbound packet before the stack sees it: it parses
// it, finds its connection and endpoint, predicts the verdict, updates
// the connection's record for an accepted arrival, and opens its event.
// It returns nil for a packet that is not a TCP segment. It runs on the
// goroutine delivering the packet, serialised by the tap.
func (h *Host) arrive(pkt *tcpipstack.PacketBuffer) *arrival {
	n := headLen
	if h.keep {
		n = pkt.Size()
	}
	b, total := packetHead(pkt, n)
	s, st := parseTCP(b, total)
	if st == notTCP {
		return nil
	}
	a := &arrival{s: s}
	switch {
	case st == parsedMalformed:
		a.guess = refuse(trace.WhyMalformed, "the TCP header does not fit in the packet", "")
	case !checksumValid(pkt, b, &s):
		a.guess = refuse(trace.WhyBadChecksum, "tcplab recomputed the checksum", "")
	}
	valid := a.guess.verdict == ""
	a.c = h.lookup(&s, false, valid)
	if valid {
		id := tcpipstack.TransportEndpointID{
			LocalPort: s.dst.Port(), LocalAddress: tcpip.AddrFromSlice(s.dst.Addr().AsSlice()),
			RemotePort: s.src.Port(), RemoteAddress: tcpip.AddrFromSlice(s.src.Addr().AsSlice()),
		}
		if te := h.s.FindTransportEndpoint(header.IPv4ProtocolNumber, tcp.ProtocolNumber, id, nicID); te != nil {
			a.ep, _ = te.(*tcp.Endpoint)
		}
		switch {
		case a.ep == nil:
			a.guess = refuse(trace.WhyNoConnection, "no endpoint owns the 4-tuple", "")
		case a.c == nil:
			a.guess = accept("no record of this connection")
		default:
			a.guess = a.c.judge(&s, a.ep.EndpointState())
		}
	}
	if c := a.c; c != nil {
		if a.guess.verdict == trace.Accepted {
			c.noteIn(&s)
			if s.flags&header.TCPFlagSyn != 0 {
				c.mu.Lock()
				c.rx.peerWS = s.ws >= 0
				c.mu.Unlock()
			}
		} else {
			c.noteRefused(&s, a.guess)
		}
	}
	var packet []byte
	if h.keep {
		packet = b
	}
	ev := trace.Event{
		Host: h.name, Kind: trace.Segment, Dir: "in",
		Src: s.src.String(), Dst: s.dst.String(), Flags: s.Flags(),
		Seq: s.seq, Ack: s.ack, Win: s.win, Len: s.len, Payload: s.payload,
		Packet: packet,
	}
	if a.c != nil {
		ev.Conn = a.c.id
	}
	a.pending = h.rec.Open(ev)
	a.before = h.counters()
	return a
}

// noteRefused records a refused arrival: it changes nothing in the
// connection, except that the stack owes it an answer.
func (c *Conn) noteRefused(s *segment, j judgement) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j.why == trace.WhyNoConnection {
		// The RST answering it explains itself from what arrived.
		c.lastIn, c.haveIn = *s, true
		c.inWhileClosed = c.state == "CLOSED" && c.prev != ""
	}
	if j.answer != "" {
		c.rx.answers = append(c.rx.answers, owed{reason: answerPrefix + j.answer, rst: j.answer == reasonBadACKRST, at: c.rx.queued + 1})
	}
}

// judged completes an arrival once the stack's synchronous part ran: the
// counters that moved are the stack's own verdict on the checks it makes
// while delivering (IP and TCP header, checksum, endpoint lookup);
// otherwise the segment was queued to its endpoint and the predicted
// verdict stands, inferred.
func (h *Host) judged(a *arrival) {
	d := h.counters()
	b := a.before
	j := a.guess
	seen := func(why, evidence string) {
		if j.verdict != trace.Refused || j.why != why {
			evidence += fmt.Sprintf(" (tcplab expected %s %s)", j.verdict, j.why)
		}
		j = judgement{verdict: trace.Refused, why: why, observed: true, evidence: evidence}
	}
	switch {
	case d.tcpChecksum > b.tcpChecksum:
		seen(trace.WhyBadChecksum, fmt.Sprintf("TCP ChecksumErrors +%d", d.tcpChecksum-b.tcpChecksum))
	case d.tcpInvalid > b.tcpInvalid:
		seen(trace.WhyMalformed, fmt.Sprintf("TCP InvalidSegmentsReceived +%d", d.tcpInvalid-b.tcpInvalid))
	case d.ipMalformed > b.ipMalformed:
		seen(trace.WhyMalformed, fmt.Sprintf("IP MalformedPacketsReceived +%d", d.ipMalformed-b.ipMalformed))
	case d.l4Malformed > b.l4Malformed:
		// With no endpoint for the 4-tuple, gVisor counts a bad
		// checksum as a malformed transport header.
		why, ev := trace.WhyMalformed, fmt.Sprintf("NIC MalformedL4RcvdPackets +%d", d.l4Malformed-b.l4Malformed)
		if a.guess.why == trace.WhyBadChecksum {
			why, ev = trace.WhyBadChecksum, ev+"; no endpoint, and tcplab recomputed the checksum"
		}
		seen(why, ev)
	case d.tcpValid > b.tcpValid:
		// Queued to its endpoint: the rest is asynchronous.
		if a.c != nil && a.ep != nil && synchronized(a.ep.EndpointState()) {
			a.c.mu.Lock()
			a.c.rx.queued++
			a.c.mu.Unlock()
		}
		if j.verdict == "" || j.why == trace.WhyNoConnection || j.why == trace.WhyBadChecksum || j.why == trace.WhyMalformed {
			j = accept("TCP ValidSegmentsReceived +1")
		}
	default:
		if a.guess.why == trace.WhyNoConnection {
			j.observed = true
			j.evidence = "no endpoint owns the 4-tuple, and the stack queued the segment nowhere"
			if a.s.flags&header.TCPFlagRst == 0 {
				j.evidence += ": answered by RST"
			}
		}
	}
	a.pending.End(func(e *trace.Event) {
		e.Verdict, e.Why, e.Observed, e.Evidence = j.verdict, j.why, j.observed, j.evidence
	})
}

// checksumValid recomputes the TCP checksum of an inbound packet as gVisor
// does (header.TCP.IsChecksumValid). b is the packet's head, s its parse.
func checksumValid(pkt *tcpipstack.PacketBuffer, b []byte, s *segment) bool {
	ip := header.IPv4(b)
	hl := int(ip.HeaderLength())
	t := header.TCP(b[hl : hl+s.off])
	payload := pkt.Data().AsRange().SubRange(hl + s.off).Capped(s.len).ToSlice()
	return t.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(payload, 0), uint16(s.len))
}

// addrPort builds an address for a malformed segment's parse.
func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(addrOf(a), port)
}
