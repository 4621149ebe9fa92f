package explain

import (
	"fmt"
	"strings"
	"time"
)

// The lab's words for the causes explain can tell from the wire: the same
// sentences stack/reason.go writes for gVisor (so that a reason read from a
// capture and one the lab observed compare by cause, as demo/diff does).
const (
	wordsClose       = "close(): the application is done with the socket; no more data from this side"
	wordsShutWR      = "shutdown(SHUT_WR): half-close; no more data from this side, the socket can still read"
	wordsLinger      = "close() with SO_LINGER 0: abortive close, the send queue is discarded"
	wordsListener    = "listener closed with this connection still waiting in its accept queue"
	wordsRetransFIN  = "retransmitted FIN: the first was not acknowledged in time"
	wordsSimultClose = "FIN sent again to acknowledge the peer's crossing FIN: simultaneous close"
	wordsKeepalive   = "keepalive timeout: the peer answered none of the keepalive probes, so the stack gave up on the connection"
)

// minRTO is the shortest retransmission timeout of the stacks explain
// knows (Linux's and gVisor's 200 ms): a FIN after a silence this long may
// be the retransmission of a copy the capture lacks.
const minRTO = 200 * time.Millisecond

// Silences before a RST that make it look like an idle timeout: from
// idleLow on with low confidence, from idleMedium on with medium.
const (
	idleLow    = 15 * time.Second
	idleMedium = 60 * time.Second
)

// Cause classes, named as demo/diff's ReasonClass names them, plus two of
// explain's own.
const (
	ClassClose        = "close()"
	ClassShutWR       = "SHUT_WR"
	ClassRetransFIN   = "retransmitted FIN"
	ClassSimultaneous = "simultaneous close"
	ClassLinger       = "SO_LINGER 0"
	ClassUnread       = "unread data"
	ClassListener     = "listener closed"
	ClassDataAfter    = "data after close()"
	ClassAlreadyReset = "already reset"
	ClassGone         = "connection gone"
	ClassNoConnection = "no connection"
	ClassSYN          = "SYN"
	ClassTimeout      = "timeout"
	ClassKeepalive    = "keepalive timeout"
	ClassIdle         = "idle timeout"
	ClassMiddlebox    = "middlebox"
	ClassUnknown      = "unknown"
)

// finding starts the Finding for the FIN or RST p sent by side from.
func (c *Conn) finding(from uint8, p Packet, kind string) *Finding {
	s, o := &c.side[from], &c.side[1-from]
	st := s.state
	if st == "" {
		st = "?"
	}
	pst := o.state
	if pst == "" {
		pst = "?"
	}
	return &Finding{
		Conn: c.N, Packet: p.N, Time: p.Time, From: s.role, Src: p.Src.String(), Dst: p.Dst.String(),
		Flags: FlagString(p.Flags), Seq: p.Seq, Ack: p.Ack, Len: p.Len, Kind: kind,
		State: st, PeerState: pst,
	}
}

// set fills a finding's verdict.
func (f *Finding) set(class, reason, conf, why string, evidence ...int) {
	f.Class, f.Reason, f.Confidence, f.Why = class, reason, conf, why
	f.Evidence = nil
	for _, e := range evidence {
		if e > 0 {
			f.Evidence = append(f.Evidence, e)
		}
	}
}

// ref names packet n for the evidence text: "#12".
func ref(n int) string { return fmt.Sprintf("#%d", n) }

// refs names packets: "#12, #14".
func refs(ns []int) string {
	var b []string
	for _, n := range ns {
		b = append(b, ref(n))
	}
	return strings.Join(b, ", ")
}

