package tuntest

import (
	"fmt"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Doer runs a function inside a lab's network namespace (tun.Lab.Do).
type Doer interface {
	Do(f func() error) error
}

// Inject sends pkt, a whole IPv4 packet, from a raw socket (IPPROTO_RAW,
// the header included) inside ns. The kernel routes it by its destination:
// to a local socket, or out of the TUN device toward a gVisor host. Cost:
// one socket per call.
func Inject(ns Doer, pkt []byte) error {
	if len(pkt) < header.IPv4MinimumSize {
		return fmt.Errorf("tuntest: inject: %d bytes is no IPv4 packet", len(pkt))
	}
	dst := header.IPv4(pkt).DestinationAddress().As4()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst})
	})
	if err != nil {
		return fmt.Errorf("tuntest: inject toward %v: %w", header.IPv4(pkt).DestinationAddress(), err)
	}
	return nil
}
