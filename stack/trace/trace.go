// Package trace provides the one ordered record of a lab run: every segment,
// socket call, TCP state change and buffer level of both hosts, on one clock.
//
// # Events
//
// An Event is a flat value; which fields are meaningful depends on its Kind
// (see the field comments). Events are appended by a Recorder, which gives
// each one its position (Index) and its time since the start of the run (T).
// Producers run on many goroutines (the gVisor processors, link pumps, the
// scenario runner); the Recorder serialises them, so the order of the trace
// is the order in which the lab observed things.
//
// # Long runs
//
// With Summarise, routine stretches (bulk data segments and ACKs, reads and
// writes, buffer levels) are counted in Summary events instead of kept, so
// that the trace of an hour-long or many-gigabyte run stays small: see
// summary.go. Tap still sees every event, for outputs that stream to a file.
//
// # Cost
//
// Emit takes one mutex and appends to a queue; EmitAt inserts into its
// Source's queue, which costs nothing more when a source's observations
// come in time order. Events leave the queues, merged by time, once the
// delay window has passed; subscribers are called then, with the mutex
// held, so they must be quick and must not call Emit. Memory: the events
// kept (all of them without a summariser) plus those of the delay window.
package trace

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"
)

// Kind says what an Event describes.
type Kind string

// The kinds of events in a trace.
const (
	// Segment: a TCP segment seen by a host's link tap (Dir "out" or "in").
	Segment Kind = "segment"
	// Call: a socket call made by the lab on a host, with its result.
	Call Kind = "call"
	// State: a TCP state transition of one endpoint.
	State Kind = "state"
	// Buffer: the send or receive queue occupancy of an endpoint changed.
	Buffer Kind = "buffer"
	// Note: free text from the runner (e.g. "server works for 5s").
	Note Kind = "note"
	// Summary: many observed events of one kind on one connection,
	// counted instead of kept (see Recorder.Summarise and Event.Sum).
	Summary Kind = "summary"
)

// Event is one thing that happened in the lab.
type Event struct {
	// Index is the event's position in the trace, from 0.
	Index int `json:"-"`
	// T is the time since the start of the run, on the lab's clock.
	T time.Duration `json:"-"`
	// Host is "client" or "server".
	Host string `json:"-"`
	// Kind selects the meaningful fields below.
	Kind Kind `json:"-"`
	// Conn names the connection the event belongs to ("c1", "c2", or
	// "l1" for a listener), empty when unknown.
	Conn string `json:"-"`

	// Segment fields.
	Dir     string // "out" (sent by Host) or "in" (received by Host)
	Src     string // source address:port
	Dst     string // destination address:port
	Flags   string // tcpdump notation: S, S., ., P., F., FP., R, R.
	Seq     uint32 // absolute sequence number
	Ack     uint32 // absolute acknowledgement number (valid with an ACK flag)
	Win     uint16 // advertised window (unscaled, as on the wire)
	Len     int    // payload length
	Payload []byte // the first bytes of the payload (at most PayloadPreview)
	Reason  string // why this segment was sent: a FIN, a RST, or an answer to a refused arrival (out segments only)
	Packet  []byte // the whole IPv4 packet, with stack.Config.KeepPackets

	// Arrival fields (Dir "in"): the receiving stack's verdict on the
	// segment. An empty Verdict means nobody judged it (a trace from an
	// older tcplab, or a peer without a verdict source).
	Verdict string // Accepted or Refused
	Why     string // for Refused: one of the Why* constants
	// Observed says the verdict comes from the stack itself (its
	// counters or its state); false means tcplab inferred it by applying
	// the stack's rules (RFC 793/5961) to what it had observed.
	Observed bool
	// Evidence says what shows the verdict, e.g. "TCP ChecksumErrors +1"
	// or "seq 1000 not in the window [5, 29189]".
	Evidence string

	// Call fields.
	Call string // "connect", "write", "read", "shutdown(SHUT_WR)", "close", ...
	Arg  string // the call's argument, as text
	Ret  int    // the call's return value (bytes for read/write)
	Err  string // "", "EOF", "ECONNRESET", "EPIPE", ...
	Data string // data written or read, for short payloads

	// State fields, with the names of RFC 793 (SYN-SENT, FIN-WAIT-1, ...).
	From, To string

	// Buffer fields, in bytes: written but not yet acknowledged, and
	// received but not yet read.
	SndQueued, RcvQueued int

	// Text is free text for notes and an explanation for any event.
	Text string

	// Sum holds the counts of a Summary event (nil for any other kind).
	// A summary event's T is the time of the last event it counts; it
	// also has the Host, Conn, Dir, Src and Dst of its segments, or the
	// Call of its calls.
	Sum *Sum

	// id identifies the event inside its Recorder while it may still move
	// (EmitAt can insert before it); 0 outside a Recorder.
	id uint64
}

