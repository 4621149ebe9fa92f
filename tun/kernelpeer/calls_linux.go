package kernelpeer

import (
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun/calltrace"
	"github.com/tcplab/tcplab/tun/ktrace"
)

// With Config.Adopt, the program's socket calls come from package
// tun/calltrace (syscall tracepoints limited to the lab namespace's
// processes) where it can be loaded: each is recorded as a call of the
// connection it was made on, at the kernel's time, and close and shutdown
// tell the reasons of the FINs and RSTs they cause, from their entry, which
// the kernel reports before the segment leaves.

// startCalls opens the call tracer for an adopting peer; the error says why
// calls are not traced.
func (p *Peer) startCalls() error {
	ino, err := ktrace.NetnsInode(p.lab.NetnsPath())
	if err != nil {
		return err
	}
	t, err := calltrace.Open(calltrace.Config{NetnsInode: ino})
	if err != nil {
		return err
	}
	p.calls = t
	return nil
}

// callEvents returns the tracer's channel, nil without one.
func (p *Peer) callEvents() <-chan calltrace.Call {
	if p.calls == nil {
		return nil
	}
	return p.calls.Events()
}

// drainCalls queues every call delivered so far (consume's goroutine).
func (p *Peer) drainCalls() {
	ch := p.callEvents()
	for ch != nil {
		select {
		case c, ok := <-ch:
			if !ok {
				return
			}
			p.callQ = append(p.callQ, c)
		default:
			return
		}
	}
}

// callWait bounds how long a FIN or RST waits for the program's calls up to
// its time: the close or shutdown that sent it was reported first, on the
// other ring. It is the ring's worst lag on a busy machine (ringLag): a
// FIN or RST is rare, and its reason is worth the wait.
const callWait = ringLag

// awaitCalls waits (at most callWait) until a call later than t has been
// delivered, so that the call that caused a segment sent at t is queued.
func (p *Peer) awaitCalls(t time.Time) {
	ch := p.callEvents()
	if ch == nil {
		return
	}
	timer := time.NewTimer(callWait)
	defer timer.Stop()
	for len(p.callQ) == 0 || p.lastCall().Before(t) {
		select {
		case c, ok := <-ch:
			if !ok {
				return
			}
			p.callQ = append(p.callQ, c)
		case <-timer.C:
			return
		}
	}
}

// lastCall is the time of the latest queued call.
func (p *Peer) lastCall() time.Time {
	c := p.callQ[len(p.callQ)-1]
	if c.Entry {
		return c.Enter
	}
	return c.Exit
}

// flushCalls applies the queued calls that happened before cutoff (all of
// them for a zero cutoff), so that they meet the kernel's events in time
// order: the entry of a close is applied before the FIN it sends is
// explained, a connect finds the record its SYN started.
func (p *Peer) flushCalls(cutoff time.Time) {
	n := 0
	for _, c := range p.callQ {
		at := c.Exit
		if c.Entry {
			at = c.Enter
		}
		if !cutoff.IsZero() && at.After(cutoff) {
			break
		}
		p.onCall(c)
		n++
	}
	p.callQ = p.callQ[n:]
}

// callSocket returns the connection (or listener id) a call was made on.
func (p *Peer) callSocket(c calltrace.Call) (*Socket, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.Remote.Addr().IsValid() || c.Remote.Addr().IsUnspecified() {
		if l := p.listeners[c.Local.Port()]; l != nil {
			return nil, l.id
		}
		return nil, ""
	}
	if c.Local.Addr() != p.addr && !c.Local.Addr().IsUnspecified() {
		return nil, ""
	}
	key := connKey{localPort: c.Local.Port(), remote: c.Remote}
	if s := p.conns[key]; s != nil {
		return s, s.id
	}
	if c.Local.Port() == 0 {
		// The kernel released the port (a reset connection): the
		// remote end still names it.
		for i := len(p.socks) - 1; i >= 0; i-- {
			if p.socks[i].key.remote == c.Remote {
				return p.socks[i], p.socks[i].id
			}
		}
	}
	return nil, ""
}

