// Package pcapng provides a writer of pcapng capture files from a lab
// trace, for Wireshark and tshark.
//
// Each host of the trace becomes one capture interface ("client",
// "server", link type raw IPv4), and each segment event that carries its
// packet bytes (stack.Config.KeepPackets) becomes one packet on the
// interface of the host that saw it. A segment therefore appears twice in
// the file, once as sent and once as received, as if captured at both
// ends of the wire. Every packet carries a comment with what the trace
// knows and the wire does not: the TCP state of the host, the state change
// the packet caused at its receiver, and why a FIN or RST was sent.
//
// Because every segment is in the file twice, Wireshark's TCP analysis,
// which does not tell interfaces apart, marks each received copy as a
// retransmission. Options.Only writes the view of one host instead, which
// is what to give Wireshark's expert analysis.
//
// The file format itself is written by github.com/gopacket/gopacket/pcapgo.
package pcapng

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcplab/tcplab/stack/trace"
)

// Options tune Write. The zero value writes a reproducible file: times
// from the Unix epoch, per-packet comments, application "tcplab".
type Options struct {
	// Base is the wall-clock time of the start of the trace; packets are
	// stamped Base + Event.T. The zero value means the Unix epoch, so that
	// the same trace always gives the same bytes.
	Base time.Time
	// NoComments leaves out the per-packet comments.
	NoComments bool
	// Application names the writer in the section header; "" means
	// "tcplab".
	Application string
	// Only, if set, writes the packets of that host alone ("client" or
	// "server") on a single interface: a capture taken at one end, without
	// the duplicate of each segment.
	Only string
}

// hosts whose interfaces are always in the file, in this order.
var fixedHosts = [...]string{"client", "server"}

// Write writes the segments of events that carry packet bytes to w as a
// pcapng file and returns how many packets it wrote; segment events
// without bytes (a trace recorded without KeepPackets) and other events
// are skipped, so 0 packets with a nil error means there was nothing to
// write. It holds one small comment per packet in memory beyond the
// events and writes through a buffer it flushes before returning.
func Write(w io.Writer, events []trace.Event, opt Options) (packets int, err error) {
	app := opt.Application
	if app == "" {
		app = "tcplab"
	}
	base := opt.Base
	if base.IsZero() {
		base = time.Unix(0, 0)
	}
	var comments []string
	if !opt.NoComments {
		comments = Comments(events)
	}

	addrs := map[string]string{}
	for _, e := range events {
		if e.Kind == trace.Segment && e.Dir == "out" && addrs[e.Host] == "" {
			if i := strings.LastIndexByte(e.Src, ':'); i > 0 {
				addrs[e.Host] = e.Src[:i]
			}
		}
	}
	intf := func(host string) pcapgo.NgInterface {
		desc := "tcplab host " + host
		if a := addrs[host]; a != "" {
			desc += " " + a
		}
		return pcapgo.NgInterface{
			Name:        host,
			Description: desc,
			LinkType:    layers.LinkTypeRaw,
			SnapLength:  0, // no limit
		}
	}
	hosts := fixedHosts[:]
	if opt.Only != "" {
		hosts = []string{opt.Only}
	}
	nw, err := pcapgo.NewNgWriterInterface(w, intf(hosts[0]), pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Application: app},
	})
	if err != nil {
		return 0, fmt.Errorf("pcapng: write header: %w", err)
	}
	ids := map[string]int{hosts[0]: 0}
	for _, h := range hosts[1:] {
		id, err := nw.AddInterface(intf(h))
		if err != nil {
			return 0, fmt.Errorf("pcapng: add interface %s: %w", h, err)
		}
		ids[h] = id
	}

	for i, e := range events {
		if e.Kind != trace.Segment || len(e.Packet) == 0 || (opt.Only != "" && e.Host != opt.Only) {
			continue
		}
		id, ok := ids[e.Host]
		if !ok {
			id, err = nw.AddInterface(intf(e.Host))
			if err != nil {
				return packets, fmt.Errorf("pcapng: add interface %s: %w", e.Host, err)
			}
			ids[e.Host] = id
		}
		ci := gopacket.CaptureInfo{
			Timestamp:      base.Add(e.T),
			CaptureLength:  len(e.Packet),
			Length:         len(e.Packet),
			InterfaceIndex: id,
		}
		var po pcapgo.NgPacketOptions
		if comments != nil && comments[i] != "" {
			po.Comments = []string{comments[i]}
		}
		if err := nw.WritePacketWithOptions(ci, e.Packet, po); err != nil {
			return packets, fmt.Errorf("pcapng: write packet of event %d: %w", e.Index, err)
		}
		packets++
	}
	if err := nw.Flush(); err != nil {
		return packets, fmt.Errorf("pcapng: flush: %w", err)
	}
	return packets, nil
}

