package explain

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Packet is one TCP segment of a capture, as much of it as explain needs.
type Packet struct {
	// N is the packet's number in the file, from 1 (as Wireshark counts).
	N int
	// Time is the capture's timestamp.
	Time time.Time
	// Iface is the pcapng interface the packet was captured on (0 in pcap).
	Iface int
	// Src and Dst are the addresses and ports.
	Src, Dst netip.AddrPort
	// TTL is the IPv4 TTL or the IPv6 hop limit.
	TTL uint8
	// ID is the IPv4 identification; HasID is false for IPv6.
	ID    uint16
	HasID bool
	// Flags are the TCP flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
	Flags uint8
	// Seq, Ack and Win are the TCP header's fields (Win unscaled).
	Seq, Ack uint32
	Win      uint16
	// WScale is the window scale option of a SYN, -1 when absent.
	WScale int8
	// Len is the payload length, from the IP header's lengths.
	Len int
}

// TCP flag bits.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
)

// FlagString formats TCP flags in tcpdump notation: S, S., ., P., F., R, R.
func FlagString(f uint8) string {
	var b []byte
	for _, c := range []struct {
		bit uint8
		ch  byte
	}{{flagSYN, 'S'}, {flagFIN, 'F'}, {flagPSH, 'P'}, {flagRST, 'R'}, {0x20, 'U'}, {0x40, 'E'}, {0x80, 'W'}} {
		if f&c.bit != 0 {
			b = append(b, c.ch)
		}
	}
	if f&flagACK != 0 {
		b = append(b, '.')
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

// packetSource is pcapgo's pcap or pcapng reader.
type packetSource interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Reader reads the TCP segments of a pcap or pcapng file (optionally
// gzip'd), one at a time. Link types: Ethernet (with VLAN tags), Linux
// cooked v1 and v2, raw IP, BSD loopback; IPv4 and IPv6. Packets that are
// not TCP are counted and skipped. Cost: one packet's bytes at a time (the
// file is streamed), no allocation per packet beyond gopacket's reader.
type Reader struct {
	name    string
	src     packetSource
	ng      *pcapgo.NgReader
	link    layers.LinkType
	n       int // packets read, TCP or not
	skipped int // packets that were not TCP over IP
	gz      *gzip.Reader

	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	sll     layers.LinuxSLL
	sll2    layers.LinuxSLL2
	loop    layers.Loopback
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
}

// Magic numbers that tell the formats apart.
var (
	magicGzip   = []byte{0x1f, 0x8b}
	magicPcapng = []byte{0x0a, 0x0d, 0x0d, 0x0a}
)

// isPcapMagic reports whether b starts like a pcap file (either byte
// order, micro- or nanosecond timestamps).
func isPcapMagic(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		return true
	}
	return false
}

// NewReader returns a Reader of r, whose format it detects by its first
// bytes; name is the file's name, for error messages. It fails when r is
// not a capture, saying what its first bytes look like.
func NewReader(name string, r io.Reader) (*Reader, error) {
	rd := &Reader{name: name}
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(4)
	if len(head) >= 2 && bytes.Equal(head[:2], magicGzip) {
		gz, gerr := gzip.NewReader(br)
		if gerr != nil {
			return nil, fmt.Errorf("explain: %s: gzip: %w", name, gerr)
		}
		rd.gz = gz
		br = bufio.NewReaderSize(gz, 1<<16)
		head, err = br.Peek(4)
	}
	if len(head) < 4 {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("explain: %s: not a capture: %d bytes, too short for a pcap or pcapng header", name, len(head))
		}
		return nil, fmt.Errorf("explain: %s: %w", name, err)
	}
	switch {
	case bytes.Equal(head, magicPcapng):
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{})
		if err != nil {
			return nil, fmt.Errorf("explain: %s: bad pcapng header: %w", name, err)
		}
		rd.src, rd.ng, rd.link = ng, ng, ng.LinkType()
	case isPcapMagic(head):
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("explain: %s: bad pcap header: %w", name, err)
		}
		// Packets longer than the declared snap length (some writers do
		// not truncate) are read up to gopacket's own maximum, as tcpdump
		// and Wireshark read them (TestPacketsLongerThanSnapLen).
		rd.src, rd.link = pr, pr.LinkType()
	default:
		return nil, fmt.Errorf("explain: %s: not a capture (pcap, pcapng, or either gzip'd): it starts with bytes % x", name, head)
	}
	rd.decoded = make([]gopacket.LayerType, 0, 8)
	rd.parsers = map[gopacket.LayerType]*gopacket.DecodingLayerParser{}
	return rd, nil
}

// Packets returns how many packets the reader has read so far, TCP or not,
// and how many of them it skipped as not TCP over IP.
func (rd *Reader) Packets() (read, skipped int) { return rd.n, rd.skipped }

// parser returns the decoding parser whose first layer is first.
func (rd *Reader) parser(first gopacket.LayerType) *gopacket.DecodingLayerParser {
	p := rd.parsers[first]
	if p == nil {
		p = gopacket.NewDecodingLayerParser(first, &rd.eth, &rd.dot1q, &rd.sll, &rd.sll2, &rd.loop, &rd.ip4, &rd.ip6, &rd.tcp)
		p.IgnoreUnsupported = true
		rd.parsers[first] = p
	}
	return p
}