// onCall records one of the program's calls, or applies the entry of a
// close or shutdown to the connection's record.
func (p *Peer) onCall(c calltrace.Call) {
	if p.closing.Load() || c.Name == "" {
		return
	}
	s, id := p.callSocket(c)
	if id == "" && p.leg != LegAll {
		return // a relay's call on a socket of the other leg's peer
	}
	if c.Entry {
		if s != nil {
			s.mu.Lock()
			s.enterCallLocked(c, p.obs != nil && p.obs.finIn[s.key])
			s.mu.Unlock()
		}
		return
	}
	name, arg := c.Name, ""
	switch c.Name {
	case "read", "write", "sendto", "recvfrom":
		arg = strconv.FormatUint(c.Arg, 10)
	case "readv", "writev", "sendmsg", "recvmsg":
		arg = strconv.FormatUint(c.Arg, 10)
		if c.Buffers != 1 {
			arg = fmt.Sprintf("%d in %d buffers", c.Arg, c.Buffers)
		}
	case "bind":
		arg = c.Local.String()
		if !c.Local.IsValid() {
			arg = "not IPv4"
		}
	case "listen":
		arg = "backlog " + strconv.FormatUint(c.Arg, 10)
	case "setsockopt":
		arg = sockoptArg(c)
	case "shutdown":
		arg = [...]string{"SHUT_RD", "SHUT_WR", "SHUT_RDWR"}[min(c.Arg, 2)]
	case "connect":
		arg = c.Remote.String()
	case "accept", "accept4":
		if c.Ret >= 0 {
			arg = ""
		}
	}
	ev := trace.Event{Host: p.name, Kind: trace.Call, Conn: id, Call: name, Arg: arg, Ret: int(c.Ret),
		Text: fmt.Sprintf("pid %d fd %d, observed with syscall tracepoints", c.Pid, c.Fd)}
	if c.Name == "accept" || c.Name == "accept4" {
		ev.Text = fmt.Sprintf("pid %d fd %d (new fd %d), observed with syscall tracepoints", c.Pid, c.Fd, c.Ret)
	}
	switch {
	case c.Ret < 0:
		ev.Ret, ev.Err = -1, stack.ErrName(syscall.Errno(-c.Ret))
	case c.Ret == 0 && c.Arg > 0 && (c.Name == "read" || c.Name == "recvfrom" || c.Name == "readv" || c.Name == "recvmsg"):
		ev.Err = stack.ErrName(io.EOF)
	}
	at := c.Exit
	switch c.Name {
	case "close", "shutdown", "write", "sendto", "writev", "sendmsg", "bind", "listen", "setsockopt":
		at = c.Enter // they take their place when they start, as package stack's
	}
	linger := p.trackLinger(c, s != nil)
	if s != nil {
		s.update(func() {
			if linger != nil {
				s.lingerZero = *linger
			}
			switch c.Name {
			case "write", "sendto", "writev", "sendmsg":
				if c.Ret > 0 {
					s.written += int(c.Ret)
				}
			case "read", "recvfrom", "readv", "recvmsg":
				if c.Ret > 0 {
					s.read += int(c.Ret)
				}
			case "accept", "accept4":
				s.accepted = true
			}
		})
	}
	p.rec.EmitAt(ev, at)
}

// trackLinger follows the program's SO_LINGER {l_onoff 1, l_linger 0} by
// descriptor, so that the RST its close() sends is explained by it, even
// when it was set before connect or on the listener (accepted sockets
// inherit it). It returns what c says of its connection's abortive close,
// or nil when it says nothing; onConn says c was made on a connection.
func (p *Peer) trackLinger(c calltrace.Call, onConn bool) *bool {
	key := [2]int{c.Pid, c.Fd}
	yes, no := true, false
	switch c.Name {
	case "setsockopt":
		if c.Ret != 0 || int(int32(c.Arg)) != unix.SOL_SOCKET || c.Option != unix.SO_LINGER || c.OptLen < 8 {
			return nil
		}
		if c.Value[0] != 0 && c.Value[1] == 0 {
			if p.lingerFds == nil {
				p.lingerFds = map[[2]int]bool{}
			}
			p.lingerFds[key] = true
			return &yes
		}
		delete(p.lingerFds, key)
		return &no
	case "accept", "accept4":
		if c.Ret >= 0 && p.lingerFds[key] {
			p.lingerFds[[2]int{c.Pid, int(c.Ret)}] = true
			return &yes
		}
	case "close":
		delete(p.lingerFds, key)
	default:
		if onConn && p.lingerFds[key] {
			return &yes
		}
	}
	return nil
}

// enterCallLocked applies the start of a close or shutdown: what the
// program did, for the reasons of the segments it causes. finIn says the
// peer's FIN was received (the kernel counts it in the unread bytes).
func (s *Socket) enterCallLocked(c calltrace.Call, finIn bool) {
	observed := s.finNote == "" && s.finCause != ""
	switch c.Name {
	case "shutdown":
		if c.Arg != 0 {
			s.shutWR = true
			if !observed && !s.finSent {
				s.finCause, s.finNote = "shutdown("+[...]string{"SHUT_RD", "SHUT_WR", "SHUT_RDWR"}[min(c.Arg, 2)]+")", ""
			}
		}
		if c.Arg != 1 {
			s.shutRD = true
		}
	case "close":
		s.closed = true
		if !observed && !s.finSent {
			s.finCause, s.finNote = "close()", ""
		}
		n := c.Unread
		if finIn && n > 0 {
			n--
		}
		s.unreadAtClose = n
	}
}
