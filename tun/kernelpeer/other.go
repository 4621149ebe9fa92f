//go:build !linux

package kernelpeer

import (
	"context"
	"errors"
	"net/netip"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
)

// Peer is the kernel peer; only supported on Linux.
type Peer struct{}

var errUnsupported = errors.New("kernelpeer: only supported on Linux")

// New fails: the kernel peer needs Linux.
func New(lab *tun.Lab, side string, rec *trace.Recorder) (*Peer, error) { return nil, errUnsupported }

// NewPeer fails: the kernel peer needs Linux.
func NewPeer(w stack.Wire, side string, rec *trace.Recorder) (stack.Peer, func() error, error) {
	return nil, nil, errUnsupported
}

// Name returns "".
func (*Peer) Name() string { return "" }

// Addr returns the zero address.
func (*Peer) Addr() netip.Addr { return netip.Addr{} }

// Listen fails.
func (*Peer) Listen(uint16, int) (stack.ListenSocket, error) { return nil, errUnsupported }

// Dial fails.
func (*Peer) Dial(context.Context, netip.AddrPort, uint16) (stack.Socket, error) {
	return nil, errUnsupported
}

// Close does nothing.
func (*Peer) Close() error { return nil }

// StateName returns "CLOSED".
func StateName(uint8) string { return "CLOSED" }

// NewConfig fails: the kernel peer needs Linux.
func NewConfig(*tun.Lab, string, *trace.Recorder, Config) (*Peer, error) { return nil, errUnsupported }

// NewProgramPeer fails: the kernel peer needs Linux.
func NewProgramPeer(stack.Wire, string, *trace.Recorder) (stack.Peer, func() error, error) {
	return nil, nil, errUnsupported
}

// NewRelayPeers fails: the kernel peer needs Linux.
func NewRelayPeers(stack.Wire, string, *trace.Recorder) (stack.Peer, stack.Peer, func() error, error) {
	return nil, nil, nil, errUnsupported
}
