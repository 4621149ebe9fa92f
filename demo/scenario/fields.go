package scenario

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

// This file holds the finer expectations: how long a call took ("expect
// took D1..D2"), conditions on a segment's numbers ("seq 4 ack 1", "win
// 0", "len >0"), segments a stack refused ("expect HOST refused FLAGS"),
// and ordering with "after".

// Span is a closed range of durations.
type Span struct {
	Min, Max time.Duration
}

// String returns "D1..D2".
func (s Span) String() string {
	end := func(d time.Duration) string {
		if d == 0 {
			return "0"
		}
		return fmtDuration(d)
	}
	return end(s.Min) + ".." + end(s.Max)
}

// FieldCond is a condition on one number of a segment: Name (seq, ack,
// win, len) compared by Op (=, >, <, >=, <=, !=) with N. seq and ack are
// relative as tcpdump prints them: to the sender's initial sequence
// number, and to the receiver's.
type FieldCond struct {
	Name string
	Op   string
	N    int64
}

// String returns "seq 4", "len >0", ...
func (f FieldCond) String() string {
	op := f.Op
	if op == "=" {
		op = ""
	}
	return fmt.Sprintf("%s %s%d", f.Name, op, f.N)
}

// segmentFields are the numbers a FieldCond may name.
var segmentFields = []string{"seq", "ack", "win", "len"}

// callExpect parses what follows "expect" after a call: an outcome, a
// bound on the time the call took, or both ("expect ok took 1s..3s").
func (p *lineParser) callExpect(pos Pos) (*CallExpect, error) {
	e := &CallExpect{Pos: pos, Bytes: -1}
	if p.peek() != "took" {
		var err error
		if e, err = p.callOutcome(pos); err != nil {
			return nil, err
		}
	}
	if p.accept("took") {
		s, err := p.span()
		if err != nil {
			return nil, err
		}
		e.Took = &s
	}
	return e, nil
}

// span consumes D1..D2, two durations with D1 <= D2.
func (p *lineParser) span() (Span, error) {
	const form = "a range of durations D1..D2 such as 1s..3s or 0..10ms"
	if !p.more() || p.toks[p.i].quoted {
		return Span{}, p.errorf("expected %s", form)
	}
	t := p.toks[p.i].text
	lo, hi, ok := strings.Cut(t, "..")
	if !ok {
		return Span{}, p.errorf("expected %s, found %q", form, t)
	}
	var s Span
	var err error
	if s.Min, err = spanEnd(lo); err == nil {
		s.Max, err = spanEnd(hi)
	}
	if err != nil {
		return Span{}, p.errorf("%v in %q (%s)", err, t, form)
	}
	if s.Min > s.Max {
		return Span{}, p.errorf("empty range %q: %s is more than %s", t, lo, hi)
	}
	p.i++
	return s, nil
}

func spanEnd(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	return parseDuration(s, "a duration")
}

// segmentCond parses one more condition of a segment expectation: a
// field condition or "after ...". It reports false (and consumes nothing)
// when the next word is neither.
func (p *lineParser) segmentCond(e *Expect) (bool, error) {
	w := strings.ToLower(p.peek())
	if w == "within" {
		return true, p.within(e)
	}
	if w == "after" {
		p.i++
		a, err := p.expect(p.pos())
		if err != nil {
			return true, err
		}
		if a.What != "sent" && a.What != "received" && a.What != "refused" {
			return true, p.errorf("\"after\" needs a segment: HOST sent|received|refused FLAGS")
		}
		e.After = a
		return true, nil
	}
	known := false
	for _, f := range segmentFields {
		known = known || w == f
	}
	if !known {
		return false, nil
	}
	at := p.pos()
	p.i++
	for _, f := range e.Fields {
		if f.Name == w {
			return true, &Error{at, w + " given twice"}
		}
	}
	if !p.more() || p.toks[p.i].quoted {
		return true, p.errorf("expected a number for %s (e.g. %s 4, %s >0, %s <=100)", w, w, w, w)
	}
	t := p.toks[p.i].text
	op := "="
	for _, o := range []string{">=", "<=", "!=", ">", "<", "="} {
		if strings.HasPrefix(t, o) {
			op, t = o, t[len(o):]
			break
		}
	}
	hi := int64(math.MaxUint32)
	switch w {
	case "win":
		hi = 65535
	case "len":
		hi = 65535
	}
	n, err := parseNumber(t, w, 0, hi)
	if err != nil {
		return true, p.errorf("%v", err)
	}
	p.i++
	e.Fields = append(e.Fields, FieldCond{Name: w, Op: op, N: n})
	return true, nil
}

