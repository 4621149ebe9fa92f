package stack

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tcplab/tcplab/stack/trace"
)

// SocketOptions are the options a scenario sets on any socket: connected,
// listening or not yet either.
type SocketOptions interface {
	SetLinger(on bool, timeout time.Duration) error
	SetNoDelay(on bool) error
	SetSendBuffer(n int) error
	SetReceiveBuffer(n int) error
}

// Nonblocker is a socket that can be made non-blocking (O_NONBLOCK): its
// calls then return EAGAIN (read, write, accept) or EINPROGRESS (connect)
// instead of waiting.
type Nonblocker interface {
	SetNonblock(on bool) error
}

// SocketPeer is a Peer that can create a socket before it connects or
// listens, as socket(2), so that options, bind(2) and O_NONBLOCK apply
// first.
type SocketPeer interface {
	Peer
	// NewSocket creates a TCP socket. listener tells what it will be
	// used for: it is named like a listener (l1, l2, ...) instead of a
	// connection (c1, c2, ...) in the trace.
	NewSocket(listener bool) (FreshSocket, error)
}

// FreshSocket is a socket that has neither connected nor listened yet.
type FreshSocket interface {
	SocketOptions
	Nonblocker
	// ID returns the socket's name in the trace.
	ID() string
	// Bind binds the peer's address and port (0: an ephemeral one).
	Bind(port uint16) error
	// Connect connects to addr. A non-blocking socket returns the
	// connection at once with syscall.EINPROGRESS while the handshake
	// goes on; a blocking one waits for the handshake's end or ctx.
	Connect(ctx context.Context, addr netip.AddrPort) (Socket, error)
	// Listen listens with the backlog (0: 128); the socket must be bound.
	Listen(backlog int) (ListenSocket, error)
	// Close closes the socket, or the connection or listener it became.
	Close() error
}

var (
	_ SocketPeer    = hostPeer{}
	_ FreshSocket   = (*Sock)(nil)
	_ Nonblocker    = (*Conn)(nil)
	_ Nonblocker    = (*Listener)(nil)
	_ SocketOptions = (*Listener)(nil)
)

// NewSocket implements SocketPeer.
func (p hostPeer) NewSocket(listener bool) (FreshSocket, error) { return p.h.NewSocket(listener) }

// Sock is a socket of a Host between socket(2) and connect(2) or listen(2).
// Once it connects, its Conn carries the same name (c1, ...); once it
// listens, its Listener does (l1, ...). Its methods are safe for concurrent
// use: Close may run while Connect waits.
type Sock struct {
	h        *Host
	id       string
	listener bool
	ep       *tcp.Endpoint
	wq       *waiter.Queue

	mu         sync.Mutex
	bound      bool
	nonblock   bool
	lingerZero bool
	conn       *Conn     // set once Connect began
	ln         *Listener // set once Listen succeeded
	closed     bool
}

// NewSocket creates a TCP endpoint, as socket(2); listener names it like a
// listener (l1, ...) rather than a connection (c1, ...). It costs one
// endpoint; Close releases it.
func (h *Host) NewSocket(listener bool) (*Sock, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("stack: %s: socket: %w", h.name, ErrHostClosed)
	}
	var id string
	if listener {
		h.nlisten++
		id = fmt.Sprintf("l%d", h.nlisten)
	} else {
		h.nconn++
		id = fmt.Sprintf("c%d", h.nconn)
	}
	h.mu.Unlock()
	done := h.call(id, "socket", "")
	var wq waiter.Queue
	ep, terr := h.s.NewEndpoint(tcp.ProtocolNumber, header.IPv4ProtocolNumber, &wq)
	if terr != nil {
		err := errnoOf(terr)
		done(-1, err, nil)
		return nil, fmt.Errorf("stack: %s: socket: %w", h.name, err)
	}
	done(0, nil, nil)
	return &Sock{h: h, id: id, listener: listener, ep: ep.(*tcp.Endpoint), wq: &wq}, nil
}

// ID returns the socket's name in the trace.
func (s *Sock) ID() string { return s.id }

// Bind binds the host's address and port (0: ephemeral), as bind(2).
func (s *Sock) Bind(port uint16) error {
	done := s.h.call(s.id, "bind", netip.AddrPortFrom(s.h.addr, port).String())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		done(-1, syscall.EBADF, nil)
		return syscall.EBADF
	}
	err := errnoOf(s.ep.Bind(tcpip.FullAddress{Addr: tcpip.AddrFromSlice(s.h.addr.AsSlice()), Port: port}))
	if err == nil {
		s.bound = true
	}
	done(retOf(err), err, nil)
	return err
}

func retOf(err error) int {
	if err != nil {
		return -1
	}
	return 0
}

