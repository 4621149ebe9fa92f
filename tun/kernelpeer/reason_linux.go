package kernelpeer

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tcplab/tcplab/stack"
)

// reason explains a FIN or RST the kernel sent, from what the application
// did to the connection, what last arrived on it, and — for RSTs — which
// TCPAbort* counters of the namespace moved since the previous RST. The
// wording of the application's part follows package stack, so that the two
// can be compared; the kernel's own evidence follows "; kernel: ". s is nil
// when no socket of the peer owns the 4-tuple.
func (p *Peer) reason(s *Socket, g seg, local, remote netip.AddrPort) string {
	if !strings.Contains(g.flags, "R") {
		p.inferFinCause(s)
		return finReason(s, g)
	}
	delta, err := p.ctrs.abortDelta()
	evidence := "kernel: " + delta
	switch {
	case err != nil:
		evidence = "kernel: counters unreadable (" + err.Error() + ")"
	case delta == "":
		evidence = "kernel: no TCPAbort* counter moved"
	}
	return rstReason(p, s, local, remote, delta) + "; " + evidence
}

func finReason(s *Socket, g seg) string {
	if s == nil {
		return "FIN on a connection this host does not know"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finSent && g.seq+uint32(g.len) == s.finSeq {
		return "retransmitted FIN (" + s.finCause + "): the first was not acknowledged in time"
	}
	if r := stack.FINReason(s.finCause); r != "" {
		if s.finNote != "" {
			r += " (" + s.finNote + ")"
		}
		return r
	}
	if s.p.adopt {
		return "the program closed its socket or shut it down for writing; which call was not seen (the connection was gone before sock_diag could tell)"
	}
	return "FIN queued by the kernel in " + s.state + " without close() or shutdown()"
}

// inferFinCause guesses which call made a program's socket send its FIN
// (Config.Adopt: the peer did not make the call): a socket that still has
// its file was shut down (SHUT_WR), an orphan was closed. sock_diag is
// asked when the FIN is recorded, a little after it left, so a close()
// right behind a shutdown() reads as close(). Cost: one netlink round trip.
func (p *Peer) inferFinCause(s *Socket) {
	if !p.adopt || s == nil {
		return
	}
	s.mu.Lock()
	known := s.finCause != ""
	s.mu.Unlock()
	if known {
		return
	}
	info, found, err := p.diag.get(s.LocalAddr(), s.key.remote)
	s.mu.Lock()
	orphan := s.orphanSeen
	s.mu.Unlock()
	if err != nil || !found || info.timer == diagTimerTW {
		if orphan {
			s.mu.Lock()
			s.finCause, s.finNote = "close()", "inferred: sock_diag had seen the socket without its file"
			s.mu.Unlock()
		}
		return
	}
	cause, note := "close()", "inferred: the socket had no file any more when its FIN left (sock_diag)"
	if info.inode != 0 {
		cause, note = "shutdown(SHUT_WR)", "inferred: the socket still had its file when its FIN left (sock_diag), so the program shut it down rather than closed it"
	}
	s.mu.Lock()
	if s.finCause == "" {
		s.finCause, s.finNote = cause, note
	}
	s.mu.Unlock()
}

// rstReason is the application's side of an RST's story. delta names the
// counters that moved ("" for none), which settles what the application's
// actions alone leave open.
func rstReason(p *Peer, s *Socket, local, remote netip.AddrPort, delta string) string {
	if s == nil {
		p.mu.Lock()
		l := p.listeners[local.Port()]
		p.mu.Unlock()
		if l == nil || l.isClosed() {
			return fmt.Sprintf("segment for no connection: nothing listens on port %d and no socket owns %v<->%v", local.Port(), local, remote)
		}
		return fmt.Sprintf("segment for no connection: no socket owns %v<->%v", local, remote)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.state
	if before == "CLOSED" && s.prev != "" {
		before = s.prev
	}
	in := s.haveIn && s.lastIn.len > 0
	has := func(c string) bool { return strings.Contains(delta, c+"+") }
	switch {
	case s.inWhileClosed && s.rstSent:
		return fmt.Sprintf("segment for a connection this host already reset (was %s): no socket owns it", before)
	case s.inWhileClosed:
		return fmt.Sprintf("segment for a connection that no longer exists: it left %s and the kernel forgot it", before)
	case s.closed && s.lingerZero && (has("TCPAbortOnData") || !in):
		return "close() with SO_LINGER 0: abortive close, the send queue is discarded"
	case s.closed && s.unreadAtClose > 0 && (has("TCPAbortOnClose") || delta == ""):
		return fmt.Sprintf("close() with %d unread bytes in receive buffer: they would be lost silently, so reset instead of FIN (RFC 2525 2.17)", s.unreadAtClose)
	case s.listener != nil && !s.accepted && s.listener.isClosed():
		return "listener closed with this connection still waiting in its accept queue"
	case in && s.closed:
		msg := fmt.Sprintf("data arrived in %s after close(): no socket owns the connection any more, nobody can read it", before)
		if s.tw {
			msg += " (Linux had turned the orphan into a timewait socket, which answers new data with RST)"
		}
		return msg
	case in && s.shutRD:
		return fmt.Sprintf("data arrived in %s after shutdown(SHUT_RD)", before)
	case has("TCPAbortOnTimeout"):
		return "retransmissions timed out: the kernel gave up on the connection"
	case has("TCPAbortOnLinger"):
		return "the orphan's FIN-WAIT-2 time (tcp_fin_timeout) ran out"
	case has("TCPAbortOnMemory"):
		return "too many orphaned sockets or too little memory: the kernel dropped the connection"
	case s.haveIn && strings.Contains(s.lastIn.flags, "S"):
		return fmt.Sprintf("SYN arrived for a connection in %s", before)
	}
	return "reset by the kernel in " + before + " (cause unknown)"
}
