// Package witness checks a lab's trace against an independent witness: a
// capture of the wire (package tun/capture records one). It compares, for
// every host and direction, the segment events of the trace with the
// packets the capture saw, and returns every disagreement as a sentence.
//
// # The claim checked
//
// Every TCP packet on the wire is one segment event of its sender (Dir
// "out") and one of its receiver (Dir "in"), with the same addresses,
// flags, sequence and acknowledgement numbers, window, length and payload
// (the event's preview of it), in the same order per host and direction;
// and the trace has no segment the wire lacks, except the ones it records
// as dropped by fault injection ("wire drop" in a scenario: a segment event
// followed by the sender's note "fault injection: dropped [F.] ..."), which
// never reach the wire; and except the segments tcplab injected into a
// kernel host (an "inject: ..." note of the receiver, then its "in"
// segment): the raw socket that sends them reaches a local socket without
// crossing a TUN device. Given the trace's start on the wall clock
// (Config.Start), it also checks times: a segment is recorded as sent before
// the wire carried it, and as received after.
//
// # How packets are attributed
//
// A capture inside the lab namespace sees a packet of a gVisor host twice
// when the kernel forwards it to the other gVisor host: coming out of the
// sender's device into the kernel (the sender's copy, Packet.ToDevice
// false) and going from the kernel into the receiver's device (the
// receiver's copy, ToDevice true). The sender's copies on a host's device
// are that host's "out" stream, the receiver's copies its "in" stream. A
// host that is the kernel itself (Host.Device "") has no device: what it
// sends is seen only as the receiver's copy on the other host's device, and
// what it receives only as the sender's copy there; those make its streams.
//
// Compare knows nothing of pcap files or sockets: callers convert what
// their capture reader returns into Packets, so that package demo never
// depends on package tun.
package witness

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

// Host is one TCP endpoint of the lab, as the trace names it.
type Host struct {
	// Name is the trace's Host field: "client" or "server".
	Name string
	// Addr is the host's IP address on the wire.
	Addr netip.Addr
	// Device is the TUN device that carries the host's packets, e.g.
	// "tcl-client"; "" when the host is the kernel itself.
	Device string
}

// Config says what Compare compares.
type Config struct {
	// Hosts are the lab's TCP endpoints.
	Hosts []Host
	// Start, if set, is the wall-clock time of the trace's zero (when its
	// trace.Recorder was created): then times are checked too. A host
	// records a segment it sends before the wire carries it (its tap sees
	// the packet on its way to the device) and one it receives after the
	// wire carried it; an event on the wrong side of its packet, by more
	// than Slack, is a mismatch of kind Timing.
	Start time.Time
	// Slack is the tolerance of the time check: how far Start may be off,
	// plus the clocks' disagreement. Zero means 1 ms.
	Slack time.Duration
}

// Packet is one TCP packet as a capture saw it crossing a device.
type Packet struct {
	// Time is when the capture saw it (not compared; used in messages).
	Time time.Time
	// IfName is the device the packet crossed.
	IfName string
	// ToDevice is true for a packet the kernel sent into the device
	// (PACKET_OUTGOING: the receiver's copy) and false for one that came
	// out of the device into the kernel (PACKET_HOST: the sender's copy).
	ToDevice bool
	// The TCP segment: addresses, flags in tcpdump notation, header
	// fields, payload length and the captured payload.
	Src, Dst netip.AddrPort
	Flags    string
	Seq, Ack uint32
	Win      uint16
	Len      int
	Payload  []byte
}

// Stream is the comparison of one host's segments in one direction.
type Stream struct {
	Host, Dir string // Dir is "out" or "in"
	// Wire is how many packets the capture attributes to the stream,
	// Events how many segment events the trace has, Matched how many of
	// them agree, Dropped how many events are recorded drops.
	Wire, Events, Matched, Dropped int
}

// Result is what Compare found.
type Result struct {
	// Streams has one entry per host and direction, in the order of the
	// hosts given, "out" before "in".
	Streams []Stream
	// Mismatches says where the trace and the wire disagree. Empty means
	// they agree.
	Mismatches []Mismatch
	// LastMatched is the capture time of the last packet that matched a
	// segment event (zero if none did).
	LastMatched time.Time
}

// Kind classifies a Mismatch.
type Kind int