// explainRST explains the RST p from side from, with the connection as the
// wire showed it before p. The rules, first match wins:
//
//  1. its TTL differs from every other packet of the sender, or its IPv4 ID
//     is far from the counter its other packets followed: middlebox-like;
//  2. it answers a SYN the sender never answered with SYN/ACK: no listener;
//  3. the sender had reset the connection already;
//  4. the peer's data arrived after the sender's FIN and was not ACKed:
//     data after close() (in FIN-WAIT-1 or FIN-WAIT-2);
//  5. the sender had left the connection (the peer's RST, LAST-ACK done),
//     or the RST has no ACK bit on a synchronized connection (no TCB
//     built it): a segment for a connection that no longer exists; a
//     client's RST without ACK that answers the SYN/ACK it never ACKed
//     says its socket was closed while connect() waited (close() in
//     SYN-SENT);
//  6. the sender retransmitted the same segment three times or more and
//     the peer answered none: retransmissions timed out;
//     the peer's SYN on a synchronized connection;
//  7. the peer's data reached the sender and the sender sent nothing after
//     it: close() with unread data;
//  8. after a silence of idleLow (15 s) or more, nothing unread and nothing
//     unACKed: an idle timeout (medium from idleMedium, 60 s);
//  9. otherwise, spontaneously, with or without the sender's own data
//     unacknowledged: close() with SO_LINGER 0;
//  10. unknown.
//
// Before rule 6: the sender's keepalive probes (seq one below its next, 0
// or 1 byte, nothing in flight) went unanswered: keepalive timeout; the
// RST answers the peer's keepalive probe without ACK: the connection is
// gone.
func (c *Conn) explainRST(from uint8, p Packet) *Finding {
	if c.gap < 0 {
		c.gap = 0
	}
	s, o := &c.side[from], &c.side[1-from]
	f := c.finding(from, p, "RST")
	state := s.state
	if state == "" || state == "CLOSED" && s.prevState != "" {
		state = s.prevState
	}
	answers := o.lastPkt // the segment it most likely answers
	ackBit := p.Flags&flagACK != 0
	switch {
	case s.ttlSet && !s.ttlVaries && p.TTL != s.ttl:
		f.set(ClassMiddlebox, fmt.Sprintf("middlebox-like RST: its TTL %d differs from the %d of every other packet from %s; a firewall, load balancer or IDS between the hosts may have forged it", p.TTL, s.ttl, s.role),
			Medium, fmt.Sprintf("TTL %d here, %d on %s's %d other packets", p.TTL, s.ttl, s.role, s.pkts), answers)
		f.Alternatives = []string{"the host itself, from a different stack path (some stacks send RSTs for unknown connections with another TTL)"}

	case p.HasID && s.idRun >= 3 && !s.idBroke && p.ID != 0 && p.ID-s.lastID > 64:
		f.set(ClassMiddlebox, fmt.Sprintf("middlebox-like RST: its IP ID %d is far from the counter of %s's other packets (last %d); a firewall, load balancer or IDS between the hosts may have forged it", p.ID, s.role, s.lastID),
			Medium, fmt.Sprintf("IP ID %d here; %s's %d other packets counted up one by one to %d", p.ID, s.role, s.pkts, s.lastID), answers)
		f.Alternatives = []string{"the host itself, from a path that does not use the connection's IP ID counter (Linux's RSTs for connections it no longer has)"}

	case o.state == "SYN-SENT" && s.synPkt == 0 && !s.rst && (!ackBit || p.Ack == o.base+1):
		f.set(ClassNoConnection, fmt.Sprintf("segment for no connection: nothing listens on port %d", s.addr.Port()),
			High, fmt.Sprintf("it answers %s's SYN %s; %s sent no SYN/ACK", o.role, ref(o.synPkt), s.role), o.synPkt)
		if c.midSYN || s.pkts > 0 {
			f.Confidence = Medium
		}
		f.Alternatives = []string{"a firewall rejecting the connection with RST (iptables -j REJECT --reject-with tcp-reset)"}

	case s.rst:
		f.set(ClassAlreadyReset, fmt.Sprintf("segment for a connection this host already reset (was %s): no socket owns it", prev(s)),
			High, fmt.Sprintf("%s reset the connection in %s; %s answers %s's later segment %s", s.role, ref(s.rstPkt), s.role, o.role, ref(answers)), s.rstPkt, answers)

	case s.fin && o.lastData > s.finPkt && (!s.ackSet || seqLT(s.ack, o.lastDataEnd)):
		conf := High
		why := fmt.Sprintf("%s sent FIN %s (%s); %s's data %s arrived after it and %s did not ACK it but reset", s.role, ref(s.finPkt), finAckedText(s), o.role, ref(o.lastData), s.role)
		if len(s.ackedAfterFin) > 0 {
			conf = Medium
			why += fmt.Sprintf("; it had ACKed data after its FIN (%s): a half-close, then close()", refs(s.ackedAfterFin))
		}
		if s.state != "FIN-WAIT-1" && s.state != "FIN-WAIT-2" {
			conf = Medium
		}
		gone := "segment for a connection that no longer exists: the FIN-WAIT-2 timer ran out and the stack forgot it"
		if !ackBit {
			// A RST without ACK comes from no connection state: gVisor
			// after its FIN-WAIT-2 timer, or Linux's timewait socket
			// that holds an orphan in FIN-WAIT-2 (until tcp_fin_timeout).
			conf = Low
			why += "; a RST without ACK: built from no connection state (a forgotten connection, or Linux's FIN-WAIT-2 orphan)"
			if s.finAcked != 0 && p.Time.Sub(s.finTime) > 60*time.Second {
				f.set(ClassGone, gone, Medium, why+fmt.Sprintf("; %.0f s after the FIN, past the usual 60 s FIN-WAIT-2 time", p.Time.Sub(s.finTime).Seconds()), s.finPkt, s.finAcked, o.lastData)
				f.Alternatives = []string{"data arrived in FIN-WAIT-2 after close()"}
				break
			}
			f.Alternatives = []string{gone}
		}
		f.set(ClassDataAfter, fmt.Sprintf("data arrived in %s after close(): no socket owns the connection any more, nobody can read it", state),
			conf, why, s.finPkt, s.finAcked, o.lastData)

	case s.state == "CLOSED" && o.rst:
		f.set(ClassGone, fmt.Sprintf("segment for a connection that no longer exists: it left %s and the stack forgot it", prev(s)),
			High, fmt.Sprintf("%s reset the connection in %s; %s answers its later segment %s", o.role, ref(o.rstPkt), s.role, ref(answers)), o.rstPkt, answers)

	case s.state == "CLOSED":
		f.set(ClassGone, fmt.Sprintf("segment for a connection that no longer exists: it left %s and the stack forgot it", prev(s)),
			High, fmt.Sprintf("%s's FIN %s was ACKed in %s: %s had closed; it answers %s", s.role, ref(s.finPkt), ref(s.finAcked), s.role, ref(answers)), s.finPkt, s.finAcked, answers)

	case !ackBit && state == "SYN-SENT" && s.synPkt != 0 && o.synPkt != 0 && answers == o.synPkt && p.Seq == s.base+1:
		// RFC 9293 3.10.7.3: in SYN-SENT an acceptable SYN/ACK is
		// answered with an ACK; a RST with the seq it acknowledged and
		// no ACK bit comes from no connection state: the socket was
		// gone when the SYN/ACK came.
		f.set(ClassGone, fmt.Sprintf("segment for a connection that no longer exists: %s's socket was closed while connect() waited (close() in SYN-SENT sends nothing), and its stack answered the SYN/ACK", s.role),
			Medium, fmt.Sprintf("%s never ACKed %s's SYN/ACK %s; the RST takes its seq from that SYN/ACK's ack and has no ACK bit: no connection state built it", s.role, o.role, ref(o.synPkt)), s.synPkt, o.synPkt)
		f.Alternatives = []string{"the application was killed or crashed while connecting", "a connect() that timed out on the application's own timer, just as the SYN/ACK came"}

	case !ackBit && s.synPkt != 0 && o.synPkt != 0:
		why := fmt.Sprintf("a RST without ACK takes its seq from the segment it answers (%s): no connection state built it", ref(answers))
		if s.fin {
			why += fmt.Sprintf("; %s had sent FIN %s at %.3f s and its FIN-WAIT-2 time may have run out", s.role, ref(s.finPkt), s.finTime.Sub(c.First).Seconds())
		}
		f.set(ClassGone, fmt.Sprintf("segment for a connection that no longer exists: it left %s and the stack forgot it", state),
			Medium, why, s.finPkt, answers)

	case s.probes >= 1 && o.lastPkt < s.firstProbe:
		conf := Medium
		why := fmt.Sprintf("%s sent %d keepalive probe(s) (seq one below its next, 0 or 1 byte, after %.0f s of silence) from %s to %s and %s answered none", s.role, s.probes, c.probeGap(s).Seconds(), ref(s.firstProbe), ref(s.lastProbe), o.role)
		if s.probes == 1 {
			conf = Low
		}
		f.set(ClassKeepalive, wordsKeepalive, conf, why, s.firstProbe, s.lastProbe)
		f.Alternatives = []string{"the application gave up on the silence and closed with SO_LINGER 0"}

	case o.probes >= 1 && answers == o.lastProbe && !ackBit:
		f.set(ClassGone, "segment for a connection that no longer exists: the peer's keepalive probe found it gone", Medium,
			fmt.Sprintf("it answers %s's keepalive probe %s after %.0f s of silence, without ACK: no connection state built it", o.role, ref(o.lastProbe), c.gap.Seconds()), o.lastProbe)

	case s.tailRetrans >= 3 && o.lastPkt < s.firstTail:
		f.set(ClassTimeout, "retransmissions timed out: the stack gave up on the connection", Medium,
			fmt.Sprintf("%s sent the same data %d times since %s and %s answered none of them", s.role, s.tailRetrans+1, ref(s.firstTail), o.role), s.firstTail, s.lastPkt)
		f.Alternatives = []string{"a user timeout (TCP_USER_TIMEOUT) or the application giving up"}

	case o.synAgain != 0 && o.lastPkt == o.synAgain:
		f.set(ClassSYN, fmt.Sprintf("SYN arrived for a connection in %s", state), Medium,
			fmt.Sprintf("%s's SYN %s on a connection already synchronized", o.role, ref(o.synAgain)), o.synAgain)

	case o.sent > 0 && s.lastData < o.lastData:
		unread := int64(0)
		if s.maxWin > s.win {
			unread = min(int64(s.maxWin-s.win), o.sent)
		}
		conf := Low
		why := fmt.Sprintf("%s's %d bytes reached %s (last %s), and %s sent no data after them and no FIN", o.role, o.sent, s.role, ref(o.lastData), s.role)
		if unread > 0 {
			conf = Medium
			why += fmt.Sprintf("; its window stayed %d bytes below its largest (%d): unread", unread, s.maxWin)
		}
		f.set(ClassUnread, "close() with unread bytes in receive buffer: they would be lost silently, so reset instead of FIN (RFC 2525 2.17)",
			conf, why, o.lastData, s.ackPkt)
		f.Alternatives = []string{"shutdown(SHUT_RDWR) with unread bytes (gVisor resets; Linux sends FIN)"}
		if s.role == "server" && s.sent == 0 {
			f.Alternatives = append(f.Alternatives, wordsListener)
		}

	case c.gap >= idleLow && (s.synPkt != 0 || c.midSYN) && (!o.ackSet || !seqLT(o.ack, s.nxt)):
		conf := Low
		if c.gap >= idleMedium {
			conf = Medium
		}
		f.set(ClassIdle, fmt.Sprintf("idle timeout: after %.0f s without a packet, %s gave up on the connection", c.gap.Seconds(), s.role), conf,
			fmt.Sprintf("the connection was silent for %.0f s before it (last packet %s); nothing unread, nothing of %s's unACKed, no keepalive probe", c.gap.Seconds(), ref(answers), s.role), max(answers, s.lastPkt))
		f.Alternatives = []string{"an application's idle timer closing with SO_LINGER 0", "a NAT or firewall that dropped the connection from its table (a middlebox-like RST)"}

	case s.synPkt != 0 || c.midSYN:
		conf := Low
		why := fmt.Sprintf("no FIN before it, nothing unread, and it answers no segment that needs a RST")
		if o.ackSet && seqLT(o.ack, s.nxt) {
			conf = Medium
			why += fmt.Sprintf("; %d bytes %s sent were not yet ACKed: the send queue was discarded", s.nxt-o.ack, s.role)
		} else if answers == 0 || answers < s.lastPkt {
			conf = Medium
			why += fmt.Sprintf("; %s's last packet %s came before %s's own %s: the RST is %s's own initiative", o.role, ref(answers), s.role, ref(s.lastPkt), s.role)
		}
		f.set(ClassLinger, wordsLinger, conf, why, c.estab, s.lastPkt)
		f.Alternatives = []string{"the application was killed or crashed with the socket open", "an idle or keepalive timeout"}
		if s.role == "server" && s.sent == 0 && o.sent == 0 {
			f.Alternatives = append(f.Alternatives, wordsListener)
		}

	default:
		f.set(ClassUnknown, "unknown", None, fmt.Sprintf("the capture has no SYN of %s and nothing %s sent before the RST says why; missing: the start of the connection", s.role, s.role), answers)
	}
	return f
}

