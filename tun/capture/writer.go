package capture

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// device is a network device of the lab namespace.
type device struct {
	index int
	name  string
}

// fileWriter writes captured packets as pcapng: one LINUX_SLL2 interface
// per device, added the first time a device is met if it was not known at
// the start.
type fileWriter struct {
	ng   *pcapgo.NgWriter
	snap int
	ids  map[int]int // ifindex -> pcapng interface id
	hdr  []byte      // scratch: cooked header + packet
}

// newFileWriter writes the section header and one interface block per
// device in devs (at least one) to w.
func newFileWriter(w io.Writer, snap int, app string, devs []device) (*fileWriter, error) {
	if len(devs) == 0 {
		return nil, fmt.Errorf("capture: no devices to capture")
	}
	f := &fileWriter{snap: snap, ids: map[int]int{}}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: app}}
	ng, err := pcapgo.NewNgWriterInterface(w, f.intf(devs[0]), opts)
	if err != nil {
		return nil, fmt.Errorf("capture: write pcapng header: %w", err)
	}
	f.ng = ng
	f.ids[devs[0].index] = 0
	for _, d := range devs[1:] {
		if err := f.add(d); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// intf describes d as a pcapng interface.
func (f *fileWriter) intf(d device) pcapgo.NgInterface {
	return pcapgo.NgInterface{
		Name:                d.name,
		Description:         fmt.Sprintf("ifindex %d in the tcplab namespace", d.index),
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeLinuxSLL2,
		SnapLength:          uint32(f.snap + sll2Len), // the cooked header comes on top
		TimestampResolution: 9,
	}
}

// add writes an interface block for d.
func (f *fileWriter) add(d device) error {
	id, err := f.ng.AddInterface(f.intf(d))
	if err != nil {
		return fmt.Errorf("capture: write pcapng interface %s: %w", d.name, err)
	}
	f.ids[d.index] = id
	return nil
}

// write writes one packet: its cooked header h and the captured bytes data
// (at most the snap length) of a packet origLen bytes long, received at t.
func (f *fileWriter) write(t time.Time, h sll2, data []byte, origLen int) error {
	id, ok := f.ids[h.ifindex]
	if !ok {
		if err := f.add(device{index: h.ifindex, name: fmt.Sprintf("ifindex%d", h.ifindex)}); err != nil {
			return err
		}
		id = f.ids[h.ifindex]
	}
	f.hdr = append(f.hdr[:0], make([]byte, sll2Len)...)
	h.put(f.hdr)
	f.hdr = append(f.hdr, data...)
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(f.hdr), Length: sll2Len + origLen, InterfaceIndex: id}
	dir := pcapgo.NgEpbFlagDirectionInbound
	if h.pkttype == Outgoing {
		dir = pcapgo.NgEpbFlagDirectionOutbound
	}
	opts := pcapgo.NgPacketOptions{Flags: &pcapgo.NgEpbFlags{Direction: dir}}
	if err := f.ng.WritePacketWithOptions(ci, f.hdr, opts); err != nil {
		return fmt.Errorf("capture: write pcapng packet: %w", err)
	}
	return nil
}

// flush writes out what the pcapng writer buffers.
func (f *fileWriter) flush() error {
	if err := f.ng.Flush(); err != nil {
		return fmt.Errorf("capture: flush pcapng: %w", err)
	}
	return nil
}