// Verdicts of an arrival.
const (
	// Accepted: the stack took the segment into its connection (or
	// listener): its sequence numbers, data, flags count.
	Accepted = "accepted"
	// Refused: the stack dropped the segment, perhaps answering it (a
	// challenge ACK, an ACK, a RST); it changed nothing in the connection.
	Refused = "refused"
)

// Why a segment was refused.
const (
	WhyBadChecksum  = "bad checksum"
	WhyMalformed    = "malformed header"
	WhyOutOfWindow  = "outside the window"
	WhyChallenge    = "RFC 5961 challenge" // an in-window RST or a SYN that does not match RCV.NXT
	WhyTimeWaitRST  = "RST ignored in TIME-WAIT"
	WhyNoConnection = "no connection" // no endpoint owns the 4-tuple: answered by RST (unless it is one)
	WhyDuplicate    = "duplicate"     // data entirely before RCV.NXT: received already
	WhyOldSegment   = "old segment"   // no data, sequence number before RCV.NXT
	WhyNoACK        = "no ACK flag"   // a synchronized connection drops segments without ACK
	WhyUnsentACK    = "acknowledges unsent data"
	WhyBadACK       = "does not acknowledge our SYN" // in SYN-SENT or SYN-RECEIVED
	WhyNoSYN        = "no SYN in SYN-SENT"
)

// Refused reports whether e is an arrival its stack refused. A refused
// arrival changed nothing in its connection: renderers and ledgers that
// learn from segments (initial sequence numbers, bytes received) skip it.
func (e Event) Refused() bool { return e.Kind == Segment && e.Verdict == Refused }

// VerdictSource returns "observed" or "inferred" for a judged arrival, ""
// otherwise.
func (e Event) VerdictSource() string {
	switch {
	case e.Verdict == "":
		return ""
	case e.Observed:
		return "observed"
	}
	return "inferred"
}

// PayloadPreview is how many payload bytes a segment event keeps.
const PayloadPreview = 64

// Preview returns data as text for a call event's Data: the bytes when
// they are short (at most PayloadPreview) and printable, otherwise "".
func Preview(b []byte) string {
	if len(b) == 0 || len(b) > PayloadPreview || !utf8.Valid(b) {
		return ""
	}
	for _, r := range string(b) {
		if r < 0x20 && r != '\n' && r != '\t' {
			return ""
		}
	}
	return string(b)
}

// MarshalJSON writes the event as one flat JSON object carrying only the
// fields of its kind, with times in seconds.
func (e Event) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"t":    e.T.Seconds(),
		"host": e.Host,
		"kind": e.Kind,
	}
	if e.Conn != "" {
		m["conn"] = e.Conn
	}
	switch e.Kind {
	case Segment:
		m["dir"], m["src"], m["dst"], m["flags"] = e.Dir, e.Src, e.Dst, e.Flags
		m["seq"], m["ack"], m["win"], m["len"] = e.Seq, e.Ack, e.Win, e.Len
		if e.Reason != "" {
			m["reason"] = e.Reason
		}
		if e.Verdict != "" {
			m["verdict"], m["verdict_by"] = e.Verdict, e.VerdictSource()
			if e.Why != "" {
				m["why"] = e.Why
			}
			if e.Evidence != "" {
				m["evidence"] = e.Evidence
			}
		}
		if e.Len > 0 {
			m["data"] = string(e.Payload)
		}
	case Call:
		m["call"], m["ret"], m["err"] = e.Call, e.Ret, e.Err
		if e.Arg != "" {
			m["arg"] = e.Arg
		}
		if e.Data != "" {
			m["data"] = e.Data
		}
	case State:
		m["from"], m["to"] = e.From, e.To
	case Buffer:
		m["snd_queued"], m["rcv_queued"] = e.SndQueued, e.RcvQueued
	case Summary:
		if e.Sum != nil {
			m["summary"] = e.Sum.json(e)
		}
		if e.Dir != "" {
			m["dir"], m["src"], m["dst"] = e.Dir, e.Src, e.Dst
		}
		if e.Call != "" {
			m["call"] = e.Call
		}
	}
	if e.Text != "" {
		m["text"] = e.Text
	}
	return json.Marshal(m)
}