// The kinds of mismatch.
const (
	// WireOnly: a packet on the wire that the trace lacks.
	WireOnly Kind = iota + 1
	// TraceOnly: a segment event that the wire lacks and that is not a
	// recorded drop.
	TraceOnly
	// Reordered: the same segment in both, in another order.
	Reordered
	// Differs: a segment at the same place in both, with fields that
	// differ.
	Differs
	// Unattributed: an event of an unknown host, or a packet between
	// unknown addresses or on an unexpected device.
	Unattributed
	// Timing: a segment in both, in its place, but recorded as sent after
	// the wire carried it or as received before (Config.Start set).
	Timing
)

// Mismatch is one disagreement between the trace and the wire.
type Mismatch struct {
	Kind Kind
	// Stream is the host and direction, e.g. "client out"; "" for
	// Unattributed.
	Stream string
	// Event and Packet are the segment event and the packet concerned;
	// either may be nil.
	Event  *trace.Event
	Packet *Packet
	// Text says it in one sentence.
	Text string
}

// String returns m.Text.
func (m Mismatch) String() string { return m.Text }

// Strings returns the sentences of the mismatches.
func (r Result) Strings() []string {
	var s []string
	for _, m := range r.Mismatches {
		s = append(s, m.Text)
	}
	return s
}

// OK reports whether the trace and the wire agree.
func (r Result) OK() bool { return len(r.Mismatches) == 0 }

// dropNote is the prefix of the note stack/fault.go records for a segment
// dropped by fault injection; the flags follow in brackets.
const dropNote = "fault injection: dropped ["

// Compare checks events (a whole trace) against wire (the TCP packets of a
// capture, in capture order) for the hosts of cfg. Segment events of hosts
// not listed, and packets from or to addresses not listed, are mismatches.
// Cost: linear in the trace and the capture, plus a quadratic alignment of
// the parts of each stream that differ.
func Compare(cfg Config, events []trace.Event, wire []Packet) Result {
	hosts := cfg.Hosts
	if cfg.Slack == 0 {
		cfg.Slack = time.Millisecond
	}
	var res Result
	byName := map[string]*Host{}
	byAddr := map[netip.Addr]*Host{}
	for i := range hosts {
		byName[hosts[i].Name] = &hosts[i]
		byAddr[hosts[i].Addr] = &hosts[i]
	}
	type key struct{ host, dir string }
	evs := map[key][]trace.Event{}
	pkts := map[key][]Packet{}

	// The trace's segments, minus the ones fault injection dropped.
	dropped := droppedEvents(events)
	for i := range injectedEvents(events, byName) {
		dropped[i] = true
	}
	drops := map[key]int{}
	for _, e := range events {
		if e.Kind != trace.Segment {
			continue
		}
		if byName[e.Host] == nil {
			res.Mismatches = append(res.Mismatches, Mismatch{Kind: Unattributed, Event: &e,
				Text: fmt.Sprintf("trace event %d: segment of host %q, which the lab does not have: %s", e.Index, e.Host, eventString(e))})
			continue
		}
		k := key{e.Host, e.Dir}
		if dropped[e.Index] {
			drops[k]++
			continue
		}
		evs[k] = append(evs[k], e)
	}

	// The wire's packets, attributed to streams; a kernel host did not
	// send the segments tcplab forged in its name.
	forged := forgedSegments(events)
	labDevice := map[string]bool{}
	for _, h := range hosts {
		if h.Device != "" {
			labDevice[h.Device] = true
		}
	}
	for _, p := range wire {
		s, d := byAddr[p.Src.Addr()], byAddr[p.Dst.Addr()]
		if d != nil && forged[forgery{d.Name, p.Flags, p.Seq}] && !labDevice[p.IfName] {
			continue // a forged segment for a kernel host, on loopback
		}
		if s == nil || d == nil {
			res.Mismatches = append(res.Mismatches, Mismatch{Kind: Unattributed, Packet: &p,
				Text: fmt.Sprintf("wire: packet between addresses the lab does not have: %s", packetString(p))})
			continue
		}
		switch {
		case !p.ToDevice && s.Device == p.IfName:
			pkts[key{s.Name, "out"}] = append(pkts[key{s.Name, "out"}], p)
			if d.Device == "" {
				pkts[key{d.Name, "in"}] = append(pkts[key{d.Name, "in"}], p)
			}
		case p.ToDevice && d.Device == p.IfName:
			pkts[key{d.Name, "in"}] = append(pkts[key{d.Name, "in"}], p)
			if s.Device == "" && !forged[forgery{d.Name, p.Flags, p.Seq}] {
				pkts[key{s.Name, "out"}] = append(pkts[key{s.Name, "out"}], p)
			}
		default:
			res.Mismatches = append(res.Mismatches, Mismatch{Kind: Unattributed, Packet: &p,
				Text: fmt.Sprintf("wire: packet on a device that is neither its sender's nor its receiver's: %s", packetString(p))})
		}
	}

	for _, h := range hosts {
		for _, dir := range []string{"out", "in"} {
			k := key{h.Name, dir}
			st, mm, last := compareStream(cfg, h.Name, dir, evs[k], pkts[k])
			st.Dropped = drops[k]
			if last.After(res.LastMatched) {
				res.LastMatched = last
			}
			res.Streams = append(res.Streams, st)
			res.Mismatches = append(res.Mismatches, mm...)
		}
	}
	return res
}

