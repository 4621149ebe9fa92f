package capture

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/stack"
)

// Dir is the direction of a captured packet relative to its device: the
// kernel's packet type (sll_pkttype).
type Dir uint8

// The packet types a capture records. A TUN device delivers what its host
// sends to the kernel as PACKET_HOST, and the kernel hands what it sends to
// the host as PACKET_OUTGOING.
const (
	// Host (PACKET_HOST): the packet came out of the device into the
	// kernel, i.e. the device's host sent it. The sender's copy.
	Host Dir = 0
	// Outgoing (PACKET_OUTGOING): the kernel sent the packet into the
	// device, i.e. towards the device's host. The receiver's copy.
	Outgoing Dir = 4
)

// String returns "host", "outgoing" or "pkttype N".
func (d Dir) String() string {
	switch d {
	case Host:
		return "host"
	case Outgoing:
		return "outgoing"
	}
	return fmt.Sprintf("pkttype %d", uint8(d))
}

// sll2Len is the size of a LINKTYPE_LINUX_SLL2 header.
const sll2Len = 20

// sll2 is the cooked header of one packet.
type sll2 struct {
	proto   uint16 // EtherType, e.g. 0x0800 for IPv4
	ifindex int
	hatype  uint16 // ARPHRD_*, 0xfffe (ARPHRD_NONE) for TUN
	pkttype Dir
	addr    []byte // link-layer address, at most 8 bytes
}

// put writes h into b, which must hold sll2Len bytes.
func (h sll2) put(b []byte) {
	binary.BigEndian.PutUint16(b[0:2], h.proto)
	binary.BigEndian.PutUint16(b[2:4], 0)
	binary.BigEndian.PutUint32(b[4:8], uint32(h.ifindex))
	binary.BigEndian.PutUint16(b[8:10], h.hatype)
	b[10] = uint8(h.pkttype)
	n := min(len(h.addr), 8)
	b[11] = uint8(n)
	clear(b[12:20])
	copy(b[12:20], h.addr[:n])
}

// parseSLL2 reads the cooked header at the start of b.
func parseSLL2(b []byte) (sll2, error) {
	if len(b) < sll2Len {
		return sll2{}, fmt.Errorf("capture: %d-byte packet is shorter than a LINUX_SLL2 header", len(b))
	}
	n := min(int(b[11]), 8)
	return sll2{
		proto:   binary.BigEndian.Uint16(b[0:2]),
		ifindex: int(binary.BigEndian.Uint32(b[4:8])),
		hatype:  binary.BigEndian.Uint16(b[8:10]),
		pkttype: Dir(b[10]),
		addr:    append([]byte(nil), b[12:12+n]...),
	}, nil
}

// WirePacket is one packet of a capture, parsed.
type WirePacket struct {
	// Time is when the kernel received the packet on its socket.
	Time time.Time
	// Ifindex and IfName are the device the packet crossed.
	Ifindex int
	IfName  string
	// Dir says which way it crossed the device.
	Dir Dir
	// Proto is the IP protocol (6 for TCP); 0 for a packet that is not
	// IPv4. Only TCP packets have the fields below.
	Proto uint8
	// Src and Dst are the addresses and, for TCP, ports.
	Src, Dst netip.AddrPort
	// Flags are the TCP flags in tcpdump notation (S, S., ., P., F., R, R.).
	Flags string
	// Seq, Ack and Win are the TCP header's absolute sequence and
	// acknowledgement numbers and its unscaled window.
	Seq, Ack uint32
	Win      uint16
	// Len is the TCP payload length from the IP header (the whole
	// segment's, even when the capture was cut at the snap length).
	Len int
	// Payload is the captured payload, at most Len bytes.
	Payload []byte
	// Truncated says the capture was cut at the snap length.
	Truncated bool
}

// String formats p like a tcpdump line.
func (p WirePacket) String() string {
	if p.Proto != uint8(header.TCPProtocolNumber) {
		return fmt.Sprintf("%s %s %v > %v: IP protocol %d", p.IfName, p.Dir, p.Src.Addr(), p.Dst.Addr(), p.Proto)
	}
	return fmt.Sprintf("%s %s %v > %v: Flags [%s], seq %d, ack %d, win %d, length %d", p.IfName, p.Dir, p.Src, p.Dst, p.Flags, p.Seq, p.Ack, p.Win, p.Len)
}

// parseIP fills the IP and TCP fields of p from the captured bytes b,
// which start at the IP header.
func (p *WirePacket) parseIP(b []byte) {
	if len(b) < header.IPv4MinimumSize || header.IPVersion(b) != header.IPv4Version {
		return
	}
	ip := header.IPv4(b)
	hl := int(ip.HeaderLength())
	if hl < header.IPv4MinimumSize || len(b) < hl {
		return
	}
	p.Proto = ip.Protocol()
	src, _ := netip.AddrFromSlice(ip.SourceAddressSlice())
	dst, _ := netip.AddrFromSlice(ip.DestinationAddressSlice())
	p.Src, p.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	if p.Proto != uint8(header.TCPProtocolNumber) || len(b) < hl+header.TCPMinimumSize {
		return
	}
	t := header.TCP(b[hl:])
	off := int(t.DataOffset())
	if off < header.TCPMinimumSize || len(b) < hl+off {
		return
	}
	p.Src, p.Dst = netip.AddrPortFrom(src, t.SourcePort()), netip.AddrPortFrom(dst, t.DestinationPort())
	p.Flags = stack.FlagString(t.Flags())
	p.Seq, p.Ack, p.Win = t.SequenceNumber(), t.AckNumber(), t.WindowSize()
	p.Len = int(ip.TotalLength()) - hl - off
	if p.Len < 0 {
		p.Len = 0
	}
	pay := b[hl+off:]
	if len(pay) > p.Len {
		pay = pay[:p.Len] // link padding
	}
	p.Payload = append([]byte(nil), pay...)
}
