package view

import (
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"

	"github.com/tcplab/tcplab/stack/trace"
)

// Data is what the page shows, served as /data.json.
type Data struct {
	// File is the input's name; Source says what it was: "trace" (JSON
	// lines), "tcplab pcapng" or "capture".
	File   string `json:"file"`
	Source string `json:"source"`
	// Notes say, once for the page, what is observed and what inferred.
	Notes []string `json:"notes"`
	// Conns are the connections, in order of first segment.
	Conns []*Conn `json:"conns"`
	// Items are the events (or packets, and explain's findings folded
	// into them), in trace order: the ladder's rows.
	Items []*Item `json:"items"`
	// End is the time of the last item, in seconds.
	End float64 `json:"end"`
}

// Field is one line of the details panel: a name and its value; JSON [k, v].
type Field [2]string

// Item is one row of the ladder.
type Item struct {
	// I is the item's index in Data.Items.
	I int `json:"i"`
	// T is its time in seconds from the start of the trace or capture.
	T float64 `json:"t"`
	// Kind is "segment", "call", "state", "buffer" or "note".
	Kind string `json:"kind"`
	// Conn is the index in Data.Conns of its connection, -1 for none (a
	// listener, a note).
	Conn int `json:"conn"`
	// Host is the host (trace) or role (capture) that acted; Lane is 0
	// for the left lane of its connection (the side that sent the SYN),
	// 1 for the right one.
	Host string `json:"host"`
	Lane int    `json:"lane"`
	// Dir is "out" (sent by Host), "in" (received by Host), or "wire" (a
	// packet of a capture: seen between the two).
	Dir string `json:"dir,omitempty"`
	// Label is the text on the ladder; Flags the segment's flags.
	Label string `json:"label"`
	Flags string `json:"flags,omitempty"`
	// Reason is why a FIN or RST (or an answer to a refused arrival) was
	// sent; ReasonBy says where the reason comes from.
	Reason   string `json:"reason,omitempty"`
	ReasonBy string `json:"reason_by,omitempty"`
	// Refused marks an arrival its stack refused.
	Refused bool `json:"refused,omitempty"`
	// Arrive is, for a sent segment, the index of its arrival (-1 if none
	// recorded); Of is, for an arrival, the index of its send; Lost marks
	// a sent segment that never arrived in a trace that records arrivals.
	Arrive int  `json:"arrive"`
	Of     int  `json:"of"`
	Lost   bool `json:"lost,omitempty"`
	// Fields are every field of the event, for the details panel.
	Fields []Field `json:"fields"`
}

// Conn is one connection: its two lanes, and the series of its graphs.
type Conn struct {
	// ID names it on the page ("1", "2", …); Label says who talks to whom.
	ID    string `json:"id"`
	Label string `json:"label"`
	// Lanes are the left (SYN sender) and right host names or roles;
	// Addrs their addresses.
	Lanes [2]string `json:"lanes"`
	Addrs [2]string `json:"addrs"`
	// Summary is what is known of the whole connection (teardown, byte
	// ledger, …).
	Summary []Field `json:"summary"`
	// Dirs are the time-sequence series of each direction: [0] from the
	// left lane to the right one, [1] back.
	Dirs [2]*Dir `json:"dirs"`
	// States are the TCP state bands of each lane's host.
	States []Band `json:"states"`
	// Buffers are the buffer levels of each lane's host (traces only).
	Buffers []BufferPoint `json:"buffers"`
	// First and Last are the times of its first and last item.
	First float64 `json:"first"`
	Last  float64 `json:"last"`
}

// Dir is one direction of a connection, as a time-sequence graph draws it:
// what the sender sent (sequence numbers relative to its ISN) and what the
// receiver acknowledged and offered (the window's right edge).
type Dir struct {
	From string `json:"from"`
	To   string `json:"to"`
	// WScale is the window scale applied to the receiver's windows;
	// WScaleBy says how it is known ("SYN option", "inferred: …", or
	// "none").
	WScale   int    `json:"wscale"`
	WScaleBy string `json:"wscale_by"`
	// Segs are [t, item, seq, end, kind]: kind 0 data, 1 SYN, 2 FIN,
	// 3 RST, 4 retransmission.
	Segs [][5]float64 `json:"segs"`
	// Acks are [t, item, ack, window edge] from the receiver.
	Acks [][4]float64 `json:"acks"`
}

// Band is a span of time a host spent in one TCP state.
type Band struct {
	Lane  int     `json:"lane"`
	State string  `json:"state"`
	T0    float64 `json:"t0"`
	T1    float64 `json:"t1"`
	// Item is the index of the item that began it, -1 if none.
	Item int `json:"item"`
}

