package kernelpeer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

var (
	_ stack.SocketPeer    = (*Peer)(nil)
	_ stack.FreshSocket   = (*FreshSocket)(nil)
	_ stack.Nonblocker    = (*Socket)(nil)
	_ stack.Nonblocker    = (*Listener)(nil)
	_ stack.SocketOptions = (*Listener)(nil)
)

// FreshSocket is a kernel socket between socket(2) and connect(2) or
// listen(2). Once it connects, its Socket carries the same name (c1, ...);
// once it listens, its Listener does (l1, ...). Close may run while
// Connect waits.
type FreshSocket struct {
	p  *Peer
	id string

	mu         sync.Mutex
	fd         int // -1 once it became a Socket or Listener, or closed
	bound      bool
	nonblock   bool
	lingerZero bool
	conn       *Socket
	ln         *Listener
	closed     bool
}

// NewSocket creates a TCP socket inside the lab namespace, as socket(2);
// listener names it like a listener (l1, ...) rather than a connection
// (c1, ...). The descriptor is non-blocking underneath, as every socket of
// the peer; SetNonblock decides whether calls wait.
func (p *Peer) NewSocket(listener bool) (stack.FreshSocket, error) {
	p.mu.Lock()
	var id string
	if listener {
		p.nlisten++
		id = fmt.Sprintf("l%d", p.nlisten)
	} else {
		p.nconn++
		id = fmt.Sprintf("c%d", p.nconn)
	}
	p.mu.Unlock()
	done := p.call(id, "socket", "")
	fd, err := p.socket()
	if err != nil {
		done(-1, err, nil)
		return nil, fmt.Errorf("kernelpeer: %s: %w", p.side, err)
	}
	done(0, nil, nil)
	fs := &FreshSocket{p: p, id: id, fd: fd}
	p.mu.Lock()
	p.fresh = append(p.fresh, fs)
	p.mu.Unlock()
	return fs, nil
}

// release closes the descriptor of a socket that never connected or
// listened (Peer.Close); what it became is released with the rest.
func (s *FreshSocket) release() {
	s.mu.Lock()
	fd := s.fd
	s.fd, s.closed = -1, true
	s.mu.Unlock()
	if fd >= 0 {
		unix.Close(fd)
	}
}

// ID returns the socket's name in the trace.
func (s *FreshSocket) ID() string { return s.id }

// withFD runs fn on the descriptor while the socket is still fresh, or
// fails with EBADF.
func (s *FreshSocket) withFD(fn func(fd int) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return unix.EBADF
	}
	return fn(s.fd)
}

// Bind binds the kernel's address and port (0: ephemeral), as bind(2).
func (s *FreshSocket) Bind(port uint16) error {
	done := s.p.call(s.id, "bind", netip.AddrPortFrom(s.p.addr, port).String())
	err := s.withFD(func(fd int) error {
		return unix.Bind(fd, &unix.SockaddrInet4{Port: int(port), Addr: s.p.addr.As4()})
	})
	if err == nil {
		s.mu.Lock()
		s.bound = true
		s.mu.Unlock()
	}
	done(retOf(err), err, nil)
	return err
}

// SetNonblock sets O_NONBLOCK (the socket's calls stop waiting); the
// connection or listener it becomes keeps it.
func (s *FreshSocket) SetNonblock(on bool) error {
	done := s.p.call(s.id, "fcntl", fmt.Sprintf("O_NONBLOCK=%v", on))
	s.mu.Lock()
	s.nonblock = on
	c, l := s.conn, s.ln
	s.mu.Unlock()
	if c != nil {
		c.nonblock.Store(on)
	}
	if l != nil {
		l.nonblock.Store(on)
	}
	done(0, nil, nil)
	return nil
}

// SetNonblock sets O_NONBLOCK: Read and Write return EAGAIN instead of
// waiting.
func (s *Socket) SetNonblock(on bool) error {
	done := s.p.call(s.id, "fcntl", fmt.Sprintf("O_NONBLOCK=%v", on))
	s.nonblock.Store(on)
	done(0, nil, nil)
	return nil
}

// SetNonblock sets O_NONBLOCK on the listener: Accept returns EAGAIN when
// no connection waits. Accepted sockets do not inherit it.
func (l *Listener) SetNonblock(on bool) error {
	done := l.p.call(l.id, "fcntl", fmt.Sprintf("O_NONBLOCK=%v", on))
	l.nonblock.Store(on)
	done(0, nil, nil)
	return nil
}