// SetNonblock sets O_NONBLOCK (fcntl(2)); a connection or listener made
// from the socket keeps it.
func (s *Sock) SetNonblock(on bool) error {
	done := s.h.call(s.id, "fcntl", fmt.Sprintf("O_NONBLOCK=%v", on))
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

// SetNonblock sets O_NONBLOCK on a connection: Read, Write and a Connect
// in progress return EAGAIN instead of waiting.
func (c *Conn) SetNonblock(on bool) error {
	done := c.call("fcntl", fmt.Sprintf("O_NONBLOCK=%v", on))
	c.nonblock.Store(on)
	done(0, nil, nil)
	return nil
}

// SetNonblock sets O_NONBLOCK on a listener: Accept returns EAGAIN when no
// connection is waiting. Accepted connections do not inherit it (accept(2)
// without SOCK_NONBLOCK).
func (l *Listener) SetNonblock(on bool) error {
	done := l.h.call(l.id, "fcntl", fmt.Sprintf("O_NONBLOCK=%v", on))
	l.nonblock.Store(on)
	done(0, nil, nil)
	return nil
}

// SetLinger sets SO_LINGER on the socket.
func (s *Sock) SetLinger(on bool, timeout time.Duration) error {
	done := s.h.call(s.id, "setsockopt", fmt.Sprintf("SO_LINGER{on=%v,%s}", on, timeout))
	s.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: on, Timeout: timeout})
	s.mu.Lock()
	s.lingerZero = on && timeout == 0
	s.mu.Unlock()
	done(0, nil, nil)
	return nil
}

// SetNoDelay sets TCP_NODELAY on the socket.
func (s *Sock) SetNoDelay(on bool) error {
	done := s.h.call(s.id, "setsockopt", fmt.Sprintf("TCP_NODELAY=%v", on))
	s.ep.SocketOptions().SetDelayOption(!on)
	done(0, nil, nil)
	return nil
}

// SetSendBuffer sets SO_SNDBUF on the socket (the stack may clamp it).
func (s *Sock) SetSendBuffer(n int) error {
	done := s.h.call(s.id, "setsockopt", fmt.Sprintf("SO_SNDBUF=%d", n))
	s.ep.SocketOptions().SetSendBufferSize(int64(n), true)
	done(0, nil, nil)
	return nil
}

// SetReceiveBuffer sets SO_RCVBUF on the socket (the stack may clamp it).
func (s *Sock) SetReceiveBuffer(n int) error {
	done := s.h.call(s.id, "setsockopt", fmt.Sprintf("SO_RCVBUF=%d", n))
	s.ep.SocketOptions().SetReceiveBufferSize(int64(n), true)
	done(0, nil, nil)
	return nil
}

// SetLinger sets SO_LINGER on a listener. gVisor's accepted endpoints do
// not inherit it (Linux's do).
func (l *Listener) SetLinger(on bool, timeout time.Duration) error {
	done := l.h.call(l.id, "setsockopt", fmt.Sprintf("SO_LINGER{on=%v,%s}", on, timeout))
	l.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: on, Timeout: timeout})
	done(0, nil, nil)
	return nil
}

// SetNoDelay sets TCP_NODELAY on a listener.
func (l *Listener) SetNoDelay(on bool) error {
	done := l.h.call(l.id, "setsockopt", fmt.Sprintf("TCP_NODELAY=%v", on))
	l.ep.SocketOptions().SetDelayOption(!on)
	done(0, nil, nil)
	return nil
}

// SetSendBuffer sets SO_SNDBUF on a listener.
func (l *Listener) SetSendBuffer(n int) error {
	done := l.h.call(l.id, "setsockopt", fmt.Sprintf("SO_SNDBUF=%d", n))
	l.ep.SocketOptions().SetSendBufferSize(int64(n), true)
	done(0, nil, nil)
	return nil
}

// SetReceiveBuffer sets SO_RCVBUF on a listener; gVisor gives accepted
// endpoints the receive window the listener had when the SYN arrived.
func (l *Listener) SetReceiveBuffer(n int) error {
	done := l.h.call(l.id, "setsockopt", fmt.Sprintf("SO_RCVBUF=%d", n))
	l.ep.SocketOptions().SetReceiveBufferSize(int64(n), true)
	done(0, nil, nil)
	return nil
}