// isnTable holds the initial sequence numbers of each host's connections
// as the trace shows them (their SYNs), built on first use.
type isnTable struct {
	built bool
	isn   map[string]uint32 // "host conn out|in" → ISN of that direction
}

func (t *isnTable) build(events []trace.Event) {
	t.built, t.isn = true, map[string]uint32{}
	for _, ev := range events {
		if ev.Kind != trace.Segment || !strings.Contains(ev.Flags, "S") || ev.Verdict == trace.Refused {
			continue
		}
		k := ev.Host + " " + ev.Conn + " " + ev.Dir
		if _, ok := t.isn[k]; !ok {
			t.isn[k] = ev.Seq
		}
	}
}

// relative returns ev's seq and ack as tcpdump prints them, and whether
// the connection's handshake is in the trace to count them from.
func (t *isnTable) relative(events []trace.Event, ev trace.Event) (seq, ack int64, ok bool) {
	if !t.built {
		t.build(events)
	}
	other := "in"
	if ev.Dir == "in" {
		other = "out"
	}
	sISN, ok1 := t.isn[ev.Host+" "+ev.Conn+" "+ev.Dir]
	aISN, ok2 := t.isn[ev.Host+" "+ev.Conn+" "+other]
	return int64(ev.Seq - sISN), int64(ev.Ack - aISN), ok1 && ok2
}

// match reports whether ev meets every condition.
func (t *isnTable) match(events []trace.Event, ev trace.Event, conds []FieldCond) bool {
	for _, c := range conds {
		v, ok := t.value(events, ev, c.Name)
		if !ok || !compare(v, c.Op, c.N) {
			return false
		}
	}
	return true
}

func (t *isnTable) value(events []trace.Event, ev trace.Event, name string) (int64, bool) {
	switch name {
	case "win":
		return int64(ev.Win), true
	case "len":
		return int64(ev.Len), true
	case "ack":
		if !strings.Contains(ev.Flags, ".") {
			return 0, false
		}
	}
	seq, ack, ok := t.relative(events, ev)
	if name == "seq" {
		return seq, ok
	}
	return ack, ok
}

func compare(v int64, op string, n int64) bool {
	switch op {
	case ">":
		return v > n
	case "<":
		return v < n
	case ">=":
		return v >= n
	case "<=":
		return v <= n
	case "!=":
		return v != n
	}
	return v == n
}

// segReason is the text "reason ~" matches: the reason a segment was
// sent, or for a refused arrival why it was refused and the evidence.
func segReason(e *Expect, ev trace.Event) string {
	if e.What == "refused" {
		return ev.Why + ": " + ev.Evidence
	}
	return ev.Reason
}

func fieldsText(e *Expect) string {
	if len(e.Fields) == 0 {
		return ""
	}
	var s []string
	for _, f := range e.Fields {
		s = append(s, f.String())
	}
	return " with " + strings.Join(s, " ")
}

