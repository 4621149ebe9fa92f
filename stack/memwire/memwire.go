// Package memwire provides an in-memory stack.Wire: two gVisor channel link
// endpoints joined in-process by two pump goroutines. It needs no
// privileges and no kernel, so unit tests and unprivileged runs use it; the
// real default wire is the TUN pair in package tun.
//
// # Cost
//
// Each packet is copied once (flattened out of the sender's packet buffer
// into a fresh one for the receiver), as it would be by a real link.
package memwire

import (
	"context"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tcplab/tcplab/stack"
)

// Config configures a Wire. Zero values are defaults.
type Config struct {
	// MTU of both links; 0 means 1500.
	MTU int
	// QueueLen is each direction's packet queue; 0 means 1024.
	QueueLen int
}

// Addresses of the hosts on the in-memory wire: one shared /24.
var (
	ClientAddr = netip.MustParsePrefix("198.18.0.1/24")
	ServerAddr = netip.MustParsePrefix("198.18.0.2/24")
)

// Wire is an in-memory wire between a client and a server host.
type Wire struct {
	client, server *channel.Endpoint

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// Filter, if set before the hosts start, sees every packet on the
	// wire (fromClient tells the direction) and drops it by returning
	// false. It is the hook for fault injection.
	Filter func(fromClient bool, pkt []byte) bool
}

var _ stack.Wire = (*Wire)(nil)

// New returns a running in-memory wire. Close stops its pumps.
func New(cfg Config) *Wire {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = 1024
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Wire{
		client: channel.New(cfg.QueueLen, uint32(cfg.MTU), ""),
		server: channel.New(cfg.QueueLen, uint32(cfg.MTU), ""),
		cancel: cancel,
	}
	w.wg.Add(2)
	go w.pump(ctx, w.client, w.server, true)
	go w.pump(ctx, w.server, w.client, false)
	return w
}

// pump moves packets written by from's host into to's host.
func (w *Wire) pump(ctx context.Context, from, to *channel.Endpoint, fromClient bool) {
	defer w.wg.Done()
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		pkt.DecRef()
		b := append([]byte(nil), v.AsSlice()...)
		v.Release()
		if f := w.Filter; f != nil && !f(fromClient, b) {
			continue
		}
		np := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
		to.InjectInbound(header.IPv4ProtocolNumber, np)
		np.DecRef()
	}
}

// Links implements stack.Wire.
func (w *Wire) Links() (client, server stack.Link) {
	return stack.Link{Endpoint: w.client, Addr: ClientAddr, Name: "mem-client"},
		stack.Link{Endpoint: w.server, Addr: ServerAddr, Name: "mem-server"}
}

// Kind implements stack.Wire.
func (w *Wire) Kind() string { return "memory" }

// Close implements stack.Wire: it stops both pumps and waits for them.
func (w *Wire) Close() error {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
		w.client.Close()
		w.server.Close()
	})
	return nil
}
