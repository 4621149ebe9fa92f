package trace

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// A long run (an hour, gigabytes of bulk data) must not grow the trace
// without bound. With a summariser, the Recorder keeps every event that
// says something new in full (handshakes, FINs, RSTs, state changes,
// refused arrivals, retransmissions, zero windows, notes, calls that
// failed, anything with a reason) and counts the rest in summary events:
// after SummaryConfig.After events in a row of one kind on one connection
// (data segments and ACKs one way, successful reads or writes of one
// call, buffer levels), the following ones are counted, not kept, until
// something notable happens or the summary has covered its period. The
// last event counted is kept in full after its summary, so the trace
// shows the first and the last of every stretch as they were. A state
// change of the connection starts the count of events kept in full again.

// SummaryConfig tunes Recorder.Summarise. The zero value is usable: the
// defaults are in the field comments.
type SummaryConfig struct {
	// After is how many events of one kind in a row on one connection are
	// kept in full before the next ones are summarised (default 16).
	After int
	// Period is the longest stretch one summary covers (default 1s). In
	// a long run it grows to a 32nd of the time since the start, so that
	// each kind of event of a connection makes at most about 32 more
	// summaries each time the run doubles in length.
	Period time.Duration
	// MaxKept bounds the events the trace holds in memory (default
	// 100,000, about 50 MB; negative: no bound). Past it, the oldest
	// events, long handed to the subscribers, are let go, a chunk at a
	// time, and Events starts with a note saying how many: expectations
	// checked at the end of such a run see only the rest. Summaries keep
	// a bulk transfer far below it (about 1,500 events per GB); a run of
	// many connections, each with its handshake and teardown, reaches it.
	MaxKept int
}

// Sum is what a Summary event counts: events the stacks were observed to
// do (each of them was recorded, then counted here instead of kept).
type Sum struct {
	// Of is what was counted: "segments", "calls" or "buffer".
	Of string
	// Count is how many events were counted.
	Count int
	// Bytes is the payload of the segments (Len), or the bytes the calls
	// returned (Ret).
	Bytes int64
	// Since is the time of the first event counted; the event's T is the
	// time of the last.
	Since time.Duration
	// Flags counts the segments by their flags (".", "P.").
	Flags map[string]int
	// Seq is the first segment's sequence number and SeqEnd the end
	// (Seq+Len) of the last, absolute; Ack is the last one's ACK.
	Seq, SeqEnd, Ack uint32
	// WinMin and WinMax are the smallest and largest windows advertised.
	WinMin, WinMax uint16
	// Inferred is how many of the counted arrivals had their Accepted
	// verdict inferred rather than observed (Event.Observed).
	Inferred int
	// SndMax and RcvMax are the largest queue levels of buffer events.
	SndMax, RcvMax int
}

func (s *Sum) json(e Event) map[string]any {
	m := map[string]any{"of": s.Of, "count": s.Count, "since": s.Since.Seconds(), "until": e.T.Seconds()}
	switch s.Of {
	case "segments":
		m["bytes"], m["flags"], m["seq"], m["seq_end"], m["ack"] = s.Bytes, s.Flags, s.Seq, s.SeqEnd, s.Ack
		m["win_min"], m["win_max"] = s.WinMin, s.WinMax
		if e.Dir == "in" {
			m["verdict"], m["inferred"] = Accepted, s.Inferred
		}
	case "calls":
		m["bytes"] = s.Bytes
	case "buffer":
		m["snd_max"], m["rcv_max"] = s.SndMax, s.RcvMax
	}
	return m
}

// FlagCounts returns the segments' flags with their counts, in a stable
// order: ". 1200, P. 34".
func (s *Sum) FlagCounts() string {
	keys := make([]string, 0, len(s.Flags))
	for k := range s.Flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, s.Flags[k])
	}
	return b.String()
}

