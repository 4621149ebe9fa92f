package trace

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// safeClock is a clock that moves only when told, safe to read from the
// Recorder's timer.
type safeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *safeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *safeClock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// bulk feeds r a synthetic bulk transfer: the client sends n data segments
// of mss bytes (Emit), the server's arrivals, ACKs, reads and buffer
// levels come late and a little out of order (EmitAt, as the kernel
// observer's), and clk moves 10 µs per segment. It returns the data bytes
// sent and the number of events recorded.
func bulk(r *Recorder, late *Source, clk *safeClock, n, mss, firstSeq int) (bytes int64, events int) {
	return bulkEvery(r, late, clk, 10*time.Microsecond, n, mss, firstSeq)
}

// bulkEvery is bulk with one segment every step.
func bulkEvery(r *Recorder, late *Source, clk *safeClock, step time.Duration, n, mss, firstSeq int) (bytes int64, events int) {
	seq := uint32(firstSeq)
	for i := 0; i < n; i++ {
		now := clk.add(step)
		flags := "."
		if i%8 == 7 {
			flags = "P."
		}
		r.Emit(Event{Host: "client", Kind: Segment, Conn: "c1", Dir: "out", Src: "a:1", Dst: "b:2", Flags: flags, Seq: seq, Ack: 1, Win: 502, Len: mss, Payload: make([]byte, 64)})
		at := now.Add(-2 * time.Millisecond) // learnt 2 ms late
		late.EmitAt(Event{Host: "server", Kind: Segment, Conn: "c1", Dir: "in", Src: "a:1", Dst: "b:2", Flags: flags, Seq: seq, Ack: 1, Win: 502, Len: mss, Verdict: Accepted, Observed: true}, at)
		seq += uint32(mss)
		bytes += int64(mss)
		events += 2
		if i%2 == 1 {
			// The server's ACK, learnt before the arrival it answers
			// (another ring): out of order in the Recorder's source.
			r.EmitAt(Event{Host: "server", Kind: Segment, Conn: "c1", Dir: "out", Src: "b:2", Dst: "a:1", Flags: ".", Seq: 1, Ack: seq, Win: uint16(400 + i%100), Len: 0}, at.Add(time.Microsecond))
			r.Emit(Event{Host: "server", Kind: Buffer, Conn: "c1", RcvQueued: mss * (i % 7)})
			events += 2
		}
		if i%16 == 15 {
			r.Emit(Event{Host: "server", Kind: Call, Conn: "c1", Call: "read", Arg: "65536", Ret: 16 * mss})
			events++
		}
	}
	return bytes, events
}