// Connect connects the socket to addr, as connect(2). Unbound, it binds an
// ephemeral port of the host's address first. Non-blocking, it returns the
// connection at once with syscall.EINPROGRESS; blocking, it waits until
// the handshake completes, fails (the socket closed meanwhile gives
// ECONNABORTED), or ctx ends.
func (s *Sock) Connect(ctx context.Context, addr netip.AddrPort) (Socket, error) {
	h := s.h
	s.mu.Lock()
	if s.closed || s.conn != nil || s.ln != nil {
		s.mu.Unlock()
		err := syscall.EBADF
		if !s.closed {
			err = syscall.EISCONN
		}
		h.blockingCall(s.id, "connect", addr.String(), -1, err, nil)
		return nil, err
	}
	bound, nonblock, lz := s.bound, s.nonblock, s.lingerZero
	s.mu.Unlock()
	ep := s.ep
	if !bound {
		if terr := ep.Bind(tcpip.FullAddress{Addr: tcpip.AddrFromSlice(h.addr.AsSlice())}); terr != nil {
			err := errnoOf(terr)
			h.blockingCall(s.id, "connect", addr.String(), -1, err, nil)
			return nil, err
		}
	}
	local, terr := ep.GetLocalAddress()
	if terr != nil {
		return nil, fmt.Errorf("stack: %s: getsockname: %w", h.name, errnoOf(terr))
	}
	key := connKey{localPort: local.Port, remote: addr}
	h.mu.Lock()
	c := h.newConnIDLocked(key, s.id)
	h.mu.Unlock()
	c.nonblock.Store(nonblock)
	c.mu.Lock()
	c.lingerZero = lz
	c.mu.Unlock()
	c.attach(ep, s.wq)
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()

	e, ch := waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventHUp | waiter.EventErr)
	s.wq.EventRegister(&e)
	defer s.wq.EventUnregister(&e)
	terr = ep.Connect(h.fullAddress(addr))
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		if nonblock {
			c.sample()
			h.blockingCall(c.id, "connect", addr.String(), -1, syscall.EINPROGRESS, nil)
			return c, syscall.EINPROGRESS
		}
		unblock := h.blockCtx(ctx, h.deadline(ctx))
		select {
		case <-ch:
			unblock()
			terr = ep.LastError()
		case <-ctx.Done():
			unblock()
			c.sample()
			h.blockingCall(c.id, "connect", addr.String(), -1, ctx.Err(), nil)
			return nil, ctx.Err()
		}
	}
	err := errnoOf(terr)
	c.sample()
	h.blockingCall(c.id, "connect", addr.String(), retOf(err), err, nil)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Listen listens on the bound port with backlog (0: 128), as listen(2).
func (s *Sock) Listen(backlog int) (ListenSocket, error) {
	if backlog <= 0 {
		backlog = 128
	}
	h := s.h
	s.mu.Lock()
	closed, bound, nonblock := s.closed, s.bound, s.nonblock
	s.mu.Unlock()
	port := uint16(0)
	if bound {
		if a, terr := s.ep.GetLocalAddress(); terr == nil {
			port = a.Port
		}
	}
	done := h.call(s.id, "listen", strconv.Itoa(int(port)))
	var err error
	switch {
	case closed:
		err = syscall.EBADF
	case !bound:
		err = syscall.EDESTADDRREQ // tcplab asks for a bind first
	default:
		err = errnoOf(s.ep.Listen(backlog))
	}
	if err != nil {
		done(-1, err, nil)
		return nil, err
	}
	l := &Listener{h: h, id: s.id, port: port, ep: s.ep, wq: s.wq}
	l.nonblock.Store(nonblock)
	h.mu.Lock()
	h.listeners[port] = l
	h.mu.Unlock()
	s.mu.Lock()
	s.ln = l
	s.mu.Unlock()
	done(0, nil, nil)
	if h.rec != nil {
		h.rec.Emit(trace.Event{Host: h.name, Kind: trace.State, Conn: s.id, From: "CLOSED", To: "LISTEN"})
	}
	return listenerSocket{l}, nil
}

// Close closes the socket, as close(2): the connection it became (even
// while Connect waits: in SYN-SENT the handshake is aborted), the listener,
// or the bare endpoint.
func (s *Sock) Close() error {
	s.mu.Lock()
	c, l, closed := s.conn, s.ln, s.closed
	s.closed = true
	s.mu.Unlock()
	switch {
	case closed:
		done := s.h.call(s.id, "close", "")
		done(-1, syscall.EBADF, nil)
		return syscall.EBADF
	case c != nil:
		return c.Close()
	case l != nil:
		return l.Close()
	}
	done := s.h.call(s.id, "close", "")
	s.ep.Close()
	done(0, nil, nil)
	return nil
}

// State returns the state of the connection or listener the socket became,
// or CLOSED.
func (s *Sock) State() string {
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

// newConnIDLocked is newConnLocked for an active open whose name was given
// at socket(2).
func (h *Host) newConnIDLocked(key connKey, id string) *Conn {
	h.forgetRetiredLocked()
	c := &Conn{h: h, id: id, key: key, state: "CLOSED", rx: rxModel{ourWS: -1}}
	if old := h.conns[key]; old != nil {
		h.retire(old)
	}
	h.conns[key] = c
	h.all = append(h.all, c)
	return c
}
