package render

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tcplab/tcplab/stack/trace"
)

// This file holds what the terminal ladder (ladder.go) and the SVG ladder
// (svg.go) share: the trace turned into a list of steps, with sequence
// numbers made relative, sends matched with arrivals and bulk transfers
// collapsed into one step each.

// DefaultCollapseAfter is how many data segments in a row, in one direction
// of one connection, a ladder draws one by one before it collapses them
// into a single summary arrow.
const DefaultCollapseAfter = 8

type stepKind int

const (
	stepSeg    stepKind = iota // a segment as sent (its "out" event)
	stepArrive                 // a segment as received (its "in" event)
	stepRun                    // a collapsed bulk transfer
	stepCall                   // a socket call, or a summary of collapsed calls
	stepState                  // a TCP state change
	stepBuffer                 // buffer levels of one host
	stepNote                   // free text
)

// side is the lane of a host: the client on the left, the server (and
// anything not called "client") on the right.
type side int

const (
	left side = iota
	right
)

func sideOf(host string) side {
	if host == "client" {
		return left
	}
	return right
}

// step is one thing a ladder draws.
type step struct {
	kind stepKind
	ev   trace.Event // the event drawn (for a run: its first segment)
	side side        // lane of the host that acted
	text string      // label of an arrow, or text of a call, state or note

	// Segments.
	flags  string
	reason string
	arrive int  // for stepSeg: index in steps of the arrival, -1 if none
	lost   bool // sent, never received, in a trace that records arrivals

	// Runs.
	run *runInfo
	// last is the time of the last event a run or call summary stands for.
	last trace.Event
	// summary marks a call step that stands for several collapsed calls.
	summary bool
	// of is, for stepArrive, the index in steps of the send it matches
	// (-1 if none or collapsed into a run).
	of int
}

// runInfo summarises a collapsed bulk transfer.
type runInfo struct {
	from, to   string // host names
	segs       int
	flags      []string
	lo, hi     uint32 // relative sequence range
	bytes      int    // payload bytes sent, retransmissions included
	retrans    int
	acks       int
	lastAck    uint32
	hasAck     bool
	ackFrom    string
	start, end int // indexes in steps of the first and last step folded in
}

// modelOptions tune buildModel.
type modelOptions struct {
	collapseAfter int // <0: never; 0: DefaultCollapseAfter
	absolute      bool
	ports         bool
}

// model is a trace laid out for a ladder.
type model struct {
	steps     []step
	multiConn bool
	buffers   bool              // the trace has buffer levels
	addr      map[string]string // host name -> its IP address, when seen
}

// segKey identifies a segment on the wire, to match a send with its arrival.
type segKey struct {
	src, dst   string
	seq, ack   uint32
	flags      string
	length     int
	payloadLen int
}

func keyOf(e trace.Event) segKey {
	return segKey{e.Src, e.Dst, e.Seq, e.Ack, e.Flags, e.Len, len(e.Payload)}
}

// tupleOf names a connection by its two endpoints, the same from both hosts.
func tupleOf(e trace.Event) string {
	a, b := e.Src, e.Dst
	if b < a {
		a, b = b, a
	}
	return a + "|" + b
}

// seqBases turns absolute sequence numbers into relative ones: from the
// SYN of each direction, or from the first sequence number seen in it.
type seqBases struct {
	absolute bool
	isn      map[string]uint32 // by "src>dst"
	first    map[string]uint32 // first seq in each direction, whole trace
	firstAck map[string]uint32 // first ack sent in each direction, whole trace
}

func newSeqBases(events []trace.Event, absolute bool) *seqBases {
	sb := &seqBases{absolute: absolute, isn: map[string]uint32{}, first: map[string]uint32{}, firstAck: map[string]uint32{}}
	for _, e := range events {
		if e.Kind != trace.Segment || e.Refused() {
			continue
		}
		fwd := e.Src + ">" + e.Dst
		if _, ok := sb.first[fwd]; !ok {
			sb.first[fwd] = e.Seq
		}
		if _, ok := sb.firstAck[fwd]; !ok && strings.Contains(e.Flags, ".") {
			sb.firstAck[fwd] = e.Ack
		}
	}
	return sb
}