// BufferPoint is a host's queue levels from time T on.
type BufferPoint struct {
	Lane int     `json:"lane"`
	T    float64 `json:"t"`
	Item int     `json:"item"`
	Snd  int     `json:"snd"`
	Rcv  int     `json:"rcv"`
}

// Seg kinds of Dir.Segs.
const (
	segData = iota
	segSYN
	segFIN
	segRST
	segRetrans
)

// tupleOf names a connection by its two endpoints, the same from both hosts.
func tupleOf(e trace.Event) string {
	a, b := e.Src, e.Dst
	if b < a {
		a, b = b, a
	}
	return a + "|" + b
}

// fromTrace lays out a trace. reasonBy says where its segments' reasons
// come from.
// known holds window scales read from the SYNs' options, by sender
// address (nil for a JSON trace, which has no options: they are inferred).
func fromTrace(file, source string, events []trace.Event, reasonBy string, known map[string]int) *Data {
	d := &Data{File: file, Source: source}
	// Connections by 4-tuple, in order of first segment; the left lane is
	// the host that sent the SYN (or "client", or the first sender).
	byTuple := map[string]int{}
	hostConn := map[string]int{} // host/conn name -> connection
	synSeen := map[int]bool{}
	for _, e := range events {
		if e.Kind != trace.Segment {
			continue
		}
		tu := tupleOf(e)
		ci, ok := byTuple[tu]
		if !ok {
			ci = len(d.Conns)
			byTuple[tu] = ci
			d.Conns = append(d.Conns, &Conn{ID: strconv.Itoa(ci + 1), First: e.T.Seconds()})
		}
		hostConn[e.Host+"/"+e.Conn] = ci
		c := d.Conns[ci]
		if c.Addrs[0] == "" || (e.Flags == "S" && !synSeen[ci]) {
			c.Addrs = [2]string{e.Src, e.Dst}
			synSeen[ci] = e.Flags == "S"
		}
	}
	// Name the lanes by the hosts that own the addresses.
	for _, e := range events {
		if e.Kind != trace.Segment {
			continue
		}
		c := d.Conns[byTuple[tupleOf(e)]]
		own := e.Src
		if e.Dir == "in" {
			own = e.Dst
		}
		for i, a := range c.Addrs {
			if a == own && c.Lanes[i] == "" {
				c.Lanes[i] = e.Host
			}
		}
	}
	for _, c := range d.Conns {
		for i := range c.Lanes {
			if c.Lanes[i] == "" {
				c.Lanes[i] = c.Addrs[i]
			}
		}
		c.Label = laneName(c, 0) + " ⇄ " + laneName(c, 1)
	}
	laneOf := func(ci int, host, addr string) int {
		if ci < 0 {
			if host == "client" {
				return 0
			}
			return 1
		}
		c := d.Conns[ci]
		if addr != "" {
			if addr == c.Addrs[1] {
				return 1
			}
			if addr == c.Addrs[0] {
				return 0
			}
		}
		if host == c.Lanes[1] && host != c.Lanes[0] {
			return 1
		}
		return 0
	}

	// Items, with sends matched to arrivals (the latest copy sent is the
	// one that arrives, as in the ladder of package render).
	type key struct {
		src, dst string
		seq, ack uint32
		flags    string
		n        int
	}
	pending := map[key][]int{}
	hasArrivals := false
	base := relBases(events)
	var kept []trace.Event
	var nums [][2]uint32
	for _, e := range events {
		it := &Item{I: len(d.Items), T: e.T.Seconds(), Kind: string(e.Kind), Host: e.Host, Arrive: -1, Of: -1, Conn: -1}
		var num [2]uint32
		if ci, ok := hostConn[e.Host+"/"+e.Conn]; ok && e.Conn != "" {
			it.Conn = ci
		}
		if e.Kind == trace.Segment {
			it.Conn = byTuple[tupleOf(e)]
		}
		add := func(k, v string) {
			if v != "" {
				it.Fields = append(it.Fields, Field{k, v})
			}
		}
		add("time", fmt.Sprintf("%.6f s", e.T.Seconds()))
		add("host", e.Host)
		add("connection", e.Conn)
		switch e.Kind {
		case trace.Segment:
			own := e.Src
			if e.Dir == "in" {
				own = e.Dst
			}
			it.Lane = laneOf(it.Conn, e.Host, own)
			it.Dir, it.Flags = e.Dir, e.Flags
			seq, ack := e.Seq-base[e.Src], e.Ack-base[e.Dst]
			num = [2]uint32{seq, ack}
			it.Label = segLabel(e.Flags, seq, ack, e.Win, e.Len, e.Payload)
			add("direction", map[string]string{"out": "sent", "in": "received"}[e.Dir])
			add("src", e.Src)
			add("dst", e.Dst)
			add("flags", e.Flags)
			add("seq", fmt.Sprintf("%d (relative %d)", e.Seq, seq))
			if strings.Contains(e.Flags, ".") {
				add("ack", fmt.Sprintf("%d (relative %d)", e.Ack, ack))
			}
			add("win", fmt.Sprintf("%d (as on the wire, unscaled)", e.Win))
			add("len", strconv.Itoa(e.Len))
			if e.Len > 0 {
				add("data", strconv.Quote(string(e.Payload)))
			}
			k := key{e.Src, e.Dst, e.Seq, e.Ack, e.Flags, e.Len}
			if e.Dir == "in" {
				hasArrivals = true
				add("verdict", e.Verdict)
				if e.Verdict != "" {
					add("verdict by", e.VerdictSource())
				}
				add("why refused", e.Why)
				add("evidence", e.Evidence)
				it.Refused = e.Refused()
				if q := pending[k]; len(q) > 0 {
					last := q[len(q)-1]
					it.Of = last
					d.Items[last].Arrive = it.I
					pending[k] = q[:len(q)-1]
					// An arrival carries the reason its sender gave.
					if r := d.Items[last].Reason; r != "" && e.Reason == "" {
						it.Reason, it.ReasonBy = r, d.Items[last].ReasonBy
					}
				}
			} else {
				pending[k] = append(pending[k], it.I)
			}
			if e.Reason != "" {
				it.Reason, it.ReasonBy = e.Reason, reasonBy
			}
			add("reason", it.Reason)
			if it.Reason != "" {
				add("reason from", it.ReasonBy)
			}
		case trace.Call:
			it.Lane = laneOf(it.Conn, e.Host, "")
			it.Label = callLabel(e)
			add("call", e.Call)
			add("argument", e.Arg)
			add("returned", strconv.Itoa(e.Ret))
			add("error", e.Err)
			add("data", e.Data)
		case trace.State:
			it.Lane = laneOf(it.Conn, e.Host, "")
			it.Label = "[" + e.To + "]"
			add("from", e.From)
			add("to", e.To)
		case trace.Buffer:
			it.Lane = laneOf(it.Conn, e.Host, "")
			it.Label = fmt.Sprintf("snd %d rcv %d", e.SndQueued, e.RcvQueued)
			add("send queue", fmt.Sprintf("%d bytes (written, not yet acknowledged)", e.SndQueued))
			add("receive queue", fmt.Sprintf("%d bytes (received, not yet read)", e.RcvQueued))
		case trace.Note:
			it.Lane = laneOf(it.Conn, e.Host, "")
			it.Label = e.Text
		default:
			continue
		}
		if e.Text != "" {
			add("text", e.Text)
			if e.Kind == trace.State {
				it.Label += " " + e.Text
			}
		}
		it.Fields = append([]Field{{"event", fmt.Sprintf("#%d, %s", it.I, e.Kind)}}, it.Fields...)
		d.Items = append(d.Items, it)
		kept = append(kept, e)
		nums = append(nums, num)
		if it.Conn >= 0 {
			c := d.Conns[it.Conn]
			c.Last = it.T
		}
		d.End = it.T
	}
	if hasArrivals {
		// Lost: never received by a receiver that records its arrivals
		// (a pcapng of one host's view has none of the other's).
		receives := map[string]bool{}
		for _, it := range d.Items {
			if it.Dir == "in" {
				receives[it.Host] = true
			}
		}
		for _, it := range d.Items {
			if it.Kind == "segment" && it.Dir == "out" && it.Arrive < 0 && receives[d.Conns[it.Conn].Lanes[1-it.Lane]] {
				it.Lost = true
				it.Fields = append(it.Fields, Field{"arrival", "none recorded: lost on the wire"})
			}
		}
	}
	for _, it := range d.Items {
		if it.Arrive >= 0 {
			it.Fields = append(it.Fields, Field{"arrival", fmt.Sprintf("event #%d", it.Arrive)})
		}
		if it.Of >= 0 {
			it.Fields = append(it.Fields, Field{"sent as", fmt.Sprintf("event #%d", it.Of)})
		}
	}
	traceSeries(d, kept, nums, known)
	d.Notes = append(d.Notes, "Every row is an event the lab observed: a segment a host sent (out) or received (in), a socket call, a state change, a buffer level. Reasons of FINs and RSTs are "+reasonBy+".")
	return d
}

