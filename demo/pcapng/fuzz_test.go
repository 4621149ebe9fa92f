package pcapng

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcplab/tcplab/stack/trace"
)

// FuzzRoundTrip writes traces made from arbitrary bytes (hosts, flags,
// reasons, times, packets of any content) and reads each file back with
// gopacket's pcapng reader: every packet comes back with its bytes, its
// host's interface and its comment, and Write never fails or panics.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("\x45\x00\x00\x14"), "client", "R.", "reason with \x00 and \n", int64(1500), true)
	f.Add([]byte{}, "server", "F.", "", int64(-5), false)
	f.Add(bytes.Repeat([]byte{0xff}, 70000), "relay", "S", strings.Repeat("é", 300), int64(1<<40), true)
	f.Fuzz(func(t *testing.T, pkt []byte, host, flags, reason string, ns int64, in bool) {
		dir := "out"
		if in {
			dir = "in"
		}
		events := []trace.Event{
			{Kind: trace.State, Host: host, Conn: "c1", From: "CLOSED", To: "SYN-SENT"},
			{Kind: trace.Segment, Host: host, Conn: "c1", Dir: dir, Flags: flags, Reason: reason, Packet: pkt, T: time.Duration(ns), Src: "198.18.1.2:1", Dst: "198.18.2.2:2"},
			{Kind: trace.Segment, Host: "server", Conn: "c1", Dir: "in", Flags: flags, Packet: pkt, T: time.Duration(ns) + 1},
		}
		var buf bytes.Buffer
		n, err := Write(&buf, events, Options{})
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		want := 0
		for _, e := range events {
			if e.Kind == trace.Segment && len(e.Packet) > 0 {
				want++
			}
		}
		if n != want {
			t.Fatalf("Write wrote %d packets, want %d", n, want)
		}
		r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		got := 0
		for {
			data, ci, err := r.ReadPacketData()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read packet %d: %v", got, err)
			}
			if !bytes.Equal(data, pkt) {
				t.Fatalf("packet %d: %d bytes back, wrote %d", got, len(data), len(pkt))
			}
			if ci.InterfaceIndex < 0 || ci.InterfaceIndex >= r.NInterfaces() {
				t.Fatalf("packet %d on interface %d of %d", got, ci.InterfaceIndex, r.NInterfaces())
			}
			got++
		}
		if got != n {
			t.Fatalf("read back %d packets, wrote %d", got, n)
		}
	})
}