func (s *FreshSocket) setOpt(arg string, fn func(fd int) error) error {
	done := s.p.call(s.id, "setsockopt", arg)
	err := s.withFD(fn)
	done(retOf(err), err, nil)
	return err
}

// SetLinger sets SO_LINGER (whole seconds).
func (s *FreshSocket) SetLinger(on bool, timeout time.Duration) error {
	l := unix.Linger{Linger: int32(timeout / time.Second)}
	if on {
		l.Onoff = 1
	}
	err := s.setOpt(fmt.Sprintf("SO_LINGER{on=%v,%s}", on, timeout), func(fd int) error {
		return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &l)
	})
	if err == nil {
		s.mu.Lock()
		s.lingerZero = on && l.Linger == 0
		s.mu.Unlock()
	}
	return err
}

// SetNoDelay sets TCP_NODELAY.
func (s *FreshSocket) SetNoDelay(on bool) error {
	return s.setOpt(fmt.Sprintf("TCP_NODELAY=%v", on), func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(on))
	})
}

// SetSendBuffer sets SO_SNDBUF.
func (s *FreshSocket) SetSendBuffer(n int) error {
	return s.setOpt(fmt.Sprintf("SO_SNDBUF=%d", n), func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
	})
}

// SetReceiveBuffer sets SO_RCVBUF.
func (s *FreshSocket) SetReceiveBuffer(n int) error {
	return s.setOpt(fmt.Sprintf("SO_RCVBUF=%d", n), func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
	})
}

// control runs fn on the listener's descriptor, or fails with EBADF.
func (l *Listener) control(fn func(fd int) error) error {
	l.mu.Lock()
	rc := l.rc
	l.mu.Unlock()
	if rc == nil {
		return unix.EBADF
	}
	var err error
	if cerr := rc.Control(func(fd uintptr) { err = fn(int(fd)) }); cerr != nil {
		return cerr
	}
	return err
}

func (l *Listener) setOpt(arg string, fn func(fd int) error) error {
	done := l.p.call(l.id, "setsockopt", arg)
	err := l.control(fn)
	done(retOf(err), err, nil)
	return err
}

// SetLinger sets SO_LINGER on the listener; Linux's accepted sockets
// inherit it.
func (l *Listener) SetLinger(on bool, timeout time.Duration) error {
	lg := unix.Linger{Linger: int32(timeout / time.Second)}
	if on {
		lg.Onoff = 1
	}
	return l.setOpt(fmt.Sprintf("SO_LINGER{on=%v,%s}", on, timeout), func(fd int) error {
		return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &lg)
	})
}

// SetNoDelay sets TCP_NODELAY on the listener.
func (l *Listener) SetNoDelay(on bool) error {
	return l.setOpt(fmt.Sprintf("TCP_NODELAY=%v", on), func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(on))
	})
}

// SetSendBuffer sets SO_SNDBUF on the listener.
func (l *Listener) SetSendBuffer(n int) error {
	return l.setOpt(fmt.Sprintf("SO_SNDBUF=%d", n), func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
	})
}

// SetReceiveBuffer sets SO_RCVBUF on the listener.
func (l *Listener) SetReceiveBuffer(n int) error {
	return l.setOpt(fmt.Sprintf("SO_RCVBUF=%d", n), func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
	})
}

// take hands the descriptor over to what the socket becomes.
func (s *FreshSocket) take() (fd int, bound, nonblock, lz bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return -1, false, false, false, unix.EBADF
	case s.fd < 0:
		return -1, false, false, false, unix.EISCONN
	}
	fd, s.fd = s.fd, -1
	return fd, s.bound, s.nonblock, s.lingerZero, nil
}