// Summarise makes r summarise long stretches of routine events (see the
// package's comment on long runs) from now on; events already handed out
// are unchanged. Subscribers and Events see the summarised trace; Tap's
// functions still see every event. Cost: a map lookup per event, and
// memory for one held event and one summary per stretch being summarised.
func (r *Recorder) Summarise(cfg SummaryConfig) {
	if cfg.After <= 0 {
		cfg.After = 16
	}
	if cfg.Period <= 0 {
		cfg.Period = time.Second
	}
	switch {
	case cfg.MaxKept == 0:
		cfg.MaxKept = 100_000
	case cfg.MaxKept < 0:
		cfg.MaxKept = 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sum == nil {
		r.sum = &summariser{cfg: cfg, runs: map[runKey]*run{}, flows: map[runKey]*flow{}}
	}
}

// runKey names one kind of event on one connection of one host.
type runKey struct{ host, conn, class string }

// run is a stretch of events of one kind.
type run struct {
	streak int    // events of the kind in a row on the connection
	sum    *Event // the summary being made, nil when none
	last   *Event // the latest event of the stretch: kept in full when it closes
}

// flow is what the summariser knows of a connection's segments one way.
type flow struct {
	next     uint32 // the sequence number after the highest one seen
	ack      uint32
	win      uint16
	have     bool
	haveData bool
}

type summariser struct {
	idle     *time.Timer // closes stretches that went quiet (closeIdleLocked)
	cfg      SummaryConfig
	runs     map[runKey]*run
	flows    map[runKey]*flow // class is the direction
	absorbed int              // events counted in summaries
	made     int              // summaries kept
}

// routineCalls are the calls whose successful repetition is summarised.
var routineCalls = map[string]bool{"read": true, "write": true, "recv": true, "send": true, "sendto": true, "recvfrom": true, "sendmsg": true, "recvmsg": true, "readv": true, "writev": true}

// class returns the kind of routine event e is ("out", "in", "call:NAME",
// "buffer"), or "" when e is notable. It follows each flow's sequence
// numbers, windows and ACKs as a side effect.
func (s *summariser) class(e Event) string {
	if e.Conn == "" {
		return ""
	}
	switch e.Kind {
	case Segment:
		k := runKey{e.Host, e.Conn, e.Dir}
		f := s.flows[k]
		if f == nil {
			f = &flow{}
			s.flows[k] = f
		}
		routine := (e.Flags == "." || e.Flags == "P.") && e.Reason == "" && e.Verdict != Refused && e.Win != 0 && f.have
		switch {
		case !routine:
		case e.Len > 0:
			// A retransmission, or data out of order: notable.
			routine = e.Seq == f.next
		default:
			// A duplicate ACK, or the window opening again: notable.
			routine = !(e.Ack == f.ack && e.Win == f.win) && f.win != 0
		}
		end := e.Seq + uint32(e.Len)
		if strings.ContainsAny(e.Flags, "SF") {
			end++
		}
		if !e.Refused() {
			if !f.have || int32(end-f.next) > 0 {
				f.next = end
			}
			f.ack, f.win, f.have = e.Ack, e.Win, true
		}
		if routine {
			return e.Dir
		}
	case Call:
		if routineCalls[e.Call] && e.Err == "" && e.Ret > 0 {
			return "call:" + e.Call
		}
	case Buffer:
		return "buffer"
	}
	return ""
}

// add takes one event leaving the delay window: keep is called with
// every event and summary the trace keeps, in order.
func (s *summariser) add(e Event, keep func(Event)) {
	cls := s.class(e)
	if cls == "" {
		s.closeAll(keep)
		if e.Conn != "" && e.Kind == State {
			// A new phase of the connection: its next events are kept
			// in full again (After of each kind). Other notable events
			// (a retransmission, a duplicate ACK) only close the
			// summaries: in a long lossy run they are many, and each
			// costs a summary and an event per kind instead of After.
			gone := e.To == "CLOSED" || e.To == "TIME-WAIT"
			for k, rn := range s.runs {
				if k.host == e.Host && k.conn == e.Conn {
					rn.streak = 0
					if gone {
						delete(s.runs, k)
					}
				}
			}
			if gone {
				for k := range s.flows {
					if k.host == e.Host && k.conn == e.Conn {
						delete(s.flows, k)
					}
				}
			}
		}
		keep(e)
		return
	}
	k := runKey{e.Host, e.Conn, cls}
	rn := s.runs[k]
	if rn == nil {
		rn = &run{}
		s.runs[k] = rn
	}
	rn.streak++
	if rn.streak <= s.cfg.After {
		keep(e)
		return
	}
	if rn.sum != nil && e.T-rn.sum.Sum.Since >= max(s.cfg.Period, e.T/32) {
		s.close(rn, keep)
	}
	if rn.last != nil {
		s.count(rn, *rn.last)
		*rn.last = e
		return
	}
	rn.last = &e
}

// armIdleLocked makes sure that a stretch that goes quiet (a connection
// that stops sending, a program that pauses) is closed and handed out
// within a period, not at the next notable event: the live output shows
// it then. Cost: one timer per period while stretches are open.
func (r *Recorder) armIdleLocked() {
	s := r.sum
	if s.idle != nil {
		return
	}
	s.idle = time.AfterFunc(s.cfg.Period, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		s.idle = nil
		r.closeIdleLocked()
	})
}

// closeIdleLocked closes the stretches whose last event is more than a
// period older than the delay window's horizon, and re-arms the timer
// while stretches stay open.
func (r *Recorder) closeIdleLocked() {
	s := r.sum
	horizon := r.clock.Now().Sub(r.start) - r.delay - s.cfg.Period
	var quiet []*run
	open := false
	for _, rn := range s.open() {
		if rn.last.T < horizon {
			quiet = append(quiet, rn)
		} else {
			open = true
		}
	}
	var out []Event
	for _, rn := range quiet {
		s.close(rn, func(e Event) { out = append(out, e) })
	}
	slices.SortStableFunc(out, func(a, b Event) int { return cmp.Compare(a.T, b.T) })
	for _, e := range out {
		r.keepLocked(e)
	}
	if open {
		r.armIdleLocked()
	}
}

