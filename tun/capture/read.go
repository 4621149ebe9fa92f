package capture

import (
	"errors"
	"fmt"
	"io"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Read parses a pcapng file written by a Capture (one LINUX_SLL2 interface
// per device) into its packets, in file order, which is the order the
// capture socket received them. Each packet's device name comes from its
// interface block, its index and direction from its cooked header. It
// fails on any other link type. Cost: the whole file is held in memory as
// WirePackets.
func Read(r io.Reader) ([]WirePacket, error) {
	ng, err := pcapgo.NewNgReader(r, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return nil, fmt.Errorf("capture: read pcapng: %w", err)
	}
	var out []WirePacket
	for {
		data, ci, err := ng.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("capture: read pcapng packet %d: %w", len(out)+1, err)
		}
		intf, err := ng.Interface(ci.InterfaceIndex)
		if err != nil {
			return out, fmt.Errorf("capture: packet %d: %w", len(out)+1, err)
		}
		if intf.LinkType != layers.LinkTypeLinuxSLL2 {
			return out, fmt.Errorf("capture: packet %d: interface %q has link type %v, want LINUX_SLL2", len(out)+1, intf.Name, intf.LinkType)
		}
		h, err := parseSLL2(data)
		if err != nil {
			return out, fmt.Errorf("capture: packet %d: %w", len(out)+1, err)
		}
		p := WirePacket{Time: ci.Timestamp, Ifindex: h.ifindex, IfName: intf.Name, Dir: h.pkttype, Truncated: ci.CaptureLength < ci.Length}
		if h.proto == ethIPv4 {
			p.parseIP(data[sll2Len:])
		}
		out = append(out, p)
	}
}

// ethIPv4 is the EtherType of IPv4.
const ethIPv4 = 0x0800
