package stack

import (
	"context"
	"net/netip"
	"time"
)

// Peer is one side of a lab as a scenario drives it: a gVisor Host (see
// Host.Peer) or, elsewhere, a real kernel socket API. All calls record
// themselves in the lab's trace.
type Peer interface {
	// Name returns "client" or "server".
	Name() string
	// Addr returns the address the peer's sockets use.
	Addr() netip.Addr
	// Listen binds and listens on port (bind(2) + listen(2)).
	Listen(port uint16, backlog int) (ListenSocket, error)
	// Dial connects to addr (socket(2) + connect(2)) from localPort, or
	// from an ephemeral port when localPort is 0.
	Dial(ctx context.Context, addr netip.AddrPort, localPort uint16) (Socket, error)
}

// ListenSocket is a listening socket.
type ListenSocket interface {
	ID() string
	Accept(ctx context.Context) (Socket, error)
	Close() error
}

// Socket is a connected stream socket with blocking calls.
type Socket interface {
	ID() string
	Write(ctx context.Context, p []byte) (int, error)
	Read(ctx context.Context, p []byte) (int, error)
	Shutdown(how How) error
	Close() error
	SetLinger(on bool, timeout time.Duration) error
	SetNoDelay(on bool) error
	SetSendBuffer(n int) error
	SetReceiveBuffer(n int) error
	// State returns the RFC 793 name of the connection's state now.
	State() string
	// Ledger returns the byte counts last observed.
	Ledger() Ledger
}

var _ Socket = (*Conn)(nil)

// Peer returns h as a Peer.
func (h *Host) Peer() Peer { return hostPeer{h} }

type hostPeer struct{ h *Host }

func (p hostPeer) Name() string     { return p.h.name }
func (p hostPeer) Addr() netip.Addr { return p.h.addr }
func (p hostPeer) Listen(port uint16, backlog int) (ListenSocket, error) {
	l, err := p.h.Listen(port, backlog)
	if err != nil {
		return nil, err
	}
	return listenerSocket{l}, nil
}
func (p hostPeer) Dial(ctx context.Context, addr netip.AddrPort, localPort uint16) (Socket, error) {
	c, err := p.h.DialFrom(ctx, addr, localPort)
	if err != nil {
		return nil, err
	}
	return c, nil
}

type listenerSocket struct{ *Listener }

func (l listenerSocket) Accept(ctx context.Context) (Socket, error) {
	c, err := l.Listener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}
