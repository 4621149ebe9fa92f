package stack

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// segment is a parsed TCP/IPv4 segment as the tap sees it.
type segment struct {
	src, dst netip.AddrPort
	flags    header.TCPFlags
	seq, ack uint32
	win      uint16
	len      int
	payload  []byte // at most trace.PayloadPreview bytes
	off      int    // TCP header length
	ws       int    // a SYN's window scale option, -1 for none
}

// Flags returns the segment's flags in tcpdump notation.
func (s *segment) Flags() string { return FlagString(s.flags) }

// FlagString writes TCP flags the way tcpdump does: S, F, P, R, U, E, W in
// that order, then "." for ACK; "." alone for a bare ACK.
func FlagString(f header.TCPFlags) string {
	var b strings.Builder
	for _, x := range flagLetters {
		if f&x.f != 0 && x.c != '.' {
			b.WriteByte(x.c)
		}
	}
	if f&header.TCPFlagAck != 0 {
		b.WriteByte('.')
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// flagLetters are tcpdump's letters for TCP flags, in its order; ACK's is
// written last, as ".".
var flagLetters = [...]struct {
	f header.TCPFlags
	c byte
}{{header.TCPFlagSyn, 'S'}, {header.TCPFlagFin, 'F'}, {header.TCPFlagPsh, 'P'}, {header.TCPFlagRst, 'R'}, {header.TCPFlagUrg, 'U'}, {header.TCPFlagEce, 'E'}, {header.TCPFlagCwr, 'W'}, {header.TCPFlagAck, '.'}}

// parseSegment parses the first bytes of an IPv4 packet. It returns false
// for anything that is not a complete IPv4/TCP header.
func parseSegment(b []byte, totalLen int) (segment, bool) {
	s, st := parseTCP(b, totalLen)
	return s, st == parsedOK
}

// What parseTCP found.
const (
	notTCP          = iota // not an IPv4 packet carrying TCP
	parsedOK               // a complete TCP header
	parsedMalformed        // TCP whose header does not fit in the packet: s has what could be read
)

// parseTCP parses the first bytes b of an IPv4 packet of totalLen bytes. A
// TCP header that does not fit in the IPv4 packet (gVisor drops it as
// malformed) gives parsedMalformed with the addresses, and the ports and
// numbers as far as the packet holds them.
func parseTCP(b []byte, totalLen int) (segment, int) {
	ip := header.IPv4(b)
	if len(b) < header.IPv4MinimumSize || !ip.IsValid(totalLen) || ip.TransportProtocol() != header.TCPProtocolNumber {
		return segment{}, notTCP
	}
	hl, tl := int(ip.HeaderLength()), int(ip.TotalLength())
	if tl > len(b) && len(b) < hl+header.TCPMinimumSize {
		return segment{}, notTCP // a head too short to judge (cannot happen: headLen covers the headers)
	}
	have := min(len(b), tl) - hl // TCP bytes at hand
	var sp, dp uint16
	t := header.TCP(b[hl:])
	if have >= 4 {
		sp, dp = t.SourcePort(), t.DestinationPort()
	}
	s := segment{
		src: addrPort(ip.SourceAddress(), sp),
		dst: addrPort(ip.DestinationAddress(), dp),
		ws:  -1,
	}
	if have >= 8 {
		s.seq = t.SequenceNumber()
	}
	if have >= 12 {
		s.ack = t.AckNumber()
	}
	if have < header.TCPMinimumSize {
		return s, parsedMalformed
	}
	s.flags, s.seq, s.ack, s.win = t.Flags(), t.SequenceNumber(), t.AckNumber(), t.WindowSize()
	off := int(t.DataOffset())
	if off < header.TCPMinimumSize || hl+off > tl || len(b) < hl+off {
		return s, parsedMalformed
	}
	s.off = off
	s.len = tl - hl - off
	if s.flags&header.TCPFlagSyn != 0 {
		s.ws = header.ParseSynOptions(t.Options(), s.flags&header.TCPFlagAck != 0).WS
	}
	if s.len > 0 {
		s.payload = append([]byte(nil), b[hl+off:min(len(b), tl)]...)
		if len(s.payload) > s.len {
			s.payload = s.payload[:s.len]
		}
	}
	return s, parsedOK
}

func addrOf(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip
}

// headLen is how many bytes of a packet the tap copies: the largest IPv4 and
// TCP headers plus the payload preview.
const headLen = 60 + 60 + 64

// packetHead copies the first n bytes of pkt and returns them with the
// packet's total size. Outbound packets keep their headers in separate
// views; inbound packets are still unparsed and sit entirely in Data.
func packetHead(pkt *tcpipstack.PacketBuffer, n int) ([]byte, int) {
	out := make([]byte, 0, n)
	out = append(out, pkt.NetworkHeader().Slice()...)
	out = append(out, pkt.TransportHeader().Slice()...)
	total := len(out) + pkt.Data().Size()
	if len(out) < n {
		out = append(out, pkt.Data().AsRange().Capped(n-len(out)).ToSlice()...)
	}
	return out, total
}

// tap is a link endpoint that reports every TCP segment crossing it to its
// host, then forwards the packet untouched.
type tap struct {
	nested.Endpoint
	host *Host
	// inMu serialises traced arrivals, so that the stack's counters read
	// around one delivery count that packet alone.
	inMu sync.Mutex
	ctr  counterSet // the stack's counters read around each arrival
	f    faults
	// faulty is set once any fault was configured: until then packets
	// take the direct path.
	faulty atomic.Bool
}

var _ tcpipstack.LinkEndpoint = (*tap)(nil)
var _ tcpipstack.NetworkDispatcher = (*tap)(nil)

func newTap(lower tcpipstack.LinkEndpoint, h *Host) *tap {
	t := &tap{host: h, ctr: newCounterSet(h.s)}
	t.Endpoint.Init(lower, t)
	return t
}

// DeliverNetworkPacket implements stack.NetworkDispatcher: an inbound
// packet. A TCP segment takes its place in the trace before the stack
// handles it and gets its verdict once the stack's synchronous part
// returned (see Host.arrive and Host.judged).
func (t *tap) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *tcpipstack.PacketBuffer) {
	h := t.host
	if proto != header.IPv4ProtocolNumber || h.rec == nil || h.closing.Load() {
		t.Endpoint.DeliverNetworkPacket(proto, pkt)
		return
	}
	t.inMu.Lock()
	defer t.inMu.Unlock()
	a := h.arrive(pkt)
	t.Endpoint.DeliverNetworkPacket(proto, pkt)
	if a != nil {
		h.judged(a)
	}
}

// WritePackets implements stack.LinkEndpoint: outbound packets. Once the
// host is closing, the link is detached: packets are dropped untraced, so
// the stack's teardown (Destroy aborting live connections with RST) never
// reaches the wire.
func (t *tap) WritePackets(pkts tcpipstack.PacketBufferList) (int, tcpip.Error) {
	if t.host.closing.Load() {
		return pkts.Len(), nil
	}
	faulty := t.faulty.Load()
	var flags []string
	for _, pkt := range pkts.AsSlice() {
		f := ""
		if pkt.NetworkProtocolNumber == header.IPv4ProtocolNumber {
			f = t.observe(pkt)
		}
		if faulty {
			flags = append(flags, f)
		}
	}
	if faulty {
		return t.writeWithFaults(pkts, flags)
	}
	return t.Endpoint.WritePackets(pkts)
}

// observe traces one outbound packet and returns its TCP flags ("" if not
// TCP or not traced).
func (t *tap) observe(pkt *tcpipstack.PacketBuffer) string {
	h := t.host
	if h.rec == nil || h.closing.Load() {
		return ""
	}
	n := headLen
	if h.keep {
		n = pkt.Size()
	}
	b, total := packetHead(pkt, n)
	s, ok := parseSegment(b, total)
	if !ok {
		return ""
	}
	var packet []byte
	if h.keep {
		packet = b
	}
	h.onSegment(&s, packet)
	return s.Flags()
}

func (s *segment) String() string {
	return fmt.Sprintf("%v > %v: Flags [%s], seq %d, ack %d, win %d, length %d", s.src, s.dst, s.Flags(), s.seq, s.ack, s.win, s.len)
}
