package tuntest

import (
	"fmt"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/tun"
)

// Doer runs a function inside a lab's network namespace (tun.Lab.Do).
type Doer = tun.Doer

// Inject sends pkt, a whole IPv4 packet, from a raw socket (IPPROTO_RAW,
// the header included) inside ns, with tun.SendRaw. The kernel routes it
// by its destination: to a local socket, or out of the TUN device toward a
// gVisor host. Cost: one socket per call.
func Inject(ns Doer, pkt []byte) error {
	if len(pkt) < header.IPv4MinimumSize {
		return fmt.Errorf("tuntest: inject: %d bytes is no IPv4 packet", len(pkt))
	}
	if err := tun.SendRaw(ns, pkt); err != nil {
		return fmt.Errorf("tuntest: inject: %w", err)
	}
	return nil
}
