package trace

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// fixed is a clock that moves only when told.
type fixed struct{ t time.Time }

func (f *fixed) Now() time.Time { return f.t }

func TestBeginEndKeepsCallOrderForSubscribers(t *testing.T) {
	clk := &fixed{t: time.Unix(0, 0)}
	r := NewRecorder(clk)
	var seen []string
	r.Subscribe(func(e Event) { seen = append(seen, e.Call+e.Flags) })
	p := r.Begin(Event{Kind: Call, Call: "close"})
	clk.t = clk.t.Add(time.Millisecond)
	r.Emit(Event{Kind: Segment, Flags: "F."}) // sent during close()
	if len(seen) != 0 {
		t.Fatalf("subscribers saw %v before the open call ended", seen)
	}
	p.End(func(e *Event) { e.Ret = 0; e.Index = 99 })
	if got := strings.Join(seen, " "); got != "close F." {
		t.Errorf("subscribers saw %q, want \"close F.\"", got)
	}
	ev := r.Events()
	if ev[0].Index != 0 || ev[0].T != 0 || ev[1].T != time.Millisecond {
		t.Errorf("events = %+v: the call keeps its place and time", ev)
	}
}

func TestManyEventsAcrossChunks(t *testing.T) {
	r := NewRecorder(nil)
	const n = 3*chunkSize + 7
	for i := 0; i < n; i++ {
		r.Emit(Event{Kind: Note, Ret: i})
	}
	ev := r.Events()
	if r.Len() != n || len(ev) != n {
		t.Fatalf("Len() = %d, len(Events()) = %d, want %d", r.Len(), len(ev), n)
	}
	for i, e := range ev {
		if e.Index != i || e.Ret != i {
			t.Fatalf("event %d = index %d ret %d", i, e.Index, e.Ret)
		}
	}
}

func TestJSONFieldsByKind(t *testing.T) {
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{T: 1500 * time.Millisecond, Host: "client", Kind: Segment, Conn: "c1", Dir: "out", Src: "a:1", Dst: "b:2", Flags: "R.", Seq: 5, Ack: 1, Win: 0, Reason: "why"},
			`{"ack":1,"conn":"c1","dir":"out","dst":"b:2","flags":"R.","host":"client","kind":"segment","len":0,"reason":"why","seq":5,"src":"a:1","t":1.5,"win":0}`},
		{Event{Host: "server", Kind: Segment, Dir: "in", Src: "a:1", Dst: "b:2", Flags: "R.", Seq: 9, Ack: 1,
			Verdict: Refused, Why: WhyChallenge, Evidence: "seq 9 not RCV.NXT 5"},
			`{"ack":1,"dir":"in","dst":"b:2","evidence":"seq 9 not RCV.NXT 5","flags":"R.","host":"server","kind":"segment","len":0,"seq":9,"src":"a:1","t":0,"verdict":"refused","verdict_by":"inferred","why":"RFC 5961 challenge","win":0}`},
		{Event{Host: "server", Kind: Segment, Dir: "in", Src: "a:1", Dst: "b:2", Flags: ".", Verdict: Accepted, Observed: true},
			`{"ack":0,"dir":"in","dst":"b:2","flags":".","host":"server","kind":"segment","len":0,"seq":0,"src":"a:1","t":0,"verdict":"accepted","verdict_by":"observed","win":0}`},
		{Event{Host: "server", Kind: Call, Call: "read", Arg: "64", Ret: 0, Err: "EOF"},
			`{"arg":"64","call":"read","err":"EOF","host":"server","kind":"call","ret":0,"t":0}`},
		{Event{Host: "client", Kind: State, From: "FIN-WAIT-2", To: "TIME-WAIT"},
			`{"from":"FIN-WAIT-2","host":"client","kind":"state","t":0,"to":"TIME-WAIT"}`},
		{Event{Host: "client", Kind: Buffer, SndQueued: 3},
			`{"host":"client","kind":"buffer","rcv_queued":0,"snd_queued":3,"t":0}`},
	} {
		b, err := json.Marshal(tc.e)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v\nwant %s", tc.e.Kind, b, err, tc.want)
		}
	}
}