// rel returns e's sequence and acknowledgement numbers relative to the
// bases, updating them on a SYN. Events must come in trace order.
func (sb *seqBases) rel(e trace.Event) (seq, ack uint32) {
	if sb.absolute {
		return e.Seq, e.Ack
	}
	fwd, rev := e.Src+">"+e.Dst, e.Dst+">"+e.Src
	if strings.Contains(e.Flags, "S") && !e.Refused() {
		sb.isn[fwd] = e.Seq
	}
	base, ok := sb.isn[fwd]
	if !ok {
		base = sb.first[fwd]
		sb.isn[fwd] = base
	}
	rb, ok := sb.isn[rev]
	if !ok {
		if f, ok := sb.first[rev]; ok {
			rb = f
		} else {
			rb = sb.firstAck[fwd]
		}
		sb.isn[rev] = rb
	}
	return e.Seq - base, e.Ack - rb
}

// isBulk tells whether a segment carries data and nothing that changes the
// connection (SYN, FIN, RST).
func isBulk(e trace.Event) bool {
	return e.Len > 0 && !strings.ContainsAny(e.Flags, "SFR")
}

// isPureAck tells whether a segment only acknowledges.
func isPureAck(e trace.Event) bool {
	return e.Len == 0 && e.Flags == "."
}

// buildModel lays out events for a ladder.
func buildModel(events []trace.Event, opt modelOptions) model {
	m := model{addr: map[string]string{}}
	after := opt.collapseAfter
	if after == 0 {
		after = DefaultCollapseAfter
	}

	// Conversations per host, ephemeral ports, addresses.
	conns := map[string]map[string]bool{}
	ephemeral := map[string]bool{} // "ip:port" of active openers
	hasArrivals := false
	for _, e := range events {
		switch e.Kind {
		case trace.Segment:
			if conns[e.Host] == nil {
				conns[e.Host] = map[string]bool{}
			}
			conns[e.Host][e.Conn] = true
			if e.Dir == "in" {
				hasArrivals = true
			} else if _, ok := m.addr[e.Host]; !ok {
				if i := strings.LastIndexByte(e.Src, ':'); i > 0 {
					m.addr[e.Host] = e.Src[:i]
				}
			}
			if e.Flags == "S" {
				ephemeral[e.Src] = true
			}
		case trace.Buffer:
			m.buffers = true
		}
	}
	for _, cs := range conns {
		if len(cs) > 1 {
			m.multiConn = true
		}
	}
	scrub := func(s string) string {
		if opt.ports {
			return s
		}
		for ap := range ephemeral {
			if i := strings.LastIndexByte(ap, ':'); i > 0 {
				s = strings.ReplaceAll(s, ap, ap[:i])
			}
		}
		return s
	}

	// Raw steps, one per event, with sends matched to arrivals.
	sb := newSeqBases(events, opt.absolute)
	raw := make([]step, 0, len(events))
	pending := map[segKey][]int{} // sends not yet received, by key: indexes in raw, oldest first
	tuples := map[string]string{} // host/conn -> tuple
	relSeq := make([]uint32, 0, len(events))
	relAck := make([]uint32, 0, len(events))
	for _, e := range events {
		s := step{ev: e, side: sideOf(e.Host), arrive: -1, of: -1, last: e}
		var seq, ack uint32
		switch e.Kind {
		case trace.Segment:
			tuples[e.Host+"/"+e.Conn] = tupleOf(e)
			seq, ack = sb.rel(e)
			if e.Dir == "in" {
				s.kind = stepArrive
				k := keyOf(e)
				// The latest copy of a segment is the one that arrives:
				// a copy sent earlier and still pending was lost (or the
				// retransmission was spurious, which the trace cannot tell).
				if q := pending[k]; len(q) > 0 {
					last := q[len(q)-1]
					s.of = last
					raw[last].arrive = len(raw)
					pending[k] = q[:len(q)-1]
				}
			} else {
				s.kind = stepSeg
				s.flags = e.Flags
				s.reason = asciiSafe(e.Reason)
				s.text = segLabel(e, seq, ack)
				if m.multiConn && e.Conn != "" {
					s.text = e.Conn + " " + s.text
				}
				k := keyOf(e)
				pending[k] = append(pending[k], len(raw))
			}
		case trace.Call:
			s.kind = stepCall
			s.text = asciiSafe(scrub(Call(e)))
		case trace.State:
			s.kind = stepState
			s.text = "[" + e.To + "]"
			if e.Text != "" {
				s.text += " " + e.Text
			}
			s.text = asciiSafe(s.text)
		case trace.Buffer:
			s.kind = stepBuffer
		case trace.Note, trace.Summary:
			// A summary (a long run's routine stretch) is drawn as a
			// note saying what it counts.
			s.kind = stepNote
			s.text = asciiSafe(scrub(e.Text))
		default:
			continue
		}
		if m.multiConn && e.Conn != "" && (s.kind == stepCall || s.kind == stepState) {
			s.text = e.Conn + " " + s.text
		}
		raw = append(raw, s)
		relSeq = append(relSeq, seq)
		relAck = append(relAck, ack)
	}
	if hasArrivals {
		for i := range raw {
			if raw[i].kind == stepSeg && raw[i].arrive < 0 {
				raw[i].lost = true
			}
		}
	}

	// Collapse bulk runs. Indexes change, so arrivals are re-linked after.
	if after < 0 {
		m.steps = raw
		return m
	}
	out := make([]step, 0, len(raw))
	newIdx := make([]int, len(raw)) // raw index -> out index (of the run for folded steps)
	for i := 0; i < len(raw); {
		s := raw[i]
		if s.kind != stepSeg || !isBulk(s.ev) {
			newIdx[i] = len(out)
			out = append(out, s)
			i++
			continue
		}
		host, tuple := s.ev.Host, tupleOf(s.ev)
		data, j := 0, i
	scan:
		for ; j < len(raw); j++ {
			r := raw[j]
			switch r.kind {
			case stepSeg:
				if tupleOf(r.ev) != tuple {
					break scan
				}
				if r.ev.Host == host && isBulk(r.ev) {
					data++
				} else if !isPureAck(r.ev) {
					break scan
				}
			case stepArrive:
				if tupleOf(r.ev) != tuple || strings.ContainsAny(r.ev.Flags, "SFR") {
					break scan
				}
			case stepBuffer:
				if tuples[r.ev.Host+"/"+r.ev.Conn] != tuple {
					break scan
				}
			case stepCall:
				if tuples[r.ev.Host+"/"+r.ev.Conn] != tuple || r.ev.Err != "" ||
					(r.ev.Call != "read" && r.ev.Call != "write") {
					break scan
				}
			default:
				break scan
			}
		}
		if data <= after {
			for k := i; k < j; k++ {
				newIdx[k] = len(out)
				out = append(out, raw[k])
			}
			i = j
			continue
		}
		runAt := len(out)
		for k := i; k < j; k++ {
			newIdx[k] = runAt
		}
		out = append(out, summarize(raw[i:j], relSeq[i:j], relAck[i:j], host)...)
		i = j
	}
	// Re-link sends and arrivals; a send or arrival folded into a run
	// loses its link.
	for i := range out {
		switch out[i].kind {
		case stepSeg:
			if a := out[i].arrive; a >= 0 {
				if raw[a].kind == stepArrive && out[newIdx[a]].kind == stepArrive {
					out[i].arrive = newIdx[a]
				} else {
					out[i].arrive = -1
				}
			}
		case stepArrive:
			if o := out[i].of; o >= 0 {
				if out[newIdx[o]].kind == stepSeg {
					out[i].of = newIdx[o]
				} else {
					out[i].of = -1
				}
			}
		}
	}
	m.steps = out
	return m
}