// prev returns the state the side was in before it closed.
func prev(s *side) string {
	if s.state == "CLOSED" && s.prevState != "" {
		return s.prevState
	}
	if s.state == "" {
		return "an unknown state"
	}
	return s.state
}

// finAckedText says whether the side's FIN was ACKed.
func finAckedText(s *side) string {
	if s.finAcked != 0 {
		return "ACKed in " + ref(s.finAcked)
	}
	return "not ACKed"
}

// explainFINAgain explains a FIN whose sequence number the sender's
// earlier FIN had: a retransmission, or the second FIN of a simultaneous
// close that now acknowledges the peer's.
func (c *Conn) explainFINAgain(from uint8, p Packet) *Finding {
	s, o := &c.side[from], &c.side[1-from]
	f := c.finding(from, p, "FIN")
	if p.Ack != s.finAck && o.fin && seqGE(p.Ack, o.finSeq+1) && seqLT(s.finAck, o.finSeq+1) && s.finAcked == 0 {
		f.set(ClassSimultaneous, wordsSimultClose, High,
			fmt.Sprintf("same seq as %s's FIN %s, now ACKing %s's FIN %s that crossed it", s.role, ref(s.finPkt), o.role, ref(o.finPkt)), s.finPkt, o.finPkt)
		return f
	}
	conf := High
	why := fmt.Sprintf("same seq as %s's FIN %s, %.3f s earlier", s.role, ref(s.finPkt), p.Time.Sub(s.finTime).Seconds())
	if s.finAcked != 0 {
		conf = Medium
		why += fmt.Sprintf("; the first was ACKed in %s (the ACK may have been lost after the capture point)", ref(s.finAcked))
	} else {
		why += "; no ACK of it on the wire"
	}
	f.set(ClassRetransFIN, wordsRetransFIN, conf, why, s.finPkt)
	return f
}

