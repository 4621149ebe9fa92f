package stack

import (
	"fmt"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/stack/trace"
)

// reason explains why the host sends the FIN or RST s, from what the
// application did to the connection and what last arrived on it. The rules
// mirror gVisor's (transport/tcp: closeLocked, shutdownLocked, rcv.go) and
// RFC 793/1122/2525. c is nil when no socket of the host owns the 4-tuple.
func (h *Host) reason(c *Conn, s *segment) string {
	rst := s.flags&header.TCPFlagRst != 0
	if c == nil {
		if !rst {
			return "FIN on a connection this host does not know"
		}
		h.mu.Lock()
		l := h.listeners[s.src.Port()]
		h.mu.Unlock()
		if l == nil {
			return fmt.Sprintf("segment for no connection: nothing listens on port %d", s.src.Port())
		}
		return fmt.Sprintf("segment for no connection: no socket owns this 4-tuple on port %d", s.src.Port())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !rst {
		if c.finSent && s.seq+uint32(s.len) == c.finSeq {
			if s.ack != c.finAck && c.state == "CLOSING" {
				return "FIN sent again (" + c.finCause + ") to acknowledge the peer's crossing FIN: simultaneous close"
			}
			return "retransmitted FIN (" + c.finCause + "): the first was not acknowledged in time"
		}
		if r := FINReason(c.finCause); r != "" {
			return r
		}
		return "FIN queued by the stack in " + c.state + " without close() or shutdown()"
	}
	before := c.state
	if before == "CLOSED" && c.prev != "" {
		before = c.prev
	}
	switch {
	case c.inWhileClosed && !c.rstSent:
		return fmt.Sprintf("segment for a connection that no longer exists: it left %s and the stack forgot it", before)
	case c.rstSent:
		return fmt.Sprintf("segment for a connection this host already reset (was %s): no socket owns it", before)
	case c.inCall == "close()" && c.lingerZero:
		return "close() with SO_LINGER 0: abortive close, the send queue is discarded"
	case c.inCall != "" && c.unreadAtCall > 0:
		return fmt.Sprintf("%s with %d unread bytes in receive buffer: they would be lost silently, so reset instead of FIN (RFC 2525 2.17)", c.inCall, c.unreadAtCall)
	case c.listener != nil && !c.accepted && c.listener.isClosed():
		return "listener closed with this connection still waiting in its accept queue"
	case c.dataAfterClose:
		return fmt.Sprintf("data arrived in %s after close(): no socket owns the connection any more, nobody can read it", before)
	case c.dataAfterShutRD:
		return fmt.Sprintf("data arrived in %s after shutdown(SHUT_RD)", before)
	case c.haveIn && c.lastIn.flags&header.TCPFlagSyn != 0:
		return fmt.Sprintf("SYN arrived for a connection in %s", before)
	}
	return "reset by the stack in " + before
}

// FINReason words the reason for a FIN queued by cause, the call that
// queued it: "close()", "shutdown(SHUT_WR)" or "shutdown(SHUT_RDWR)"; ""
// for anything else. Package kernelpeer words Linux's FINs the same way.
func FINReason(cause string) string {
	switch cause {
	case "close()":
		return "close(): the application is done with the socket; no more data from this side"
	case "shutdown(SHUT_WR)":
		return "shutdown(SHUT_WR): half-close; no more data from this side, the socket can still read"
	case "shutdown(SHUT_RDWR)":
		return "shutdown(SHUT_RDWR): no more data from this side, and the socket reads no more"
	}
	return ""
}

// The reasons of the ACKs a stack sends in answer to a segment it refused
// (see verdict.go), after answerPrefix. gVisor sends them from
// sender.maybeSendOutOfWindowAck (rate-limited unless the segment carries
// data) and, in TIME-WAIT, from handleTimeWaitSegment.
const (
	answerPrefix       = "answers a refused segment: "
	reasonChallengeRST = "challenge ACK (RFC 5961): RST with a sequence number inside the window but not the expected one"
	reasonChallengeSYN = "challenge ACK (RFC 5961): SYN on a connection already synchronized; a peer that restarted answers with RST"
	reasonOutOfWindow  = "ACK to a segment outside the window (RFC 793 p. 69): says what is expected next"
	reasonDuplicate    = "duplicate ACK: the segment's data was received already (RFC 793 p. 69)"
	reasonOldSegment   = "ACK to an old segment (RFC 793 p. 69): says what is expected next"
	reasonTimeWait     = "ACK in TIME-WAIT to a segment outside the window: only RCV.NXT is acceptable (RFC 793 p. 69)"
	reasonUnsentACK    = "ACK to a segment that acknowledges data never sent (RFC 793 p. 72)"
	reasonBadACKRST    = "RST to a handshake segment that does not acknowledge our SYN (RFC 793 p. 72: <SEQ=SEG.ACK><CTL=RST>)"
)

// AnswerReason returns the reason of the ACK a stack sends in answer to an
// arrival it refused for why (a trace.Why* value; flags are the refused
// segment's, in tcpdump notation), in the words tcplab uses for gVisor, or
// "" when no ACK answers such a refusal. The kernel peer uses it for the
// kernel's answers.
func AnswerReason(why, flags string) string {
	r := ""
	switch why {
	case trace.WhyChallenge:
		r = reasonChallengeRST
		if strings.Contains(flags, "S") {
			r = reasonChallengeSYN
		}
	case trace.WhyOutOfWindow:
		r = reasonOutOfWindow
	case trace.WhyDuplicate:
		r = reasonDuplicate
	case trace.WhyOldSegment:
		r = reasonOldSegment
	case trace.WhyUnsentACK:
		r = reasonUnsentACK
	}
	if r == "" {
		return ""
	}
	return answerPrefix + r
}
