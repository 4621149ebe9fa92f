package capture

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tcpPacket builds an IPv4/TCP packet with payload.
func tcpPacket(src, dst netip.AddrPort, flags header.TCPFlags, seq, ack uint32, win uint16, payload string) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize+len(payload))
	header.IPv4(b).Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.Addr().As4()), DstAddr: tcpip.AddrFrom4(dst.Addr().As4()),
	})
	header.TCP(b[header.IPv4MinimumSize:]).Encode(&header.TCPFields{
		SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: seq, AckNum: ack,
		DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: win,
	})
	copy(b[header.IPv4MinimumSize+header.TCPMinimumSize:], payload)
	return b
}

// TestWriteRead writes packets the way a Capture does and reads them back:
// device names, indexes, directions, times and every TCP field survive, a
// device met only later gets its own interface, and a packet cut at the
// snap length keeps its true length.
func TestWriteRead(t *testing.T) {
	c := netip.MustParseAddrPort("198.18.1.2:40000")
	s := netip.MustParseAddrPort("198.18.2.2:9527")
	var file bytes.Buffer
	w, err := newFileWriter(&file, 100, "test", []device{{3, "tcl-client"}, {4, "tcl-server"}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 123456789)
	syn := tcpPacket(c, s, header.TCPFlagSyn, 1000, 0, 65535, "")
	data := tcpPacket(s, c, header.TCPFlagAck|header.TCPFlagPsh, 5000, 1001, 512, "Hi, aaa")
	long := tcpPacket(c, s, header.TCPFlagAck, 1001, 5007, 512, strings.Repeat("x", 200))
	for i, p := range []struct {
		h    sll2
		data []byte
	}{
		{sll2{proto: ethIPv4, ifindex: 3, hatype: 0xfffe, pkttype: Host}, syn},
		{sll2{proto: ethIPv4, ifindex: 4, hatype: 0xfffe, pkttype: Outgoing}, syn},
		{sll2{proto: ethIPv4, ifindex: 4, hatype: 0xfffe, pkttype: Host}, data},
		{sll2{proto: ethIPv4, ifindex: 9, hatype: 0xfffe, pkttype: Outgoing}, long[:100]},
	} {
		orig := len(p.data)
		if i == 3 {
			orig = len(long)
		}
		if err := w.write(t0.Add(time.Duration(i)*time.Millisecond), p.h, p.data, orig); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&file)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(got) != 4 {
		t.Fatalf("Read returned %d packets, want 4", len(got))
	}
	want := []string{
		"tcl-client host 198.18.1.2:40000 > 198.18.2.2:9527: Flags [S], seq 1000, ack 0, win 65535, length 0",
		"tcl-server outgoing 198.18.1.2:40000 > 198.18.2.2:9527: Flags [S], seq 1000, ack 0, win 65535, length 0",
		"tcl-server host 198.18.2.2:9527 > 198.18.1.2:40000: Flags [P.], seq 5000, ack 1001, win 512, length 7",
		"ifindex9 outgoing 198.18.1.2:40000 > 198.18.2.2:9527: Flags [.], seq 1001, ack 5007, win 512, length 200",
	}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("packet %d = %q, want %q", i, p, want[i])
		}
		if !p.Time.Equal(t0.Add(time.Duration(i) * time.Millisecond)) {
			t.Errorf("packet %d time = %v, want %v", i, p.Time, t0.Add(time.Duration(i)*time.Millisecond))
		}
	}
	if got[0].Ifindex != 3 || got[1].Ifindex != 4 {
		t.Errorf("ifindexes = %d, %d, want 3, 4", got[0].Ifindex, got[1].Ifindex)
	}
	if string(got[2].Payload) != "Hi, aaa" || got[2].Truncated {
		t.Errorf("payload = %q (truncated %v), want \"Hi, aaa\" whole", got[2].Payload, got[2].Truncated)
	}
	if !got[3].Truncated || len(got[3].Payload) != 100-40 {
		t.Errorf("cut packet: truncated %v, %d payload bytes; want true, 60", got[3].Truncated, len(got[3].Payload))
	}
}

// TestReadRejectsOtherLinkTypes: a file that is not a Capture's is an
// error, not a list of empty packets.
func TestReadRejectsOtherLinkTypes(t *testing.T) {
	if _, err := Read(strings.NewReader("not pcapng")); err == nil {
		t.Error("Read(garbage) = nil error")
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil || c.SnapLen != 262144 || c.Linger != 100*time.Millisecond || c.RcvBuf != 8<<20 || c.Application != "tcplab" {
		t.Errorf("Config{}.withDefaults() = %+v, %v", c, err)
	}
	for _, bad := range []Config{{SnapLen: 10}, {Linger: -1}, {RcvBuf: -1}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v.withDefaults() = nil error", bad)
		}
	}
}
