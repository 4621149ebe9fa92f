package stack

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tcplab/tcplab/stack/trace"
)

// Listener is a listening socket of a Host.
type Listener struct {
	h    *Host
	id   string
	port uint16
	ep   *tcp.Endpoint
	wq   *waiter.Queue
	// nonblock: Accept returns EAGAIN instead of waiting (SetNonblock).
	nonblock atomic.Bool

	mu     sync.Mutex
	closed bool
}

// ID returns the listener's name in the trace ("l1", ...).
func (l *Listener) ID() string { return l.id }

// Port returns the port the listener is bound to.
func (l *Listener) Port() uint16 { return l.port }

func (l *Listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Listen binds port and listens with the given backlog (0 means 128), as
// bind(2) plus listen(2). A port already bound gives syscall.EADDRINUSE.
func (h *Host) Listen(port uint16, backlog int) (*Listener, error) {
	if backlog <= 0 {
		backlog = 128
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("stack: %s: listen on %d: %w", h.name, port, ErrHostClosed)
	}
	h.nlisten++
	id := fmt.Sprintf("l%d", h.nlisten)
	h.mu.Unlock()
	done := h.call(id, "listen", strconv.Itoa(int(port)))
	var wq waiter.Queue
	ep, terr := h.s.NewEndpoint(tcp.ProtocolNumber, header.IPv4ProtocolNumber, &wq)
	if terr != nil {
		err := errnoOf(terr)
		done(-1, err, nil)
		return nil, fmt.Errorf("stack: %s: listen on %d: %w", h.name, port, err)
	}
	if terr = ep.Bind(tcpip.FullAddress{Port: port}); terr == nil {
		terr = ep.Listen(backlog)
	}
	if terr != nil {
		ep.Close()
		err := errnoOf(terr)
		done(-1, err, nil)
		return nil, fmt.Errorf("stack: %s: listen on %d: %w", h.name, port, err)
	}
	l := &Listener{h: h, id: id, port: port, ep: ep.(*tcp.Endpoint), wq: &wq}
	h.mu.Lock()
	h.listeners[port] = l
	h.mu.Unlock()
	done(0, nil, nil)
	if h.rec != nil {
		h.rec.Emit(trace.Event{Host: h.name, Kind: trace.State, Conn: id, From: "CLOSED", To: "LISTEN"})
	}
	return l, nil
}

// Accept blocks until a connection completes its handshake and returns it.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	for {
		var peer tcpip.FullAddress
		nep, nwq, terr := l.ep.Accept(&peer)
		if _, ok := terr.(*tcpip.ErrWouldBlock); ok && !l.nonblock.Load() {
			if err := l.h.wait(ctx, l.wq, waiter.ReadableEvents, func() bool {
				return l.ep.Readiness(waiter.ReadableEvents) != 0
			}); err != nil {
				l.h.blockingCall(l.id, "accept", "", -1, err, nil)
				return nil, err
			}
			continue
		}
		if terr != nil {
			err := errnoOf(terr)
			l.h.blockingCall(l.id, "accept", "", -1, err, nil)
			return nil, err
		}
		ep := nep.(*tcp.Endpoint)
		key := connKey{localPort: l.port, remote: netip.AddrPortFrom(addrOf(peer.Addr), peer.Port)}
		h := l.h
		h.mu.Lock()
		c := h.conns[key]
		if c == nil {
			c = h.newConnLocked(key, "SYN-RECEIVED", nil)
		}
		h.mu.Unlock()
		c.mu.Lock()
		c.accepted, c.listener = true, nil
		c.mu.Unlock()
		c.attach(ep, nwq) // replaces a watch-only endpoint
		h.blockingCall(c.id, "accept", "", 0, nil, []byte(c.key.remote.String()))
		c.sample()
		return c, nil
	}
}

