// Package tuntest provides helpers for tests that need hostile packets in a
// lab: Craft builds an IPv4/TCP segment with any fields (a spoiled checksum
// included), Inject sends it from a raw socket inside the lab's network
// namespace, so that it reaches its destination (a kernel socket or, through
// a TUN device, a gVisor host) as if its source had sent it. Only the lab's
// own addresses are ever targets.
package tuntest

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Segment describes a crafted segment. Zero fields are zero on the wire.
type Segment struct {
	Src, Dst  netip.AddrPort
	Flags     header.TCPFlags
	Seq, Ack  uint32
	Win       uint16
	Payload   []byte
	CsumDelta uint16 // added to the correct TCP checksum: non-zero spoils it
	// Truncate, if positive, cuts the packet to that many bytes after the
	// IPv4 header (and sets the IPv4 total length to match): a TCP header
	// shorter than 20 bytes when below 20.
	Truncate int
}

// Craft returns the IPv4 packet of s, with a correct IPv4 header checksum.
func Craft(s Segment) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize+len(s.Payload))
	t := header.TCP(b[header.IPv4MinimumSize:])
	t.Encode(&header.TCPFields{
		SrcPort: s.Src.Port(), DstPort: s.Dst.Port(), SeqNum: s.Seq, AckNum: s.Ack,
		DataOffset: header.TCPMinimumSize, Flags: s.Flags, WindowSize: s.Win,
	})
	copy(t.Payload(), s.Payload)
	src, dst := tcpip.AddrFrom4(s.Src.Addr().As4()), tcpip.AddrFrom4(s.Dst.Addr().As4())
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(t)))
	xsum = checksum.Checksum(s.Payload, xsum)
	t.SetChecksum(^t.CalculateChecksum(xsum) + s.CsumDelta)
	if s.Truncate > 0 && header.IPv4MinimumSize+s.Truncate < len(b) {
		b = b[:header.IPv4MinimumSize+s.Truncate]
	}
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: src, DstAddr: dst,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	return b
}
