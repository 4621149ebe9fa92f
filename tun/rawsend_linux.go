package tun

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/stack"
)

var _ stack.Injector = (*Lab)(nil)

// labNet is the address block of every lab: the only destinations SendRaw
// accepts.
var labNet = netip.MustParsePrefix("198.18.0.0/15")

// Doer runs a function inside a network namespace (Lab.Do, Namespace.Do).
type Doer interface {
	Do(f func() error) error
}

// SendRaw sends pkt, a whole IPv4 packet with its header, from a raw socket
// (IPPROTO_RAW) inside ns. The kernel routes it by its destination: to a
// local socket (a kernel peer), or out of a TUN device toward a gVisor host,
// through that device's qdisc (netem included) like any packet. Only lab
// addresses (198.18.0.0/15) are accepted as destinations. Cost: one socket
// and a fresh thread in the namespace per call.
func SendRaw(ns Doer, pkt []byte) error {
	if len(pkt) < header.IPv4MinimumSize || !header.IPv4(pkt).IsValid(len(pkt)) {
		return fmt.Errorf("tun: send raw: %d bytes are no IPv4 packet", len(pkt))
	}
	dst := header.IPv4(pkt).DestinationAddress().As4()
	if a := netip.AddrFrom4(dst); !labNet.Contains(a) {
		return fmt.Errorf("tun: send raw: destination %v is outside the lab (%v)", a, labNet)
	}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst})
	})
	if err != nil {
		return sysErr(fmt.Sprintf("send raw packet toward %v", netip.AddrFrom4(dst)), err)
	}
	return nil
}

// InjectSegment sends pkt into the lab from a raw socket in its namespace
// (see SendRaw): it crosses the kernel (and the netem of the device it
// leaves by) and reaches the host it is addressed to as if its source had
// sent it, a kernel peer included; the kernel routes it by its
// destination. A packet whose source is one of the kernel's own lab
// addresses (forged as from a kernel peer) goes instead straight onto the
// link of host to, as if it had just come out of the device (see
// Inject): sent through the kernel's IP stack, the kernel peer's
// observers would take it for the kernel's own segment. It implements
// stack.Injector.
func (l *Lab) InjectSegment(to string, pkt []byte) error {
	if len(pkt) >= header.IPv4MinimumSize {
		src := netip.AddrFrom4(header.IPv4(pkt).SourceAddress().As4())
		if kc, ks := l.KernelAddrs(); src == kc || src == ks {
			return l.Inject(to, pkt)
		}
	}
	if err := SendRaw(l, pkt); err != nil {
		return fmt.Errorf("tun: inject toward %s: %w", to, err)
	}
	return nil
}