// nearFields lists, when field conditions failed, the numbers of the
// segments that matched the flags, so the reader sees what there was.
func nearFields(events []trace.Event, e *Expect, conns map[string]bool) string {
	if len(e.Fields) == 0 {
		return ""
	}
	loose := *e
	loose.Fields = nil
	m := segments(events, &loose, conns)
	if len(m) == 0 {
		return ""
	}
	var t isnTable
	var s []string
	for _, i := range m {
		ev := events[i]
		seq, ack, ok := t.relative(events, ev)
		if !ok {
			s = append(s, fmt.Sprintf("[%s] (no handshake in the trace) win %d len %d", ev.Flags, ev.Win, ev.Len))
			continue
		}
		d := fmt.Sprintf("[%s] seq %d", ev.Flags, seq)
		if strings.Contains(ev.Flags, ".") {
			d += fmt.Sprintf(" ack %d", ack)
		}
		s = append(s, d+fmt.Sprintf(" win %d len %d", ev.Win, ev.Len))
		if len(s) == 5 {
			s = append(s, fmt.Sprintf("... (%d in all)", len(m)))
			break
		}
	}
	return "; with these flags: " + strings.Join(s, "; ")
}

// checkAfter checks "after": e's first match comes after the first match
// of the segment it names, which must exist.
func checkAfter(events []trace.Event, e *Expect, m []int) string {
	if e.After == nil || len(m) == 0 || e.Never {
		return ""
	}
	a := e.After
	o := segments(events, a, nil)
	if len(o) == 0 {
		return fmt.Sprintf("%s never %s [%s], so %s %s [%s] cannot come after it", a.Host, a.What, a.Flags, e.Host, e.What, e.Flags)
	}
	if m[0] < o[0] {
		return fmt.Sprintf("%s %s [%s] came before %s %s [%s]", e.Host, e.What, e.Flags, a.Host, a.What, a.Flags)
	}
	return ""
}

// checkTook returns what is wrong with how long a call took, or "".
func checkTook(e *CallExpect, took time.Duration) string {
	if e == nil || e.Took == nil {
		return ""
	}
	if took < e.Took.Min || took > e.Took.Max {
		return fmt.Sprintf("took %s, want %s", roundTook(took), e.Took)
	}
	return ""
}

// roundTook prints a call's duration to the millisecond (the microseconds
// of a real-time run are noise).
func roundTook(d time.Duration) string {
	if d >= time.Millisecond {
		d = d.Round(time.Millisecond)
	}
	return d.String()
}

// both joins two failure messages.
func both(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// within parses "within D" if it comes next.
func (p *lineParser) within(e *Expect) error {
	if !p.accept("within") {
		return nil
	}
	at := p.pos()
	d, err := p.duration("how long the expectation may wait")
	if err != nil {
		return err
	}
	if e.Within > 0 {
		return &Error{at, "within given twice"}
	}
	if e.Never || d == 0 {
		return &Error{at, "within needs something to wait for: not with never, and more than 0"}
	}
	e.Within = d
	return nil
}

// withinOf returns how long e may wait: its own "within", or one written
// after the segment it is ordered against.
func withinOf(e *Expect) time.Duration {
	d := e.Within
	for _, o := range []*Expect{e.Before, e.After} {
		if o != nil && o.Within > d {
			d = o.Within
		}
	}
	return d
}

// withinStep is how often a waiting expectation looks again.
const withinStep = 10 * time.Millisecond

// checkWithin is check that, for an expectation with "within D", looks
// again every 10 ms of the lab's clock until it holds or D has passed;
// when it had to wait, a note says how long (a lost segment retransmitted
// later, say).
func (r *runner) checkWithin(ctx context.Context, e *Expect) string {
	msg := r.check(e)
	d := withinOf(e)
	if msg == "" || d == 0 {
		return msg
	}
	start := r.lab.Trace.Now()
	for msg != "" && r.lab.Trace.Now()-start < d {
		if err := r.opt.Sleep(ctx, withinStep); err != nil {
			return msg
		}
		msg = r.check(e)
	}
	waited := r.lab.Trace.Now() - start
	if msg != "" {
		return fmt.Sprintf("%s (after waiting %s)", msg, roundTook(waited))
	}
	r.note(e.Host, fmt.Sprintf("%s: held after waiting %s", e.String(), roundTook(waited)))
	return ""
}