// droppedEvents returns the indexes of the segment events that fault
// injection dropped: for each drop note, the nearest earlier "out" segment
// of the same host with the note's flags that is not already taken.
func droppedEvents(events []trace.Event) map[int]bool {
	out := map[int]bool{}
	for i, n := range events {
		if n.Kind != trace.Note || !strings.HasPrefix(n.Text, dropNote) {
			continue
		}
		flags, _, ok := strings.Cut(n.Text[len(dropNote):], "]")
		if !ok {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			e := events[j]
			if e.Kind == trace.Segment && e.Host == n.Host && e.Dir == "out" && e.Flags == flags && !out[e.Index] {
				out[e.Index] = true
				break
			}
		}
	}
	return out
}

// injectNote is the prefix of the note demo/scenario records before it
// injects a segment; "Flags [" and the flags follow.
const injectNote = "inject: "

// injectedEvents returns the indexes of the "in" segment events that an
// inject note announced and that crossed no TUN device: the receiver is a
// kernel host (no device: the raw socket reaches it on loopback), or the
// forged sender is (tun.Lab.InjectSegment puts such a segment straight on
// the receiver's link). For each note, the next "in" segment of its host
// with the note's flags.
func injectedEvents(events []trace.Event, hosts map[string]*Host) map[int]bool {
	out := map[int]bool{}
	for i, n := range events {
		if n.Kind != trace.Note || !strings.HasPrefix(n.Text, injectNote) {
			continue
		}
		h := hosts[n.Host]
		if h == nil {
			continue
		}
		kernelSide := h.Device == ""
		for _, o := range hosts {
			if o.Name != n.Host && o.Device == "" {
				kernelSide = true
			}
		}
		if !kernelSide {
			continue
		}
		_, rest, ok := strings.Cut(n.Text, "Flags [")
		flags, _, ok2 := strings.Cut(rest, "]")
		if !ok || !ok2 {
			continue
		}
		for _, e := range events[i+1:] {
			if e.Kind == trace.Segment && e.Host == n.Host && e.Dir == "in" && e.Flags == flags && !out[e.Index] {
				out[e.Index] = true
				break
			}
		}
	}
	return out
}

// forgery is a segment tcplab injected: its receiver, flags and absolute
// sequence number.
type forgery struct {
	to, flags string
	seq       uint32
}

// forgedSegments reads the inject notes of a trace ("... Flags [R], ...
// absolute seq N ack M)").
func forgedSegments(events []trace.Event) map[forgery]bool {
	out := map[forgery]bool{}
	for _, n := range events {
		if n.Kind != trace.Note || !strings.HasPrefix(n.Text, injectNote) {
			continue
		}
		_, rest, ok := strings.Cut(n.Text, "Flags [")
		flags, _, ok2 := strings.Cut(rest, "]")
		_, abs, ok3 := strings.Cut(n.Text, "absolute seq ")
		var seq uint32
		if _, err := fmt.Sscanf(abs, "%d", &seq); ok && ok2 && ok3 && err == nil {
			out[forgery{n.Host, flags, seq}] = true
		}
	}
	return out
}

// same reports whether event e and packet p describe the same segment.
func same(e trace.Event, p Packet) bool {
	return e.Src == p.Src.String() && e.Dst == p.Dst.String() && e.Flags == p.Flags &&
		e.Seq == p.Seq && e.Ack == p.Ack && e.Win == p.Win && e.Len == p.Len &&
		bytes.Equal(e.Payload, preview(p))
}