// An arrival opened with Open passes through the mirrors at once, keeps
// its place before what the stack does while judging it, and reaches
// subscribers only once its verdict is in.
func TestOpenMirrorsAndHoldsSubscribers(t *testing.T) {
	r := NewRecorder(nil)
	var mirrored []string
	r.Mirror(func(e Event) (before, after []Event) {
		mirrored = append(mirrored, e.Dir+e.Flags)
		if e.Dir == "in" {
			return []Event{{Kind: Note, Text: "peer sent it"}}, nil
		}
		return nil, nil
	})
	var seen []string
	r.Subscribe(func(e Event) { seen = append(seen, string(e.Kind)+":"+e.Verdict+e.Text) })
	p := r.Open(Event{Kind: Segment, Dir: "in", Flags: "R"})
	r.Emit(Event{Kind: Segment, Dir: "out", Flags: "."}) // the challenge ACK
	if len(seen) != 1 || seen[0] != "note:peer sent it" {
		t.Fatalf("subscribers saw %v before the verdict", seen)
	}
	p.End(func(e *Event) { e.Verdict, e.Why = Refused, WhyChallenge })
	if got := strings.Join(seen, " "); got != "note:peer sent it segment:refused segment:" {
		t.Errorf("subscribers saw %q", got)
	}
	if got := strings.Join(mirrored, " "); got != "inR out." {
		t.Errorf("mirrors saw %q, want the arrival then the answer", got)
	}
	ev := r.Events()
	if len(ev) != 3 || ev[1].Flags != "R" || !ev[1].Refused() || ev[2].Flags != "." {
		t.Errorf("trace = %+v", ev)
	}
}
func TestEmitAtPutsLateObservationsInTheirPlace(t *testing.T) {
	clk := &fixed{t: time.Unix(100, 0)}
	r := NewRecorder(clk)
	r.SetDelay(10 * time.Millisecond)
	var seen []string
	r.Subscribe(func(e Event) { seen = append(seen, e.Text) })
	step := func() { clk.t = clk.t.Add(time.Millisecond) }
	step()
	r.Emit(Event{Kind: Note, Text: "a"}) // 1 ms
	step()
	p := r.Begin(Event{Kind: Call, Text: "call"}) // 2 ms
	step()
	r.Emit(Event{Kind: Note, Text: "c"}) // 3 ms
	// Learnt late: happened at 1.5 ms, before the open call.
	r.EmitAt(Event{Kind: Note, Text: "b"}, time.Unix(100, 0).Add(1500*time.Microsecond))
	if len(seen) != 0 {
		t.Fatalf("subscribers saw %v within the delay", seen)
	}
	p.End(func(e *Event) { e.Ret = 7 })
	var got []string
	for i, e := range r.Events() {
		if e.Index != i {
			t.Errorf("event %q has Index %d at position %d", e.Text, e.Index, i)
		}
		got = append(got, e.Text)
		if e.Text == "call" && e.Ret != 7 {
			t.Errorf("the open call moved one place but End did not reach it: %+v", e)
		}
	}
	if strings.Join(got, " ") != "a b call c" {
		t.Errorf("trace = %v, want a b call c", got)
	}
	clk.t = clk.t.Add(20 * time.Millisecond)
	r.Emit(Event{Kind: Note, Text: "d"})
	if strings.Join(seen, " ") != "a b call c" {
		t.Errorf("after the delay subscribers saw %v, want a b call c", seen)
	}
	// Older than what subscribers have seen: stored at the first open
	// place, with its true time.
	e := r.EmitAt(Event{Kind: Note, Text: "late"}, time.Unix(100, 0))
	if e.T != 0 {
		t.Errorf("too-late event = T %v, want T 0", e.T)
	}
	if ev := r.Events(); len(ev) != 6 || ev[4].Text != "late" || ev[4].Index != 4 {
		t.Errorf("trace = %+v, want the too-late event at index 4", ev)
	}
	r.Flush()
	if strings.Join(seen, " ") != "a b call c late d" {
		t.Errorf("after Flush subscribers saw %v", seen)
	}
}

func TestDelayTimerFlushesWithoutNewEvents(t *testing.T) {
	r := NewRecorder(nil)
	r.SetDelay(time.Millisecond)
	got := make(chan string, 1)
	r.Subscribe(func(e Event) { got <- e.Text })
	r.Emit(Event{Kind: Note, Text: "x"})
	select {
	case s := <-got:
		if s != "x" {
			t.Errorf("got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a held-back event was never handed out")
	}
}