// A long stream through the recorder with a summariser keeps a bounded
// trace: millions of events leave a few hundred kept ones, the counts of
// the summaries add up exactly, and the heap stays small.
func TestSummariseKeepsLongRunsBounded(t *testing.T) {
	n := 1 << 20
	if raceEnabled || testing.Short() {
		n = 1 << 17
	}
	clk := &safeClock{t: time.Unix(100, 0)}
	r := NewRecorder(clk)
	r.SetDelay(40 * time.Millisecond)
	r.Summarise(SummaryConfig{})
	var handed int
	r.Subscribe(func(Event) { handed++ })
	r.Emit(Event{Host: "client", Kind: Segment, Conn: "c1", Dir: "out", Flags: "S", Seq: 999, Win: 64240})
	const mss = 1448
	var maxKept, maxWaiting, maxHeld int
	bytes, events := int64(0), 1
	late := r.NewSource()
	for chunk := 0; chunk < 16; chunk++ {
		b, e := bulk(r, late, clk, n/16, mss, 1000+chunk*(n/16)*mss)
		bytes, events = bytes+b, events+e
		st := r.Stats()
		maxKept, maxWaiting, maxHeld = max(maxKept, st.Kept), max(maxWaiting, st.Waiting), max(maxHeld, st.Held)
	}
	r.Emit(Event{Host: "client", Kind: Segment, Conn: "c1", Dir: "out", Flags: "F.", Seq: 1000 + uint32(n*mss), Ack: 1, Win: 502, Reason: "close()"})
	events++
	r.Flush()
	st := r.Stats()
	t.Logf("%d events (%d MB of data): %+v", events, bytes>>20, st)
	if st.Recorded != events {
		t.Errorf("Recorded = %d, want %d", st.Recorded, events)
	}
	if st.Kept+st.Summarised-st.Summaries != events || st.Waiting != 0 || st.Held != 0 {
		t.Errorf("kept %d + summarised %d - summaries %d != %d events recorded (waiting %d, held %d)", st.Kept, st.Summarised, st.Summaries, events, st.Waiting, st.Held)
	}
	if handed != st.Kept {
		t.Errorf("subscribers saw %d events, the trace keeps %d", handed, st.Kept)
	}
	// Run time: n*10 µs; summaries last up to max(1 s, T/32).
	if maxKept > 2000 || st.Kept > 2000 {
		t.Errorf("the trace kept up to %d events (%d at the end) of %d: want a bounded few hundred", maxKept, st.Kept, events)
	}
	if maxWaiting > 40*1000/10*3 {
		t.Errorf("up to %d events waited in the 40 ms delay window (4000 segments' worth expected)", maxWaiting)
	}
	if maxHeld > 10 {
		t.Errorf("the summariser held up to %d events", maxHeld)
	}
	// The witness: the sender's own count. Summaries plus the segments
	// kept in full carry every byte, each way.
	ev := r.Events()
	for _, dir := range []string{"out", "in"} {
		var got int64
		segs := 0
		for _, e := range ev {
			switch {
			case e.Host == "client" && dir == "out" || e.Host == "server" && dir == "in":
			default:
				continue
			}
			if e.Kind == Segment && e.Dir == dir {
				got += int64(e.Len)
				segs++
			}
			if e.Kind == Summary && e.Dir == dir {
				got += e.Sum.Bytes
				segs += e.Sum.Count
				if !strings.Contains(e.Text, "observed") {
					t.Errorf("summary text %q does not say its segments were observed", e.Text)
				}
			}
		}
		want := n + 2 // the data, the SYN and the FIN
		if dir == "in" {
			want = n
		}
		if got != bytes || segs != want {
			t.Errorf("dir %s: the trace accounts for %d bytes in %d segments, want %d bytes in %d", dir, got, segs, bytes, want)
		}
	}
	if last := ev[len(ev)-1]; last.Flags != "F." || last.Reason != "close()" {
		t.Errorf("the FIN is not the last event, in full: %+v", last)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > 32<<20 {
		t.Errorf("heap after %d events: %d MB, want under 32 MB", events, ms.HeapAlloc>>20)
	}
	runtime.KeepAlive(r)
}

// Notable events are never summarised: a retransmission, a zero window, a
// refused arrival, a segment with a reason, a failed call, a state change
// all stay in the trace in full, between summaries.
func TestSummariseKeepsNotableEvents(t *testing.T) {
	clk := &fixed{t: time.Unix(0, 0)}
	r := NewRecorder(clk)
	r.Summarise(SummaryConfig{After: 2})
	seq := uint32(1)
	send := func(n int) {
		for i := 0; i < n; i++ {
			clk.t = clk.t.Add(time.Millisecond)
			r.Emit(Event{Host: "client", Kind: Segment, Conn: "c1", Dir: "out", Flags: ".", Seq: seq, Ack: 1, Win: 100, Len: 10})
			seq += 10
		}
	}
	r.Emit(Event{Host: "client", Kind: Segment, Conn: "c1", Dir: "out", Flags: "S", Seq: 0, Win: 100})
	send(10)
	r.Emit(Event{Host: "client", Kind: Segment, Conn: "c1", Dir: "out", Flags: ".", Seq: seq - 30, Ack: 1, Win: 100, Len: 10, Text: "retransmission"})
	send(10)
	r.Emit(Event{Host: "server", Kind: Segment, Conn: "c1", Dir: "out", Flags: ".", Seq: 1, Ack: seq, Win: 0, Text: "zero window"})
	r.Emit(Event{Host: "server", Kind: Segment, Conn: "c1", Dir: "in", Flags: ".", Seq: 5, Ack: 1, Win: 100, Len: 10, Verdict: Refused, Why: WhyOutOfWindow, Text: "refused"})
	r.Emit(Event{Host: "client", Kind: Call, Conn: "c1", Call: "write", Ret: 0, Err: "EPIPE", Text: "failed call"})
	send(10)
	r.Emit(Event{Host: "client", Kind: State, Conn: "c1", From: "ESTABLISHED", To: "FIN-WAIT-1", Text: "state"})
	r.Emit(Event{Host: "client", Kind: Segment, Conn: "c1", Dir: "out", Flags: "F.", Seq: seq, Ack: 1, Win: 100, Reason: "close()", Text: "fin"})
	var got []string
	counted := 0
	for _, e := range r.Events() {
		switch {
		case e.Kind == Summary:
			got = append(got, "sum")
			counted += e.Sum.Count
		case e.Text != "":
			got = append(got, e.Text)
		case e.Flags == "S":
			got = append(got, "S")
		default:
			got = append(got, "seg")
		}
	}
	// After 2 in full, the 3rd..9th are counted (7), the 10th is kept;
	// a notable event closes the summary, the next one starts at once
	// (9 counted, the last kept); a state change starts the count of
	// events in full again.
	want := "S seg seg sum seg retransmission sum seg zero window refused failed call sum seg state fin"
	if strings.Join(got, " ") != want {
		t.Errorf("trace:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if counted != 25 {
		t.Errorf("summaries count %d segments, want 25", counted)
	}
}

// Tap sees every event, in full, whatever the summariser keeps.
func TestTapSeesEveryEvent(t *testing.T) {
	r := NewRecorder(nil)
	r.Summarise(SummaryConfig{After: 1})
	tapped := 0
	r.Tap(func(Event) { tapped++ })
	for i := 0; i < 100; i++ {
		r.Emit(Event{Host: "client", Kind: Buffer, Conn: "c1", SndQueued: i})
	}
	r.Flush()
	if st := r.Stats(); tapped != 100 || st.Kept != 3 || st.Summarised != 98 {
		t.Errorf("tapped %d, stats %+v: want 100 tapped, 3 kept (first, summary, last), 98 summarised", tapped, st)
	}
}

// A stretch that goes quiet is closed within a period, without waiting for
// the next notable event: the live output shows its summary then.
func TestSummariseClosesQuietStretches(t *testing.T) {
	clk := &safeClock{t: time.Unix(0, 0)}
	r := NewRecorder(clk)
	r.Summarise(SummaryConfig{After: 1, Period: 10 * time.Millisecond})
	var mu sync.Mutex
	var seen []Kind
	r.Subscribe(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e.Kind)
	})
	for i := 0; i < 5; i++ {
		clk.add(time.Microsecond)
		r.Emit(Event{Host: "client", Kind: Buffer, Conn: "c1", SndQueued: i})
	}
	clk.add(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Held > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if st := r.Stats(); st.Held != 0 || st.Summaries != 1 || len(seen) != 3 || seen[1] != Summary {
		t.Errorf("stats %+v, subscribers saw %v: want the first event, the summary of 3, the last", st, seen)
	}
}

// An hour of a slow steady stream: summaries grow with the run (a 32nd of
// the time so far), so the trace holds a few hundred of them per kind, not
// one per second.
func TestSummariseAnHour(t *testing.T) {
	n := 1 << 18
	if raceEnabled {
		n = 1 << 16
	}
	step := time.Hour / time.Duration(n)
	clk := &safeClock{t: time.Unix(0, 0)}
	r := NewRecorder(clk)
	r.Summarise(SummaryConfig{})
	bulkEvery(r, r.NewSource(), clk, step, n, 100, 1)
	r.Flush()
	st := r.Stats()
	// 5 kinds (segments each way, the ACKs, reads, buffer levels): with
	// periods of max(1 s, T/32), an hour makes about 32 + 32*ln(3600/32)
	// = 183 summaries of each, and each keeps its last event.
	if st.Summaries > 5*200 || st.Kept > 5*2*200+100 {
		t.Errorf("an hour (%d events) kept %d events in %d summaries: want at most about 200 summaries per kind", st.Recorded, st.Kept, st.Summaries)
	}
	t.Logf("an hour, %d events: %+v", st.Recorded, st)
}

// A run that keeps more than MaxKept events (many connections, each with
// its handshake and teardown) lets the oldest go, a chunk at a time, and
// says so at the start of Events.
func TestSummariseMaxKept(t *testing.T) {
	r := NewRecorder(nil)
	r.Summarise(SummaryConfig{MaxKept: 2 * chunkSize})
	const n = 20 * chunkSize
	for i := 0; i < n; i++ {
		r.Emit(Event{Host: "client", Kind: State, Conn: fmt.Sprintf("c%d", i), From: "CLOSED", To: "SYN-SENT"})
	}
	st := r.Stats()
	ev := r.Events()
	if st.Kept != n || st.Dropped < n-3*chunkSize || len(ev) != st.Kept-st.Dropped+1 {
		t.Fatalf("stats %+v, %d events: want all %d kept, all but 2 to 3 chunks dropped, the rest returned with a note", st, len(ev), n)
	}
	if ev[0].Kind != Note || !strings.Contains(ev[0].Text, fmt.Sprintf("the first %d events", st.Dropped)) {
		t.Errorf("first event %+v: want the note of what was let go", ev[0])
	}
	if last := ev[len(ev)-1]; last.Conn != fmt.Sprintf("c%d", n-1) || last.Index != len(ev)-1 {
		t.Errorf("last event %+v: want the last one emitted, indexed in Events", last)
	}
}