// explainFIN decides the cause of a side's first FIN, once the whole
// connection is known: what the side did after it shows whether it could
// still read.
func (c *Conn) explainFIN(s *side) {
	f := s.finF
	if f == nil {
		return
	}
	var rstAfter *Finding
	for _, g := range c.Findings {
		if g.Kind == "RST" && g.From == s.role && g.Class == ClassDataAfter {
			rstAfter = g
		}
	}
	switch {
	case len(s.ackedAfterFin) > 0:
		f.set(ClassShutWR, wordsShutWR, Medium,
			fmt.Sprintf("%s went on ACKing the peer's data after its FIN (%s): the socket could still read", s.role, refs(s.ackedAfterFin)), s.ackedAfterFin...)
		f.Alternatives = []string{"close() on a stack that keeps reading after close (none known)"}
	case rstAfter != nil:
		f.set(ClassClose, wordsClose, Medium,
			fmt.Sprintf("the peer's data after it was answered by RST %s: nothing could read any more", ref(rstAfter.Packet)), rstAfter.Packet)
	case s.finGap >= idleLow && !f.afterPeerFin:
		f.set(ClassClose, wordsClose, Low,
			fmt.Sprintf("it follows %.0f s without a packet: most likely an idle timeout of the application (an HTTP keep-alive timeout, a pool's idle limit) closed the socket", s.finGap.Seconds()))
		f.Alternatives = []string{wordsShutWR + ", on the same idle timer"}
	case f.afterPeerFin:
		f.set(ClassClose, wordsClose, Medium,
			fmt.Sprintf("it answers the peer's FIN (%s was in CLOSE-WAIT): an application that read EOF usually closes; the wire cannot tell close() from a half-close (SHUT_WR) here", s.role))
		f.Alternatives = []string{wordsShutWR}
	default:
		f.set(ClassClose, wordsClose, Low,
			"the wire cannot tell close() from a half-close (SHUT_WR): no data from the peer came after it to show whether the socket still read")
		f.Alternatives = []string{wordsShutWR}
		if s.finGap >= minRTO {
			// A first copy lost before the capture point leaves only
			// its retransmission, one retransmission timeout later.
			f.Alternatives = append(f.Alternatives, fmt.Sprintf("%s, of a first copy lost before the capture point (it follows %.3f s of silence, at least one retransmission timeout)", wordsRetransFIN, s.finGap.Seconds()))
		}
	}
}

// probeGap is the silence before side s's first keepalive probe of its
// latest run: the time since the packet before it.
func (c *Conn) probeGap(s *side) time.Duration { return s.probeGap }