// preview is the part of p's payload a segment event keeps.
func preview(p Packet) []byte { return p.Payload[:min(len(p.Payload), trace.PayloadPreview)] }

// diff lists the fields in which e and p differ, as "field: trace X, wire Y".
func diff(e trace.Event, p Packet) string {
	var d []string
	add := func(name string, t, w any) {
		if fmt.Sprint(t) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s: trace %v, wire %v", name, t, w))
		}
	}
	add("src", e.Src, p.Src)
	add("dst", e.Dst, p.Dst)
	add("flags", e.Flags, p.Flags)
	add("seq", e.Seq, p.Seq)
	add("ack", e.Ack, p.Ack)
	add("win", e.Win, p.Win)
	add("len", e.Len, p.Len)
	add("payload", fmt.Sprintf("%q", e.Payload), fmt.Sprintf("%q", preview(p)))
	return strings.Join(d, "; ")
}

// compareStream aligns one stream's events and packets and explains where
// they differ.
func compareStream(cfg Config, host, dir string, evs []trace.Event, pkts []Packet) (st Stream, mm []Mismatch, last time.Time) {
	st = Stream{Host: host, Dir: dir, Wire: len(pkts), Events: len(evs)}
	pairs := align(evs, pkts)
	st.Matched = len(pairs)
	for _, pr := range pairs {
		if t := pkts[pr[1]].Time; t.After(last) {
			last = t
		}
	}
	name := host + " " + dir
	add := func(k Kind, e *trace.Event, p *Packet, format string, args ...any) {
		mm = append(mm, Mismatch{Kind: k, Stream: name, Event: e, Packet: p, Text: name + ": " + fmt.Sprintf(format, args...)})
	}
	if !cfg.Start.IsZero() {
		for _, pr := range pairs {
			e, p := &evs[pr[0]], &pkts[pr[1]]
			at := cfg.Start.Add(e.T)
			switch d := at.Sub(p.Time); {
			case dir == "out" && d > cfg.Slack:
				add(Timing, e, p, "segment %d recorded as sent %v after the wire carried it (event %d at %v, wire at %v): %s", pr[0]+1, d, e.Index, e.T, p.Time.Sub(cfg.Start), eventString(*e))
			case dir == "in" && -d > cfg.Slack:
				add(Timing, e, p, "segment %d recorded as received %v before the wire carried it (event %d at %v, wire at %v): %s", pr[0]+1, -d, e.Index, e.T, p.Time.Sub(cfg.Start), eventString(*e))
			}
		}
	}

	// Unmatched items, each with its gap: how many matched pairs come
	// before it in its own sequence.
	type item struct{ i, gap int }
	var ue, up []item
	ei, pi := 0, 0
	bounds := append(append([][2]int(nil), pairs...), [2]int{len(evs), len(pkts)})
	for g, pr := range bounds {
		for ; ei < pr[0]; ei++ {
			ue = append(ue, item{ei, g})
		}
		for ; pi < pr[1]; pi++ {
			up = append(up, item{pi, g})
		}
		ei, pi = pr[0]+1, pr[1]+1
	}
	usedE, usedP := map[int]bool{}, map[int]bool{}
	// The same segment in both, but in another order.
	for _, a := range ue {
		for _, b := range up {
			if !usedP[b.i] && same(evs[a.i], pkts[b.i]) {
				usedE[a.i], usedP[b.i] = true, true
				add(Reordered, &evs[a.i], &pkts[b.i], "out of order: %s is segment %d of the stream in the trace (event %d) but packet %d on the wire", eventString(evs[a.i]), a.i+1, evs[a.i].Index, b.i+1)
				break
			}
		}
	}
	// The same segment at the same place, with fields that differ.
	for _, a := range ue {
		if usedE[a.i] {
			continue
		}
		for _, b := range up {
			e, p := evs[a.i], pkts[b.i]
			if usedP[b.i] || b.gap != a.gap || e.Src != p.Src.String() || e.Dst != p.Dst.String() || (e.Flags != p.Flags && e.Seq != p.Seq) {
				continue
			}
			usedE[a.i], usedP[b.i] = true, true
			add(Differs, &evs[a.i], &pkts[b.i], "segment %d differs (trace event %d, wire packet %d): %s", a.i+1, e.Index, b.i+1, diff(e, p))
			break
		}
	}
	for _, a := range ue {
		if !usedE[a.i] {
			add(TraceOnly, &evs[a.i], nil, "the trace has a segment the wire lacks (event %d): %s", evs[a.i].Index, eventString(evs[a.i]))
		}
	}
	for _, b := range up {
		if !usedP[b.i] {
			add(WireOnly, nil, &pkts[b.i], "the wire has a segment the trace lacks (packet %d at %s): %s", b.i+1, pkts[b.i].Time.Format("15:04:05.000000"), packetString(pkts[b.i]))
		}
	}
	return st, mm, last
}

