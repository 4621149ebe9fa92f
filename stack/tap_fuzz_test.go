package stack

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// fuzzSeed is a well-formed IPv4/TCP packet with a 3-byte payload.
func fuzzSeed() []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize+3)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4([4]byte{198, 18, 1, 2}), DstAddr: tcpip.AddrFrom4([4]byte{198, 18, 2, 2})})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.TCP(b[header.IPv4MinimumSize:]).Encode(&header.TCPFields{SrcPort: 4000, DstPort: 9527, SeqNum: 1, AckNum: 1,
		DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck | header.TCPFlagPsh, WindowSize: 512})
	copy(b[header.IPv4MinimumSize+header.TCPMinimumSize:], "aaa")
	return b
}

// FuzzParseSegment feeds the tap's parser any bytes, whole and cut to the
// head the tap copies, with any claimed total size: it must never panic,
// and what it returns must be consistent (a payload no longer than the
// length, no negative length, addresses only from an IPv4 header).
func FuzzParseSegment(f *testing.F) {
	seed := fuzzSeed()
	f.Add(seed, 0)
	f.Add(seed[:30], 0)
	f.Add(seed, -5)
	f.Add(append(seed, make([]byte, 300)...), 0)
	bad := append([]byte(nil), seed...)
	bad[header.IPv4MinimumSize+12] = 0xf0 // data offset 60 > the packet
	f.Add(bad, 0)
	f.Fuzz(func(t *testing.T, b []byte, extra int) {
		for _, head := range [][]byte{b, b[:min(len(b), headLen)]} {
			total := len(b) + extra%64
			s, st := parseTCP(head, total)
			switch st {
			case notTCP:
				if s.src.IsValid() || s.len != 0 || s.payload != nil {
					t.Fatalf("not TCP, yet %+v", s)
				}
			case parsedOK, parsedMalformed:
				if s.len < 0 {
					t.Fatalf("negative payload length %d (state %d) from %x", s.len, st, b)
				}
				if len(s.payload) > s.len {
					t.Fatalf("payload %d bytes > length %d", len(s.payload), s.len)
				}
				if !s.src.Addr().Is4() || s.src == (netip.AddrPort{}) {
					t.Fatalf("TCP without an IPv4 source: %+v", s)
				}
			default:
				t.Fatalf("parseTCP state %d", st)
			}
			if ok := parseSegmentOK(head, total); ok != (st == parsedOK) {
				t.Fatalf("parseSegment and parseTCP disagree")
			}
		}
	})
}

func parseSegmentOK(b []byte, total int) bool {
	_, ok := parseSegment(b, total)
	return ok
}
