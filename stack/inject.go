package stack

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Injector is a Wire that can deliver a crafted IPv4 packet to a host as if
// the network had carried it there from the packet's source: the memory
// wire puts it on the host's link, the TUN wire sends it from a raw socket
// in the lab namespace, so that the kernel routes it to the host's device
// or to a kernel peer's socket. to names the receiving host ("client" or
// "server"); the packet's destination address must be that host's.
type Injector interface {
	InjectSegment(to string, pkt []byte) error
}

// Segment describes a TCP segment to craft. Zero fields are zero on the
// wire.
type Segment struct {
	Src, Dst netip.AddrPort
	Flags    header.TCPFlags
	Seq, Ack uint32
	Win      uint16
	Payload  []byte
}

// Craft returns s as a whole IPv4 packet (TTL 64, no options) with correct
// IPv4 and TCP checksums. It allocates the packet and costs one pass over
// the payload.
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
	t.SetChecksum(^t.CalculateChecksum(xsum))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: src, DstAddr: dst,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	return b
}

// ParseFlags turns tcpdump flag letters (S F P R U E W and . for ACK, as
// in "R." or "FP.") into header flags; ok is false for any other letter.
func ParseFlags(s string) (f header.TCPFlags, ok bool) {
next:
	for i := 0; i < len(s); i++ {
		for _, x := range flagLetters {
			if s[i] == x.c {
				f |= x.f
				continue next
			}
		}
		return 0, false
	}
	return f, true
}
