package tun

import (
	"context"
	"errors"
	"os"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// pump moves packets between one TUN device and the channel endpoint that
// stands for it in gVisor. Each method runs in its own goroutine, owned by
// the Lab. The plain pump below moves bare IPv4 packets; a mode with
// virtio-net headers (GSO) can replace it without touching Lab.
type pump interface {
	// fromTUN reads packets from dev and hands each IPv4 packet to deliver
	// until dev is closed, which returns nil, or reading fails. deliver
	// must not keep pkt.
	fromTUN(dev *os.File, deliver func(pkt []byte)) error

	// toTUN writes the packets that gVisor queues on ep to dev until ctx is
	// done or ep or dev is closed, which return nil. take, if not nil,
	// sees each packet first and may take it (returning true), to write it
	// later itself; it must not keep the slice.
	toTUN(ctx context.Context, dev *os.File, ep *channel.Endpoint, take func(pkt []byte) bool) error
}

// ipPump moves one bare IPv4 packet per read and write (IFF_NO_PI).
type ipPump struct{}

// maxPacket bounds a TUN read: an IPv4 packet is at most 64 KiB.
const maxPacket = 1 << 16

func (ipPump) fromTUN(dev *os.File, deliver func(pkt []byte)) error {
	buf := make([]byte, maxPacket)
	for {
		n, err := dev.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
		// Drop all but IPv4, e.g. stray IPv6 router solicitations.
		if n < header.IPv4MinimumSize || header.IPVersion(buf[:n]) != header.IPv4Version {
			continue
		}
		deliver(buf[:n])
	}
}

// inject hands one IPv4 packet to ep as if it had arrived on the link.
func inject(ep *channel.Endpoint, b []byte) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		Payload: buffer.MakeWithData(b), // copies
	})
	ep.InjectInbound(header.IPv4ProtocolNumber, pkt)
	pkt.DecRef()
}

func (ipPump) toTUN(ctx context.Context, dev *os.File, ep *channel.Endpoint, take func(pkt []byte) bool) error {
	for {
		pkt := ep.ReadContext(ctx)
		if pkt == nil { // ctx done or ep closed
			return nil
		}
		v := pkt.ToView()
		if take != nil && take(v.AsSlice()) {
			v.Release()
			pkt.DecRef()
			continue
		}
		_, err := dev.Write(v.AsSlice())
		v.Release()
		pkt.DecRef()
		if errors.Is(err, os.ErrClosed) {
			return nil
		}
		// Any other error (EIO while the device is down, EINVAL for a
		// malformed packet) loses this packet only, like a real link.
	}
}