// Clock tells the time of the lab. Over TUN it is the wall clock; on the
// in-memory wire it can be a manual clock that only moves when told to.
type Clock interface {
	Now() time.Time
}

// WallClock is the Clock of the real world.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// Recorder collects the events of one run. The zero value is not usable;
// create one with NewRecorder. It is safe for concurrent use.
//
// Events wait in two kinds of queues until they are handed out: the
// events of Emit, Begin and Open in the order they were recorded, and one
// queue per Source (EmitAt's events), each kept sorted by time. Once the
// delay window (SetDelay) has passed over them they are merged by time,
// passed through the summariser (Summarise) when there is one, handed to
// the subscribers and kept: the trace in memory is what was handed out.
type Recorder struct {
	clock Clock
	start time.Time

	mu      sync.Mutex
	chunks  [][]Event // the trace handed out, in chunks of chunkSize: appends never copy it
	kept    int       // events handed out and kept (Index of the next one)
	dropped int       // of those, how many were let go (SummaryConfig.MaxKept)
	now     queue     // Emit's, Begin's and Open's events, in order
	sources []*queue  // EmitAt's events, each sorted by T; sources[0] is the Recorder's own
	lastID  uint64    // the id of the last event stored
	open    map[uint64]bool
	subs    []func(Event)
	taps    []func(Event)
	mirrors []func(Event) (before, after []Event)
	sum     *summariser // nil: every event is kept

	recorded int // events recorded (Len)
	handed   int // events merged out of the queues
	shifted  int // events moved by an out-of-order EmitAt

	// delay holds events back from subscribers until they are this old,
	// so that EmitAt can still put a late observation in its place.
	delay time.Duration
	timer *time.Timer // flushes held-back events when nothing else does
}

// queue is a FIFO of events that can take an event out of order (insert).
type queue struct {
	ev   []Event
	head int
}

func (q *queue) len() int { return len(q.ev) - q.head }

func (q *queue) peek() *Event { return &q.ev[q.head] }

func (q *queue) push(e Event) { q.ev = append(q.ev, e) }

// insert puts e after every queued event not later than it; it returns
// how many events it moved (0 when e is the latest, the usual case).
func (q *queue) insert(e Event) int {
	q.ev = append(q.ev, e)
	i := len(q.ev) - 1
	for i > q.head && q.ev[i-1].T > e.T {
		i--
	}
	moved := len(q.ev) - 1 - i
	if moved > 0 {
		copy(q.ev[i+1:], q.ev[i:len(q.ev)-1])
		q.ev[i] = e
	}
	return moved
}

// pop removes the first event; the queue's array is reused once it has
// been emptied, or compacted once half of it is behind the head.
func (q *queue) pop() Event {
	e := q.ev[q.head]
	q.ev[q.head] = Event{} // let its payload and packet go
	q.head++
	switch {
	case q.head == len(q.ev):
		q.ev, q.head = q.ev[:0], 0
	case q.head >= 1024 && q.head*2 >= len(q.ev):
		n := copy(q.ev, q.ev[q.head:])
		clear(q.ev[n:])
		q.ev, q.head = q.ev[:n], 0
	}
	return e
}

