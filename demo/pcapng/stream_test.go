package pcapng

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// A Stream writes each segment event's packet as it comes, on its host's
// interface, with the event's own reason as comment; a reader sees them
// all, in order.
func TestStreamWritesPacketsAsTheyCome(t *testing.T) {
	pkt := func(seq uint32) []byte {
		return stack.Craft(stack.Segment{Src: netip.MustParseAddrPort("198.18.1.2:1000"), Dst: netip.MustParseAddrPort("198.18.2.2:80"), Flags: 0x02, Seq: seq, Win: 100})
	}
	var b bytes.Buffer
	s, err := NewStream(&b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	events := []trace.Event{
		{Kind: trace.Note, Text: "no packet"},
		{Kind: trace.Segment, Host: "client", Dir: "out", Flags: "S", T: time.Millisecond, Packet: pkt(1)},
		{Kind: trace.Segment, Host: "server", Dir: "in", Flags: "S", T: 2 * time.Millisecond, Packet: pkt(1), Verdict: trace.Refused, Why: trace.WhyNoConnection},
		{Kind: trace.Segment, Host: "client", Dir: "out", Flags: "R", T: 3 * time.Millisecond, Packet: pkt(2), Reason: "close()"},
		{Kind: trace.Segment, Host: "client", Dir: "out", Flags: "."}, // without KeepPackets
	}
	for _, e := range events {
		if err := s.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Flush()
	if err != nil || n != 3 {
		t.Fatalf("Flush() = %d, %v; want 3 packets", n, err)
	}
	file := bytes.Clone(b.Bytes())
	r, err := pcapgo.NewNgReader(&b, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		_, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, intf.Name+" "+ci.Timestamp.Sub(time.Unix(0, 0)).String())
	}
	if want := "client 1ms server 2ms client 3ms"; strings.Join(got, " ") != want {
		t.Errorf("packets %q, want %q", strings.Join(got, " "), want)
	}
	if !bytes.Contains(file, []byte("client sent it: close()")) || !bytes.Contains(file, []byte("server refused it: no connection")) {
		t.Error("the comments of the reason and the refusal are missing")
	}
}