// firstLayer is the layer a packet of link type lt starts with; data is
// needed for raw IP, whose version is in its first nibble.
func firstLayer(lt layers.LinkType, data []byte) (gopacket.LayerType, bool) {
	switch lt {
	case layers.LinkTypeEthernet:
		return layers.LayerTypeEthernet, true
	case layers.LinkTypeLinuxSLL:
		return layers.LayerTypeLinuxSLL, true
	case layers.LinkTypeLinuxSLL2:
		return layers.LayerTypeLinuxSLL2, true
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		return layers.LayerTypeLoopback, true
	case layers.LinkTypeIPv4:
		return layers.LayerTypeIPv4, true
	case layers.LinkTypeIPv6:
		return layers.LayerTypeIPv6, true
	case layers.LinkTypeRaw, 12, 14: // DLT_RAW has numbers 12 and 14 on some systems
		if len(data) > 0 && data[0]>>4 == 6 {
			return layers.LayerTypeIPv6, true
		}
		return layers.LayerTypeIPv4, true
	}
	return 0, false
}

// Next returns the next TCP segment of the file, io.EOF at its end, or an
// error naming the file and the packet where it went wrong (truncated
// file, bad block, a link type explain cannot read).
func (rd *Reader) Next() (Packet, error) {
	for {
		data, ci, err := rd.src.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			return Packet{}, io.EOF
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return Packet{}, fmt.Errorf("explain: %s: truncated at packet %d (the file ends inside it)", rd.name, rd.n+1)
			}
			return Packet{}, fmt.Errorf("explain: %s: packet %d: %w", rd.name, rd.n+1, err)
		}
		rd.n++
		lt := rd.link
		if rd.ng != nil {
			intf, err := rd.ng.Interface(ci.InterfaceIndex)
			if err != nil {
				return Packet{}, fmt.Errorf("explain: %s: packet %d: %w", rd.name, rd.n, err)
			}
			lt = intf.LinkType
		}
		first, ok := firstLayer(lt, data)
		if !ok {
			return Packet{}, fmt.Errorf("explain: %s: packet %d: link type %v: explain reads Ethernet, Linux cooked (SLL, SLL2), raw IP and loopback captures", rd.name, rd.n, lt)
		}
		p, ok := rd.decode(first, data)
		if !ok {
			rd.skipped++
			continue
		}
		p.N, p.Time, p.Iface = rd.n, ci.Timestamp, ci.InterfaceIndex
		return p, nil
	}
}

// decode parses one packet's bytes; ok is false when it is not a TCP
// segment over IPv4 or IPv6 (or is too damaged to be one).
func (rd *Reader) decode(first gopacket.LayerType, data []byte) (p Packet, ok bool) {
	rd.decoded = rd.decoded[:0]
	// Errors are expected (a truncated payload, a protocol without a
	// decoder): what was decoded before them counts.
	_ = rd.parser(first).DecodeLayers(data, &rd.decoded)
	var v4, v6, tcp bool
	for _, t := range rd.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			v4 = true
		case layers.LayerTypeIPv6:
			v6 = true
		case layers.LayerTypeTCP:
			tcp = true
		}
	}
	if !tcp || (!v4 && !v6) {
		return p, false
	}
	t := &rd.tcp
	var src, dst netip.Addr
	ipPayload := 0
	if v4 {
		ip := &rd.ip4
		if ip.FragOffset != 0 {
			return p, false
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		p.TTL, p.ID, p.HasID = ip.TTL, ip.Id, true
		if ip.Length != 0 {
			ipPayload = int(ip.Length) - int(ip.IHL)*4
		}
	} else {
		ip := &rd.ip6
		src, _ = netip.AddrFromSlice(ip.SrcIP.To16())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To16())
		p.TTL = ip.HopLimit
		ipPayload = int(ip.Length) // extension headers would count here; rare for TCP
	}
	p.Src, p.Dst = netip.AddrPortFrom(src, uint16(t.SrcPort)), netip.AddrPortFrom(dst, uint16(t.DstPort))
	p.Seq, p.Ack, p.Win = t.Seq, t.Ack, t.Window
	p.Flags = tcpFlags(t)
	p.Len = ipPayload - int(t.DataOffset)*4
	if p.Len < 0 || ipPayload == 0 {
		// A length the headers do not give (TSO: IP length 0): trust the bytes.
		p.Len = len(t.Payload)
	}
	p.WScale = -1
	if p.Flags&flagSYN != 0 {
		for _, o := range t.Options {
			if o.OptionType == layers.TCPOptionKindWindowScale && len(o.OptionData) == 1 {
				p.WScale = int8(min(o.OptionData[0], 14))
			}
		}
	}
	return p, true
}

// tcpFlags packs the TCP layer's flags into the header's byte.
func tcpFlags(t *layers.TCP) uint8 {
	var f uint8
	for _, b := range []struct {
		on  bool
		bit uint8
	}{{t.FIN, flagFIN}, {t.SYN, flagSYN}, {t.RST, flagRST}, {t.PSH, flagPSH}, {t.ACK, flagACK}, {t.URG, 0x20}, {t.ECE, 0x40}, {t.CWR, 0x80}} {
		if b.on {
			f |= b.bit
		}
	}
	return f
}

// Close releases the gzip reader, if any. The underlying reader is the
// caller's to close.
func (rd *Reader) Close() error {
	if rd.gz != nil {
		return rd.gz.Close()
	}
	return nil
}