// NewRecorder returns a Recorder whose times count from now on clock. A nil
// clock means the wall clock.
func NewRecorder(clock Clock) *Recorder {
	if clock == nil {
		clock = WallClock{}
	}
	return &Recorder{clock: clock, start: clock.Now(), open: map[uint64]bool{}, sources: []*queue{{}}}
}

// Emit stamps e with its time and records it. It returns the stamped
// event; its Index is its place among the events recorded so far, which
// late observations (EmitAt) and summaries (Summarise) may still change.
func (r *Recorder) Emit(e Event) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e = r.mirrorLocked(e, false)
	r.flushLocked()
	return e
}

// mirrorLocked stores e with what the mirrors put around it; open marks e
// as an open event (see Open).
func (r *Recorder) mirrorLocked(e Event, open bool) Event {
	var after []Event
	for _, m := range r.mirrors {
		before, a := m(e)
		for _, b := range before {
			r.appendLocked(b)
		}
		after = append(after, a...)
	}
	e = r.appendLocked(e)
	if open {
		r.open[e.id] = true
	}
	for _, a := range after {
		r.appendLocked(a)
	}
	return e
}

// Mirror registers f, which Emit calls with every event, with the lock held,
// before storing it: the events f returns in before are stored just ahead of
// the event and those in after just behind it, each stamped as if emitted
// then. It lets an observer that sees no packets itself (the kernel peer of
// package tun/kernelpeer) record another host's segments as its own, in
// their place. f must be quick and must not call the Recorder; call events
// opened with Begin are not passed to it. Cost: one call per Emit.
func (r *Recorder) Mirror(f func(e Event) (before, after []Event)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mirrors = append(r.mirrors, f)
}

// chunkSize is how many events one chunk of the trace holds. Storing the
// trace in fixed chunks keeps Emit from copying the whole trace (under the
// lock) every time a single slice would grow: with tracing on, that copy
// was a third of the CPU of a bulk transfer.
const chunkSize = 4096

func (r *Recorder) appendLocked(e Event) Event {
	e.T = r.clock.Now().Sub(r.start)
	r.stampLocked(&e)
	r.now.push(e)
	return e
}

// stampLocked gives e its id and provisional Index and counts it.
func (r *Recorder) stampLocked(e *Event) {
	e.Index = r.kept + r.now.len()
	for _, q := range r.sources {
		e.Index += q.len()
	}
	r.lastID++
	e.id = r.lastID
	r.recorded++
}

// keepLocked appends e, handed out, to the trace and to the subscribers.
func (r *Recorder) keepLocked(e Event) {
	e.Index = r.kept
	if r.kept%chunkSize == 0 {
		r.chunks = append(r.chunks, make([]Event, 0, chunkSize))
	}
	last := len(r.chunks) - 1
	r.chunks[last] = append(r.chunks[last], e)
	r.kept++
	for _, f := range r.subs {
		f(e)
	}
	if r.sum != nil && r.sum.cfg.MaxKept > 0 && r.kept-r.dropped > r.sum.cfg.MaxKept+chunkSize {
		// A run with no end: the oldest chunk, handed out long ago,
		// goes.
		r.dropped += len(r.chunks[0])
		r.chunks[0] = nil
		r.chunks = r.chunks[1:]
	}
}

// EmitAt stores e as having happened at the wall-clock time at, which may
// lie in the past: an observer that learns of events after a delay (the
// kernel's, through a BPF ring buffer) puts them in their true place among
// the events recorded. The place is never before an event that subscribers
// have already seen: a later observation than SetDelay allows for is
// handed out at the earliest place still open, with its true T. Mirrors
// are not called. The returned event has its T; its Index is provisional
// (its place is settled when the delay has passed). Cost: Emit's, plus
// moving the events of the Recorder's own source that are later than at
// (none when the calls come in time order); see NewSource.
func (r *Recorder) EmitAt(e Event, at time.Time) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.emitAtLocked(r.sources[0], e, at)
}

func (r *Recorder) emitAtLocked(q *queue, e Event, at time.Time) Event {
	e.T = at.Sub(r.start)
	r.stampLocked(&e)
	r.shifted += q.insert(e)
	r.flushLocked()
	return e
}