// count adds e to rn's summary, starting one if need be.
func (s *summariser) count(rn *run, e Event) {
	s.absorbed++
	if rn.sum == nil {
		se := Event{Kind: Summary, Host: e.Host, Conn: e.Conn, Sum: &Sum{Since: e.T}}
		switch e.Kind {
		case Segment:
			se.Dir, se.Src, se.Dst = e.Dir, e.Src, e.Dst
			se.Sum.Of, se.Sum.Flags = "segments", map[string]int{}
			se.Sum.Seq, se.Sum.WinMin, se.Sum.WinMax = e.Seq, e.Win, e.Win
		case Call:
			se.Call, se.Sum.Of = e.Call, "calls"
		case Buffer:
			se.Sum.Of = "buffer"
		}
		rn.sum = &se
	}
	se, sum := rn.sum, rn.sum.Sum
	se.T = e.T
	sum.Count++
	switch e.Kind {
	case Segment:
		sum.Bytes += int64(e.Len)
		sum.Flags[e.Flags]++
		sum.SeqEnd, sum.Ack = e.Seq+uint32(e.Len), e.Ack
		sum.WinMin, sum.WinMax = min(sum.WinMin, e.Win), max(sum.WinMax, e.Win)
		if e.Dir == "in" && !e.Observed {
			sum.Inferred++
		}
	case Call:
		sum.Bytes += int64(e.Ret)
	case Buffer:
		sum.SndMax, sum.RcvMax = max(sum.SndMax, e.SndQueued), max(sum.RcvMax, e.RcvQueued)
	}
}

// close keeps rn's summary, then its last event in full.
func (s *summariser) close(rn *run, keep func(Event)) {
	if rn.sum != nil {
		rn.sum.Text = describe(*rn.sum)
		keep(*rn.sum)
		s.made++
		rn.sum = nil
	}
	if rn.last != nil {
		keep(*rn.last)
		rn.last = nil
	}
}

// open returns the runs with something to close, oldest first.
func (s *summariser) open() []*run {
	var rs []*run
	for _, rn := range s.runs {
		if rn.sum != nil || rn.last != nil {
			rs = append(rs, rn)
		}
	}
	first := func(rn *run) (time.Duration, uint64) {
		if rn.sum != nil {
			return rn.sum.Sum.Since, rn.last.id
		}
		return rn.last.T, rn.last.id
	}
	slices.SortFunc(rs, func(a, b *run) int {
		ta, ia := first(a)
		tb, ib := first(b)
		switch {
		case ta != tb:
			return int(ta - tb)
		case ia < ib:
			return -1
		case ia > ib:
			return 1
		}
		return 0
	})
	return rs
}

// closeAll closes every open summary: the summaries and the last events
// of their stretches are kept in the order of their times.
func (s *summariser) closeAll(keep func(Event)) {
	for _, e := range s.closing() {
		if e.Kind == Summary {
			s.made++
		}
		keep(e)
	}
	for _, rn := range s.runs {
		rn.sum, rn.last = nil, nil
	}
}

// closing returns what closeAll keeps, in order, changing nothing.
func (s *summariser) closing() []Event {
	var out []Event
	for _, rn := range s.open() {
		if rn.sum != nil {
			e := *rn.sum
			sum := *e.Sum
			e.Sum = &sum
			e.Text = describe(e)
			out = append(out, e)
		}
		if rn.last != nil {
			out = append(out, *rn.last)
		}
	}
	// A summary's T is its last counted event's, before its stretch's
	// last event: sorting keeps each summary before that event.
	slices.SortStableFunc(out, func(a, b Event) int { return cmp.Compare(a.T, b.T) })
	return out
}

// peek appends to out what closeAll would keep now, changing nothing.
func (s *summariser) peek(out []Event) []Event { return append(out, s.closing()...) }

// held is how many events the open summaries hold.
func (s *summariser) held() int {
	n := 0
	for _, rn := range s.runs {
		if rn.sum != nil {
			n++
		}
		if rn.last != nil {
			n++
		}
	}
	return n
}

// describe says in words what a summary counts.
func describe(e Event) string {
	s := e.Sum
	over := fmt.Sprintf("from %.6fs to %.6fs", s.Since.Seconds(), e.T.Seconds())
	switch s.Of {
	case "segments":
		verb := "sent"
		if e.Dir == "in" {
			verb = "received and accepted"
		}
		return fmt.Sprintf("summary: %d segments %s, %d bytes of data, %s (flags: %s; window %d..%d), each observed, counted here instead of shown",
			s.Count, verb, s.Bytes, over, s.FlagCounts(), s.WinMin, s.WinMax)
	case "calls":
		return fmt.Sprintf("summary: %d %s() calls that returned %d bytes in all, %s, each observed, counted here instead of shown", s.Count, e.Call, s.Bytes, over)
	}
	return fmt.Sprintf("summary: %d buffer levels %s (at most %d B queued to send, %d B to read), counted here instead of shown", s.Count, over, s.SndMax, s.RcvMax)
}