// traceSeries fills each connection's graphs from the trace: the sender's
// sent segments and the receiver's ACKs (as it sent them), its state
// changes and buffer levels. kept[i] is item i's event, nums[i] its
// relative sequence and acknowledgement numbers.
func traceSeries(d *Data, kept []trace.Event, nums [][2]uint32, known map[string]int) {
	for _, c := range d.Conns {
		c.Dirs = [2]*Dir{{From: c.Lanes[0], To: c.Lanes[1]}, {From: c.Lanes[1], To: c.Lanes[0]}}
		for i := range c.Dirs {
			c.Dirs[i].Segs, c.Dirs[i].Acks = [][5]float64{}, [][4]float64{}
		}
		c.States, c.Buffers = []Band{}, []BufferPoint{}
	}
	scale, scaleBy := inferScales(kept)
	for _, c := range d.Conns {
		if known == nil {
			break
		}
		// Scaling is on when both SYNs carried the option (RFC 7323).
		s0, ok0 := known[c.Addrs[0]]
		s1, ok1 := known[c.Addrs[1]]
		if !ok0 || !ok1 {
			s0, s1 = 0, 0
		}
		for i, s := range [2]int{s0, s1} {
			scale[c.Addrs[i]], scaleBy[c.Addrs[i]] = s, fmt.Sprintf("%d, from the SYNs' window scale options", s)
			if !ok0 || !ok1 {
				scaleBy[c.Addrs[i]] = "none: not both SYNs carry the window scale option"
			}
		}
	}
	high := map[string]uint32{} // sender address -> highest relative end sent
	for i, it := range d.Items {
		e := kept[i]
		if it.Conn < 0 {
			continue
		}
		c := d.Conns[it.Conn]
		switch e.Kind {
		case trace.Segment:
			if e.Dir != "out" {
				continue
			}
			dir := 0
			if e.Src == c.Addrs[1] {
				dir = 1
			}
			seq, ack := nums[i][0], nums[i][1]
			if e.Len > 0 || strings.ContainsAny(e.Flags, "SFR") {
				end := seq + uint32(e.Len)
				kind := segData
				switch {
				case strings.Contains(e.Flags, "R"):
					kind = segRST
				case strings.Contains(e.Flags, "S"):
					kind, end = segSYN, end+1
				case strings.Contains(e.Flags, "F"):
					kind, end = segFIN, end+1
				}
				if h, ok := high[e.Src]; ok && kind == segData && int32(end-h) <= 0 {
					kind = segRetrans
				}
				if h, ok := high[e.Src]; !ok || int32(end-h) > 0 {
					high[e.Src] = end
				}
				c.Dirs[dir].Segs = append(c.Dirs[dir].Segs, [5]float64{it.T, float64(i), float64(int32(seq)), float64(int32(end)), float64(kind)})
			}
			if strings.Contains(e.Flags, ".") && !strings.Contains(e.Flags, "R") {
				// An ACK of the other direction, and the window it offers.
				w := uint64(e.Win)
				if !strings.Contains(e.Flags, "S") {
					w <<= uint(scale[e.Src])
				}
				od := c.Dirs[1-dir]
				od.Acks = append(od.Acks, [4]float64{it.T, float64(i), float64(int32(ack)), float64(int32(ack)) + float64(w)})
			}
		case trace.State:
			if e.From != "" && !hasBand(c.States, it.Lane) {
				c.States = append(c.States, Band{Lane: it.Lane, State: e.From, T0: c.First, T1: it.T, Item: -1})
			}
			c.States = append(c.States, Band{Lane: it.Lane, State: e.To, T0: it.T, T1: -1, Item: i})
		case trace.Buffer:
			c.Buffers = append(c.Buffers, BufferPoint{Lane: it.Lane, T: it.T, Item: i, Snd: e.SndQueued, Rcv: e.RcvQueued})
		}
	}
	for _, c := range d.Conns {
		closeBands(c.States, d.End)
		for i, a := range c.Addrs {
			dir := c.Dirs[1-i] // a's windows bound the other direction
			dir.WScale, dir.WScaleBy = scale[a], scaleBy[a]
			if dir.WScaleBy == "" {
				dir.WScaleBy = "unknown (no ACK from " + c.Lanes[i] + ")"
			}
		}
	}
}