// Source is a producer of late observations (EmitAt) whose events come
// in time order, or nearly: each Source has a queue of its own, sorted by
// time, and the queues are merged when the delay window passes over them.
// An observer that reports two streams with different lags (segments
// whose verdict it awaits, and the others) keeps both cheap with one
// Source each.
type Source struct {
	r *Recorder
	q *queue
}

// NewSource returns a new Source of r. Cost: one more queue to merge.
func (r *Recorder) NewSource() *Source {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := &queue{}
	r.sources = append(r.sources, q)
	return &Source{r: r, q: q}
}

// EmitAt is Recorder.EmitAt on the Source's own queue.
func (s *Source) EmitAt(e Event, at time.Time) Event {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.r.emitAtLocked(s.q, e, at)
}

// SetDelay makes subscribers see each event only once it is d old on the
// recorder's clock (0, the default: at once), leaving EmitAt that long to
// insert late observations in their place. Events still held back are
// handed out by a timer, or at once by SetDelay(0) and Flush. Cost: one
// timer while events wait.
func (r *Recorder) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = max(d, 0)
	r.flushLocked()
}

// Flush hands subscribers every event recorded so far that is not behind
// an open call, whatever its age, closes the summaries being made (see
// Summarise), and turns the delay off: call it when no late observation
// can come any more (the observer has stopped).
func (r *Recorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = 0
	r.flushLocked()
	if r.sum != nil {
		r.sum.closeAll(r.keepLocked)
	}
}

// flushLocked merges the queued events by time and hands out every one up
// to the first open call that is older than the delay, and arms the timer
// for the rest.
func (r *Recorder) flushLocked() {
	horizon := time.Duration(1<<63 - 1)
	if r.delay > 0 {
		horizon = r.clock.Now().Sub(r.start) - r.delay
	}
	for {
		// The earliest event: Emit's first unless a source has an
		// earlier one (on a tie, Emit's goes first).
		var from *queue
		if r.now.len() > 0 {
			from = &r.now
		}
		for _, q := range r.sources {
			if q.len() > 0 && (from == nil || q.peek().T < from.peek().T) {
				from = q
			}
		}
		if from == nil {
			return
		}
		e := from.peek()
		if from == &r.now && r.open[e.id] {
			return
		}
		if e.T > horizon {
			r.armLocked(e.T - horizon)
			return
		}
		r.handOutLocked(from.pop())
	}
}

// handOutLocked gives an event leaving the queues to the taps, then to the
// summariser or straight to the trace.
func (r *Recorder) handOutLocked(e Event) {
	r.handed++
	for _, f := range r.taps {
		f(e)
	}
	if r.sum == nil {
		r.keepLocked(e)
		return
	}
	r.sum.add(e, r.keepLocked)
	if r.sum.idle == nil && r.sum.held() > 0 {
		r.armIdleLocked()
	}
}

// armLocked makes sure flushLocked runs again within d.
func (r *Recorder) armLocked(d time.Duration) {
	if r.timer != nil {
		r.timer.Reset(d)
		return
	}
	r.timer = time.AfterFunc(d, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.flushLocked()
	})
}

// Pending is a call event that took its place in the trace when the call
// started and gets its result when the call returns, so that the segments a
// call sends appear after it. Subscribers see it, and everything after it,
// only once it has ended.
type Pending struct {
	r  *Recorder
	id uint64
}

// Open appends e as an open event, like Begin, but first passes it through
// the mirrors, as Emit does: the events they return are stored around it.
// The host taps use it for an arrival, which takes its place before the
// stack handles the segment (so that the stack's answer comes after it) and
// gets its verdict when End fills it in. The caller must End it; until then
// subscribers see nothing from it on.
func (r *Recorder) Open(e Event) *Pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	e = r.mirrorLocked(e, true)
	return &Pending{r: r, id: e.id}
}

// Begin appends e as an open call event. The caller must End it.
func (r *Recorder) Begin(e Event) *Pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	e = r.appendLocked(e)
	r.open[e.id] = true
	return &Pending{r: r, id: e.id}
}