// maxCells bounds the alignment table of the part of a stream that
// differs; beyond it, that part is compared position by position.
const maxCells = 1 << 22

// align returns the index pairs (event, packet) of a longest common
// subsequence of evs and pkts under same, in increasing order. The common
// prefix and suffix are matched directly; the middle by dynamic
// programming.
func align(evs []trace.Event, pkts []Packet) [][2]int {
	var pairs [][2]int
	lo := 0
	for lo < len(evs) && lo < len(pkts) && same(evs[lo], pkts[lo]) {
		pairs = append(pairs, [2]int{lo, lo})
		lo++
	}
	he, hp := len(evs), len(pkts)
	var tail [][2]int
	for he > lo && hp > lo && same(evs[he-1], pkts[hp-1]) {
		he, hp = he-1, hp-1
		tail = append(tail, [2]int{he, hp})
	}
	n, m := he-lo, hp-lo
	if n > 0 && m > 0 {
		if n*m > maxCells {
			for i := 0; i < min(n, m); i++ {
				if same(evs[lo+i], pkts[lo+i]) {
					pairs = append(pairs, [2]int{lo + i, lo + i})
				}
			}
		} else {
			// l[i][j]: LCS length of evs[lo+i:he] and pkts[lo+j:hp].
			l := make([][]int32, n+1)
			for i := range l {
				l[i] = make([]int32, m+1)
			}
			for i := n - 1; i >= 0; i-- {
				for j := m - 1; j >= 0; j-- {
					switch {
					case same(evs[lo+i], pkts[lo+j]):
						l[i][j] = l[i+1][j+1] + 1
					case l[i+1][j] >= l[i][j+1]:
						l[i][j] = l[i+1][j]
					default:
						l[i][j] = l[i][j+1]
					}
				}
			}
			for i, j := 0, 0; i < n && j < m; {
				switch {
				case same(evs[lo+i], pkts[lo+j]):
					pairs = append(pairs, [2]int{lo + i, lo + j})
					i, j = i+1, j+1
				case l[i+1][j] >= l[i][j+1]:
					i++
				default:
					j++
				}
			}
		}
	}
	for i := len(tail) - 1; i >= 0; i-- {
		pairs = append(pairs, tail[i])
	}
	return pairs
}

// eventString formats a segment event like a tcpdump line.
func eventString(e trace.Event) string {
	return fmt.Sprintf("%s > %s: Flags [%s], seq %d, ack %d, win %d, length %d", e.Src, e.Dst, e.Flags, e.Seq, e.Ack, e.Win, e.Len)
}

// packetString formats a packet like a tcpdump line with its device.
func packetString(p Packet) string {
	dir := "In" // into the kernel, as tcpdump -i any prints it
	if p.ToDevice {
		dir = "Out"
	}
	return fmt.Sprintf("%s %s %v > %v: Flags [%s], seq %d, ack %d, win %d, length %d", p.IfName, dir, p.Src, p.Dst, p.Flags, p.Seq, p.Ack, p.Win, p.Len)
}

// Table formats the streams of several results as a table, one row per
// label (e.g. a scenario) and stream.
func Table(rows []string, results []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-24s %-12s %6s %6s %7s %7s %s\n", "run", "stream", "wire", "events", "matched", "dropped", "mismatches")
	for i, r := range results {
		for j, s := range r.Streams {
			mm := ""
			if j == 0 {
				mm = fmt.Sprint(len(r.Mismatches))
			}
			fmt.Fprintf(&b, "%-24s %-12s %6d %6d %7d %7d %s\n", rows[i], s.Host+" "+s.Dir, s.Wire, s.Events, s.Matched, s.Dropped, mm)
		}
	}
	return b.String()
}