// laneName is a lane's host and address ("client 198.18.0.1:35375"), or
// its address alone when no host of the trace owns it.
func laneName(c *Conn, i int) string {
	if c.Lanes[i] == c.Addrs[i] {
		return c.Addrs[i]
	}
	return c.Lanes[i] + " " + c.Addrs[i]
}

// hasBand reports whether bands has one of lane.
func hasBand(bands []Band, lane int) bool {
	for _, b := range bands {
		if b.Lane == lane {
			return true
		}
	}
	return false
}

// closeBands sorts bands by lane and time and ends each open one where the
// next of its lane begins, or at end.
func closeBands(bands []Band, end float64) {
	sortBands(bands)
	for i := range bands {
		if bands[i].T1 >= 0 && bands[i].Item < 0 {
			continue
		}
		bands[i].T1 = end
		if i+1 < len(bands) && bands[i+1].Lane == bands[i].Lane {
			bands[i].T1 = bands[i+1].T0
		}
	}
}

// inferScales guesses each sender's window scale from a trace, which
// carries windows as on the wire but not the SYN's options: the shift that
// brings the first window after its SYN closest to the SYN's own
// (unscaled) window, which a receiver that has read nothing yet still
// offers. It says so in by.
func inferScales(events []trace.Event) (scale map[string]int, by map[string]string) {
	scale, by = map[string]int{}, map[string]string{}
	synWin := map[string]uint16{}
	for _, e := range events {
		if e.Kind != trace.Segment || e.Dir != "out" {
			continue
		}
		if strings.Contains(e.Flags, "S") {
			synWin[e.Src] = e.Win
			continue
		}
		if _, done := by[e.Src]; done || strings.Contains(e.Flags, "R") {
			continue
		}
		w0, ok := synWin[e.Src]
		if !ok {
			by[e.Src] = "unknown (no SYN in the trace): windows drawn unscaled"
			continue
		}
		if e.Win == 0 || e.Win >= w0 {
			by[e.Src] = "none: the first window after the SYN is not smaller than the SYN's"
			continue
		}
		s := bits.Len32(uint32(w0)/uint32(e.Win)) - 1
		if lo, hi := uint32(e.Win)<<s, uint32(e.Win)<<(s+1); hi-uint32(w0) < uint32(w0)-lo {
			s++
		}
		s = min(s, 14)
		scale[e.Src] = s
		by[e.Src] = fmt.Sprintf("inferred: %d, from the SYN's window %d and the next one %d (a JSON trace has no TCP options)", s, w0, e.Win)
	}
	return scale, by
}