// End completes the call event: fill sets its result fields. Index and T
// keep the values of Begin.
func (p *Pending) End(fill func(e *Event)) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.open[p.id] {
		return
	}
	// An open call is never handed out, so it is still queued.
	q := &r.now
	i := len(q.ev) - 1
	for i >= q.head && q.ev[i].id != p.id {
		i--
	}
	e := &q.ev[i]
	idx, t, id := e.Index, e.T, e.id
	fill(e)
	e.Index, e.T, e.id = idx, t, id
	delete(r.open, p.id)
	r.flushLocked()
}

// Subscribe calls f with every event completed from now on, in trace order,
// while the recorder's lock is held: f must not block or call Emit. It is how
// the live view streams a run. With a summariser (Summarise), f sees the
// summarised trace: what the Recorder keeps.
func (r *Recorder) Subscribe(f func(Event)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs = append(r.subs, f)
}

// Tap calls f with every event as it leaves the delay window, in trace
// order, before any summary: every segment in full, with its packet. Like
// Subscribe's, f runs with the lock held. It is for outputs that stream
// every event to a file.
func (r *Recorder) Tap(f func(Event)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.taps = append(r.taps, f)
}

// Events returns a copy of the trace so far: the events handed out, then
// the summaries still being made as they would close now, then the events
// still waiting in the delay window, merged by time as they will be (these
// last ones unsummarised). Index is the position in the returned slice.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Event, 0, r.kept-r.dropped+r.waitingLocked()+9)
	if r.dropped > 0 {
		out = append(out, Event{Kind: Note, T: r.chunks[0][0].T, Text: fmt.Sprintf(
			"the first %d events of this trace were handed to the live output but are no longer held: a long run keeps the last %d or so in memory (trace.SummaryConfig.MaxKept)", r.dropped, r.sum.cfg.MaxKept)})
	}
	for _, c := range r.chunks {
		out = append(out, c...)
	}
	if r.sum != nil {
		out = r.sum.peek(out)
	}
	// Merge the waiting events without taking them out.
	heads := make([]int, len(r.sources))
	for i, q := range r.sources {
		heads[i] = q.head
	}
	nh := r.now.head
	for {
		var best *Event
		src := -1
		if nh < len(r.now.ev) {
			best = &r.now.ev[nh]
		}
		for i, q := range r.sources {
			if heads[i] < len(q.ev) && (best == nil || q.ev[heads[i]].T < best.T) {
				best, src = &q.ev[heads[i]], i
			}
		}
		if best == nil {
			break
		}
		out = append(out, *best)
		if src < 0 {
			nh++
		} else {
			heads[src]++
		}
	}
	for i := range out {
		out[i].Index = i
	}
	return out
}

func (r *Recorder) waitingLocked() int {
	n := r.now.len()
	for _, q := range r.sources {
		n += q.len()
	}
	return n
}

// Len returns the number of events recorded so far, each one counted,
// whether it is still waiting, kept, or counted in a summary: it moves
// whenever anything is observed. Events() may be shorter (see Summarise).
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recorded
}

// Stats are a Recorder's counters (Recorder.Stats).
type Stats struct {
	// Recorded is every event recorded (Len).
	Recorded int
	// Waiting is how many wait in the delay window, or behind an open
	// call.
	Waiting int
	// Kept is how many events the trace handed out and kept, and
	// Dropped how many of those it no longer holds (SummaryConfig.MaxKept):
	// Events returns Kept-Dropped of them, summaries being made aside.
	Kept, Dropped int
	// Summarised is how many events the summaries count instead of
	// keeping them, and Summaries how many summary events were kept.
	Summarised, Summaries int
	// Held is how many events the summariser holds while its summaries
	// are open (one per summary, the last of its run).
	Held int
	// Shifted is how many queued events out-of-order EmitAt calls moved.
	Shifted int
}

// Stats returns the Recorder's counters. Cost: one lock.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Stats{Recorded: r.recorded, Waiting: r.waitingLocked(), Kept: r.kept, Dropped: r.dropped, Shifted: r.shifted}
	if r.sum != nil {
		st.Summarised, st.Summaries, st.Held = r.sum.absorbed, r.sum.made, r.sum.held()
	}
	return st
}