// Comments returns, for each event, the comment Write gives its packet
// ("" for events that are not segments):
//
//	client out [F.] state FIN-WAIT-1; reason: close(): ...
//	server in [F.] state ESTABLISHED -> CLOSE-WAIT; reason: close(): ...
//
// A sent segment is described with its sender's state at the time; a
// received one with the state change it caused at its receiver (the
// receiver's next state change on that connection before it receives
// another segment or makes a call that changes state itself), or its
// receiver's state if none (a RST its receiver sends in answer makes the
// change itself: "out [R.] state FIN-WAIT-2 -> CLOSED"); the packets the
// host sends after that arrival are described in the state it caused, even
// when the state event follows them in the trace, so that the comments read
// in packet order tell one consistent story. A refused arrival is given its
// receiver's state and its verdict ("refused: outside the window
// (inferred: ...)"). The reason of a FIN or RST is given on both.
// It costs one pass over events, plus a look-ahead from each arrival.
func Comments(events []trace.Event) []string {
	out := make([]string, len(events))
	multi := multiConn(events)
	state := map[string]string{}  // host/conn -> latest state
	reasons := map[key][]string{} // sends not yet received -> reasons
	for i, e := range events {
		hc := e.Host + "/" + e.Conn
		switch e.Kind {
		case trace.State:
			state[hc] = e.To
			continue
		case trace.Segment:
		default:
			continue
		}
		var b strings.Builder
		b.WriteString(e.Host)
		if multi && e.Conn != "" {
			b.WriteString(" " + e.Conn)
		}
		dir := e.Dir
		if dir == "" {
			dir = "out"
		}
		fmt.Fprintf(&b, " %s [%s]", dir, e.Flags)
		reason := e.Reason
		k := keyOf(e)
		if dir == "out" {
			reasons[k] = append(reasons[k], e.Reason)
			if ch, ok := resetState(events, i); ok {
				fmt.Fprintf(&b, " state %s -> %s", ch.From, ch.To)
				state[hc] = ch.To
			} else if st := state[hc]; st != "" {
				b.WriteString(" state " + st)
			}
		} else {
			// The latest copy sent is the one that arrived: an earlier
			// one still pending was lost (a retransmission has its own
			// reason).
			if q := reasons[k]; len(q) > 0 {
				reason, reasons[k] = q[len(q)-1], q[:len(q)-1]
			}
			if e.Refused() {
				// It changed nothing: no state change is its doing.
				if st := state[hc]; st != "" {
					b.WriteString(" state " + st)
				}
				fmt.Fprintf(&b, "; refused: %s (%s", e.Why, e.VerdictSource())
				if e.Evidence != "" {
					b.WriteString(": " + e.Evidence)
				}
				b.WriteString(")")
			} else if ch, ok := nextState(events, i); ok {
				from := ch.From
				if from == "" {
					from = state[hc]
				}
				fmt.Fprintf(&b, " state %s -> %s", from, ch.To)
				// The host is in ch.To from this packet on, though the
				// probe may record the change only after the host's answer
				// to it (the ACK of a FIN): that answer is sent in ch.To.
				state[hc] = ch.To
			} else if st := state[hc]; st != "" {
				b.WriteString(" state " + st)
			}
		}
		if reason != "" {
			b.WriteString("; reason: " + reason)
		}
		out[i] = b.String()
	}
	return out
}

// key matches a sent segment with its arrival.
type key struct {
	src, dst string
	seq, ack uint32
	flags    string
	length   int
}

func keyOf(e trace.Event) key {
	return key{e.Src, e.Dst, e.Seq, e.Ack, e.Flags, e.Len}
}

// nextState returns the state event of the change the segment events[i]
// caused at its receiver, if any.
func nextState(events []trace.Event, i int) (trace.Event, bool) {
	in := events[i]
	for _, e := range events[i+1:] {
		if e.Host != in.Host || e.Conn != in.Conn {
			continue
		}
		switch e.Kind {
		case trace.State:
			return e, true
		case trace.Segment:
			if e.Dir == "in" || strings.Contains(e.Flags, "R") {
				// the next arrival, or the host's own RST, which
				// makes the change itself (see resetState)
				return trace.Event{}, false
			}
		case trace.Call:
			switch {
			case e.Call == "close", e.Call == "connect", e.Call == "listen",
				strings.HasPrefix(e.Call, "shutdown"):
				return trace.Event{}, false
			}
		}
	}
	return trace.Event{}, false
}

// resetState returns the state change of the host that sent the RST
// events[i], when the trace records it right after the RST (before the
// host receives anything else): a stack resets a connection by sending the
// RST and then closing it, so the change belongs to the RST, not to the
// segment that provoked it.
func resetState(events []trace.Event, i int) (trace.Event, bool) {
	out := events[i]
	if !strings.Contains(out.Flags, "R") {
		return trace.Event{}, false
	}
	for _, e := range events[i+1:] {
		if e.Host != out.Host || e.Conn != out.Conn {
			continue
		}
		switch e.Kind {
		case trace.State:
			return e, e.From != ""
		case trace.Segment, trace.Call:
			return trace.Event{}, false
		}
	}
	return trace.Event{}, false
}

// multiConn tells whether a host of the trace has more than one
// connection, in which case comments name them.
func multiConn(events []trace.Event) bool {
	seen := map[string]string{}
	for _, e := range events {
		if e.Kind != trace.Segment || e.Conn == "" {
			continue
		}
		if c, ok := seen[e.Host]; ok && c != e.Conn {
			return true
		}
		seen[e.Host] = e.Conn
	}
	return false
}