// relBases returns each sender address's first sequence number (its ISN
// when its SYN is in the trace): relative numbers count from it.
func relBases(events []trace.Event) map[string]uint32 {
	base := map[string]uint32{}
	syn := map[string]bool{}
	for _, e := range events {
		if e.Kind != trace.Segment || e.Refused() || syn[e.Src] {
			continue
		}
		if _, ok := base[e.Src]; !ok || strings.Contains(e.Flags, "S") {
			base[e.Src] = e.Seq
			syn[e.Src] = strings.Contains(e.Flags, "S")
		}
	}
	return base
}

// segLabel is the text on a segment's arrow.
func segLabel(flags string, seq, ack uint32, win uint16, n int, payload []byte) string {
	var b strings.Builder
	b.WriteString(flags)
	switch {
	case n > 0:
		fmt.Fprintf(&b, " seq %d:%d", seq, seq+uint32(n))
	case strings.ContainsAny(flags, "SFR"):
		fmt.Fprintf(&b, " seq %d", seq)
	}
	if strings.Contains(flags, ".") {
		fmt.Fprintf(&b, " ack %d", ack)
	}
	fmt.Fprintf(&b, " win %d", win)
	if n > 0 {
		fmt.Fprintf(&b, " len %d", n)
		if len(payload) > 0 {
			p := payload
			if len(p) > 12 {
				p = p[:12]
			}
			b.WriteString(" " + strconv.Quote(string(p)))
		}
	}
	return b.String()
}

// callLabel is the text of a call: "write(3) = 3", "read() = 0 EOF".
func callLabel(e trace.Event) string {
	s := fmt.Sprintf("%s(%s) = %d", e.Call, e.Arg, e.Ret)
	if e.Err != "" {
		s += " " + e.Err
	}
	if e.Data != "" && len(e.Data) <= 24 {
		s += " " + strconv.Quote(e.Data)
	}
	return s
}

// sortBands orders bands by lane, then time.
func sortBands(b []Band) {
	sort.SliceStable(b, func(i, j int) bool {
		if b[i].Lane != b[j].Lane {
			return b[i].Lane < b[j].Lane
		}
		return b[i].T0 < b[j].T0
	})
}