// Close stops listening, as close(2) on a listening socket. Connections
// that completed the handshake but were never accepted are reset.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	done := l.h.call(l.id, "close", "")
	// The listener's own state change comes first; what closing it does
	// to the connections in its queue (RSTs, their states) follows.
	if l.h.rec != nil && !l.h.closing.Load() {
		l.h.rec.Emit(trace.Event{Host: l.h.name, Kind: trace.State, Conn: l.id, From: "LISTEN", To: "CLOSED"})
	}
	l.ep.Close()
	done(0, nil, nil)
	return nil
}

// Dial connects to addr, as socket(2) plus connect(2), blocking until the
// handshake completes, fails, or ctx ends. It binds an ephemeral port.
func (h *Host) Dial(ctx context.Context, addr netip.AddrPort) (*Conn, error) {
	return h.DialFrom(ctx, addr, 0)
}

// DialFrom is Dial from a chosen local port (0: ephemeral), as bind(2)
// before connect(2); a port still held, e.g. in TIME-WAIT, gives
// syscall.EADDRINUSE.
func (h *Host) DialFrom(ctx context.Context, addr netip.AddrPort, localPort uint16) (*Conn, error) {
	if h.isClosed() {
		return nil, fmt.Errorf("stack: %s: connect %v: %w", h.name, addr, ErrHostClosed)
	}
	var wq waiter.Queue
	nep, terr := h.s.NewEndpoint(tcp.ProtocolNumber, header.IPv4ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("stack: %s: socket: %w", h.name, errnoOf(terr))
	}
	ep := nep.(*tcp.Endpoint)
	// Bind first, so the connection is known before its SYN leaves. Bind
	// the host's address, not the wildcard: gVisor releases a connected
	// endpoint's port under its concrete local address, so a wildcard
	// reservation would never be released (the port would stay in use
	// after TIME-WAIT).
	if terr := ep.Bind(tcpip.FullAddress{Addr: tcpip.AddrFromSlice(h.addr.AsSlice()), Port: localPort}); terr != nil {
		ep.Close()
		err := errnoOf(terr)
		h.blockingCall("", "bind", strconv.Itoa(int(localPort)), -1, err, nil)
		return nil, fmt.Errorf("stack: %s: bind %d: %w", h.name, localPort, err)
	}
	local, terr := ep.GetLocalAddress()
	if terr != nil {
		ep.Close()
		return nil, fmt.Errorf("stack: %s: getsockname: %w", h.name, errnoOf(terr))
	}
	key := connKey{localPort: local.Port, remote: addr}
	h.mu.Lock()
	c := h.newConnLocked(key, "CLOSED", nil)
	h.mu.Unlock()
	c.attach(ep, &wq)

	e, ch := waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventHUp | waiter.EventErr)
	wq.EventRegister(&e)
	defer wq.EventUnregister(&e)
	terr = ep.Connect(h.fullAddress(addr))
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		unblock := h.blockCtx(ctx, h.deadline(ctx))
		select {
		case <-ch:
			unblock()
			terr = ep.LastError()
		case <-ctx.Done():
			unblock()
			ep.Close()
			c.sample()
			h.retire(c)
			h.blockingCall(c.id, "connect", addr.String(), -1, ctx.Err(), nil)
			return nil, fmt.Errorf("stack: %s: connect %v: %w", h.name, addr, ctx.Err())
		}
	}
	err := errnoOf(terr)
	ret := 0
	if err != nil {
		ret = -1
	}
	c.sample()
	h.blockingCall(c.id, "connect", addr.String(), ret, err, nil)
	if err != nil {
		ep.Close()
		c.sample()
		h.retire(c) // no socket: nothing more will happen to it
		return nil, fmt.Errorf("stack: %s: connect %v: %w", h.name, addr, err)
	}
	return c, nil
}

// endpointID returns the stack's transport endpoint ID of c.
func endpointID(c *Conn) tcpipstack.TransportEndpointID {
	return tcpipstack.TransportEndpointID{
		LocalPort:     c.key.localPort,
		LocalAddress:  tcpip.AddrFromSlice(c.h.addr.AsSlice()),
		RemotePort:    c.key.remote.Port(),
		RemoteAddress: tcpip.AddrFromSlice(c.key.remote.Addr().AsSlice()),
	}
}