// Connect connects to addr, as connect(2); unbound, it binds an ephemeral
// port of the kernel's address first. Non-blocking, it returns the
// connection at once with EINPROGRESS; blocking, it waits for the
// handshake's end, the socket's close, or ctx.
func (s *FreshSocket) Connect(ctx context.Context, addr netip.AddrPort) (stack.Socket, error) {
	p := s.p
	fd, bound, nonblock, lz, err := s.take()
	if err != nil {
		p.blockingCall(s.id, "connect", addr.String(), -1, err, nil)
		return nil, err
	}
	if !bound {
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: p.addr.As4()}); err != nil {
			unix.Close(fd)
			p.blockingCall(s.id, "connect", addr.String(), -1, err, nil)
			return nil, err
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kernelpeer: %s: getsockname: %w", p.side, err)
	}
	port := uint16(sa.(*unix.SockaddrInet4).Port)
	p.mu.Lock()
	c := &Socket{p: p, id: s.id, key: connKey{localPort: port, remote: addr}, state: "CLOSED"}
	p.conns[c.key] = c
	p.socks = append(p.socks, c)
	p.mu.Unlock()
	c.nonblock.Store(nonblock)
	c.mu.Lock()
	c.lingerZero = lz
	c.mu.Unlock()
	if err := c.attach(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kernelpeer: %s: %w", p.side, err)
	}
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	if p.obs == nil {
		c.update(func() { c.setStateLocked("SYN-SENT", "") })
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()})
	c.update(func() { c.alive = true })
	if errors.Is(err, unix.EINPROGRESS) {
		if nonblock {
			c.sample()
			p.blockingCall(c.id, "connect", addr.String(), -1, err, nil)
			return c, err
		}
		err = c.waitConnected(ctx)
	}
	c.sample()
	p.blockingCall(c.id, "connect", addr.String(), retOf(err), err, nil)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Listen listens on the bound port with backlog (0: 128), as listen(2).
func (s *FreshSocket) Listen(backlog int) (stack.ListenSocket, error) {
	if backlog <= 0 {
		backlog = 128
	}
	p := s.p
	s.mu.Lock()
	bound, fd := s.bound, s.fd
	s.mu.Unlock()
	port := 0
	if fd >= 0 {
		if sa, err := unix.Getsockname(fd); err == nil {
			port = sa.(*unix.SockaddrInet4).Port
		}
	}
	p.mu.Lock()
	p.listening[uint16(port)] = s.id
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.listening, uint16(port))
		p.mu.Unlock()
	}()
	done := p.call(s.id, "listen", strconv.Itoa(port))
	var err error
	if !bound {
		err = unix.EDESTADDRREQ // tcplab asks for a bind first
	} else {
		err = s.withFD(func(fd int) error { return unix.Listen(fd, backlog) })
	}
	if err != nil {
		done(-1, err, nil)
		return nil, err
	}
	fd, _, nonblock, _, err := s.take()
	if err != nil {
		done(-1, err, nil)
		return nil, err
	}
	l := &Listener{p: p, id: s.id, port: uint16(port)}
	l.nonblock.Store(nonblock)
	if err := l.attach(fd); err != nil {
		unix.Close(fd)
		done(-1, err, nil)
		return nil, err
	}
	p.mu.Lock()
	p.listeners[uint16(port)] = l
	p.lns = append(p.lns, l)
	p.mu.Unlock()
	s.mu.Lock()
	s.ln = l
	s.mu.Unlock()
	done(0, nil, nil)
	if p.obs == nil {
		p.rec.Emit(trace.Event{Host: p.side, Kind: trace.State, Conn: s.id, From: "CLOSED", To: "LISTEN"})
	}
	return l, nil
}

// Close closes the socket, as close(2): the connection it became (in
// SYN-SENT too), the listener, or the bare descriptor.
func (s *FreshSocket) Close() error {
	s.mu.Lock()
	c, l, fd, closed := s.conn, s.ln, s.fd, s.closed
	s.closed, s.fd = true, -1
	s.mu.Unlock()
	switch {
	case closed:
	case c != nil:
		return c.Close()
	case l != nil:
		return l.Close()
	}
	done := s.p.call(s.id, "close", "")
	var err error
	if closed || fd < 0 {
		err = unix.EBADF
	} else {
		err = unix.Close(fd)
	}
	done(retOf(err), err, nil)
	return err
}

// State returns the state of the connection or listener the socket
// became, or CLOSED.
func (s *FreshSocket) State() string {
	s.mu.Lock()
	c, l := s.conn, s.ln
	s.mu.Unlock()
	switch {
	case c != nil:
		return c.State()
	case l != nil && !l.isClosed():
		return "LISTEN"
	}
	return "CLOSED"
}