// summarize folds the steps of a bulk run (sent by host) into a run step,
// followed by one summary step per kind of call and host, and the last
// buffer levels of each host.
func summarize(steps []step, seqs, acks []uint32, host string) []step {
	first := steps[0]
	ri := &runInfo{from: host, to: peer(host), lo: seqs[0], hi: seqs[0]}
	type callSum struct {
		host, name, arg string
		n, ret          int
		last            trace.Event
	}
	var calls []*callSum
	lastBuf := map[string]step{}
	lastEv := first.ev
	for k, s := range steps {
		lastEv = s.ev
		switch s.kind {
		case stepSeg:
			if s.ev.Host == host && isBulk(s.ev) {
				ri.segs++
				if !contains(ri.flags, s.ev.Flags) {
					ri.flags = append(ri.flags, s.ev.Flags)
				}
				seq, end := seqs[k], seqs[k]+uint32(s.ev.Len)
				if seq < ri.hi {
					ri.retrans++
				}
				if seq < ri.lo {
					ri.lo = seq
				}
				if end > ri.hi {
					ri.hi = end
				}
				ri.bytes += s.ev.Len
			} else if s.ev.Host != host {
				ri.acks++
				ri.lastAck, ri.hasAck, ri.ackFrom = acks[k], true, s.ev.Host
			}
		case stepCall:
			var cs *callSum
			for _, c := range calls {
				if c.host == s.ev.Host && c.name == s.ev.Call && c.arg == s.ev.Arg {
					cs = c
				}
			}
			if cs == nil {
				cs = &callSum{host: s.ev.Host, name: s.ev.Call, arg: s.ev.Arg}
				calls = append(calls, cs)
			}
			cs.n++
			cs.ret += s.ev.Ret
			cs.last = s.ev
		case stepBuffer:
			lastBuf[s.ev.Host] = s
		}
	}
	run := step{kind: stepRun, ev: first.ev, side: sideOf(host), arrive: -1, of: -1, run: ri, last: lastEv}
	run.flags = strings.Join(ri.flags, "/")
	run.text = runLabel(ri, run.flags)
	out := []step{run}
	hosts := make([]string, 0, len(lastBuf))
	for h := range lastBuf {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		out = append(out, lastBuf[h])
	}
	for _, c := range calls {
		text := fmt.Sprintf("%s(%s) ×%d = %d", c.name, c.arg, c.n, c.ret)
		if c.n == 1 {
			text = fmt.Sprintf("%s(%s) = %d", c.name, c.arg, c.ret)
		}
		out = append(out, step{kind: stepCall, ev: c.last, side: sideOf(c.host), text: text, arrive: -1, of: -1, last: c.last, summary: true})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runLabel is the text of a collapsed run:
// "client ═▶ server  P. ×812 seq 1:1048577 (1.0 MiB)".
func runLabel(ri *runInfo, flags string) string {
	arrow := ri.from + " ═▶ " + ri.to
	if sideOf(ri.from) == right {
		arrow = ri.to + " ◀═ " + ri.from
	}
	s := fmt.Sprintf("%s  %s ×%d seq %d:%d (%s)", arrow, flags, ri.segs, ri.lo, ri.hi, humanBytes(int(ri.hi-ri.lo)))
	return s
}

// runDetail is the second line of a collapsed run: acknowledgements and
// retransmissions.
func runDetail(ri *runInfo) string {
	var parts []string
	if ri.hasAck {
		parts = append(parts, fmt.Sprintf("%d ACKs from %s, last ack %d", ri.acks, ri.ackFrom, ri.lastAck))
	}
	if ri.retrans > 0 {
		parts = append(parts, fmt.Sprintf("%d retransmitted", ri.retrans))
	}
	return strings.Join(parts, "; ")
}

// segLabel is the text on a segment's arrow: flags, relative seq and ack,
// length and a preview of the data.
func segLabel(e trace.Event, seq, ack uint32) string {
	var b strings.Builder
	b.WriteString(e.Flags)
	switch {
	case e.Len > 0:
		fmt.Fprintf(&b, " seq %d:%d", seq, seq+uint32(e.Len))
	case strings.ContainsAny(e.Flags, "SFR"):
		fmt.Fprintf(&b, " seq %d", seq)
	}
	if strings.Contains(e.Flags, ".") {
		fmt.Fprintf(&b, " ack %d", ack)
	}
	if e.Win == 0 && !strings.Contains(e.Flags, "R") {
		b.WriteString(" win 0")
	}
	if e.Len > 0 {
		fmt.Fprintf(&b, " len %d", e.Len)
		if len(e.Payload) > 0 {
			b.WriteString(" " + asciiSafe(Quote(e.Payload, 12)))
		}
	}
	return b.String()
}

// humanBytes formats n bytes for people: "512 B", "64.0 KiB", "1.0 MiB".
func humanBytes(n int) string {
	switch {
	case n < 1024:
		return strconv.Itoa(n) + " B"
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// compactBytes formats n in at most 4 characters: "512", "9999", "64K", "1.0M".
func compactBytes(n int) string {
	switch {
	case n < 10000:
		return strconv.Itoa(n)
	case n < 1000<<10:
		return strconv.Itoa((n+512)>>10) + "K"
	case n < 10<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n < 1000<<20:
		return strconv.Itoa((n+(1<<19))>>20) + "M"
	}
	return strconv.Itoa((n+(1<<29))>>30) + "G"
}

// asciiSafe escapes every rune that is not printable ASCII, so that one
// rune is one terminal column.
func asciiSafe(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	return b.String()
}

// fit cuts s to at most n runes, ending in "…" when cut.
func fit(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// wrap breaks s into lines of at most width runes, at spaces when it can.
func wrap(s string, width int) []string {
	if width < 1 {
		width = 1
	}
	var lines []string
	var cur []rune
	for _, word := range strings.Fields(s) {
		w := []rune(word)
		if len(cur) > 0 && len(cur)+1+len(w) > width {
			lines = append(lines, string(cur))
			cur = cur[:0]
		}
		if len(cur) > 0 {
			cur = append(cur, ' ')
		}
		cur = append(cur, w...)
		for len(cur) > width {
			lines = append(lines, string(cur[:width]))
			cur = append([]rune(nil), cur[width:]...)
		}
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}
