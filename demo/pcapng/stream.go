package pcapng

import (
	"fmt"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcplab/tcplab/stack/trace"
)

// Stream writes the packets of a trace to a pcapng file while the trace is
// being recorded, one event at a time, so that a long run's file never
// needs the whole trace in memory (Write does: its comments look ahead).
// Its comments say only what the event itself knows: why a segment was
// sent, and the verdict on a refused arrival. Not safe for concurrent use.
type Stream struct {
	nw   *pcapgo.NgWriter
	ids  map[string]int
	opt  Options
	n    int
	intf func(host string) pcapgo.NgInterface
}

// NewStream writes the file's header to w, with one interface per host as
// Write does (Options.Only: one), and returns the Stream that writes its
// packets. Options.Base stamps the packets as in Write.
func NewStream(w io.Writer, opt Options) (*Stream, error) {
	if opt.Application == "" {
		opt.Application = "tcplab"
	}
	if opt.Base.IsZero() {
		opt.Base = time.Unix(0, 0)
	}
	s := &Stream{ids: map[string]int{}, opt: opt}
	s.intf = func(host string) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: host, Description: "tcplab host " + host, LinkType: layers.LinkTypeRaw}
	}
	hosts := fixedHosts[:]
	if opt.Only != "" {
		hosts = []string{opt.Only}
	}
	nw, err := pcapgo.NewNgWriterInterface(w, s.intf(hosts[0]), pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Application: opt.Application},
	})
	if err != nil {
		return nil, fmt.Errorf("pcapng: write header: %w", err)
	}
	s.nw = nw
	s.ids[hosts[0]] = 0
	for _, h := range hosts[1:] {
		id, err := nw.AddInterface(s.intf(h))
		if err != nil {
			return nil, fmt.Errorf("pcapng: add interface %s: %w", h, err)
		}
		s.ids[h] = id
	}
	return s, nil
}

// Write writes e's packet, if it is a segment event that carries one (and
// of the host Options.Only names, if any); other events are skipped. Cost:
// one packet block into the writer's buffer.
func (s *Stream) Write(e trace.Event) error {
	if e.Kind != trace.Segment || len(e.Packet) == 0 || (s.opt.Only != "" && e.Host != s.opt.Only) {
		return nil
	}
	id, ok := s.ids[e.Host]
	if !ok {
		var err error
		if id, err = s.nw.AddInterface(s.intf(e.Host)); err != nil {
			return fmt.Errorf("pcapng: add interface %s: %w", e.Host, err)
		}
		s.ids[e.Host] = id
	}
	ci := gopacket.CaptureInfo{Timestamp: s.opt.Base.Add(e.T), CaptureLength: len(e.Packet), Length: len(e.Packet), InterfaceIndex: id}
	var po pcapgo.NgPacketOptions
	if c := streamComment(e); c != "" && !s.opt.NoComments {
		po.Comments = []string{c}
	}
	if err := s.nw.WritePacketWithOptions(ci, e.Packet, po); err != nil {
		return fmt.Errorf("pcapng: write packet of event %d: %w", e.Index, err)
	}
	s.n++
	return nil
}

// Flush writes out what the writer buffers and returns how many packets
// the file holds.
func (s *Stream) Flush() (packets int, err error) {
	if err := s.nw.Flush(); err != nil {
		return s.n, fmt.Errorf("pcapng: flush: %w", err)
	}
	return s.n, nil
}

// streamComment is what one event says about its packet.
func streamComment(e trace.Event) string {
	switch {
	case e.Reason != "":
		return e.Host + " sent it: " + e.Reason
	case e.Refused():
		c := e.Host + " refused it: " + e.Why
		if e.Evidence != "" {
			c += " (" + e.Evidence + ")"
		}
		return c
	}
	return ""
}
