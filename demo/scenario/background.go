package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/tcplab/tcplab/stack"
)

// Concurrency: calls in the background ("HOST CALL ... &") and "wait".
//
// Every call runs on a goroutine of its own, driven by a stack.Waiter. A
// foreground call is waited for until it returns or StepTimeout passes on
// the lab's clock; then it is reported as still blocked and left in the
// background. A background call is waited for only until it returns or
// starts to wait (so the trace's order does not depend on the scheduler);
// the script goes on, and its expectation is checked when the runner next
// looks (before each step, at "wait", at the end). Calls still blocked at
// the end are reported, then abandoned (their context is cancelled).
//
// Only the runner's goroutine touches the runner's maps: a call's
// sockets are resolved before it starts (prepare), and what it made is
// registered when its result is collected (register).

// Wait waits for background calls: "wait NAME", "wait client|server",
// "wait all".
type Wait struct {
	base
	// Name is a background call's label (its "as NAME" or "on NAME"), a
	// host (all of its background calls), or "all".
	Name string
}

// concState is the runner's state for background calls and sockets made
// before they connect.
type concState struct {
	calls   []*bgCall                               // launched and not yet collected, in launch order
	fresh   map[string]map[string]stack.FreshSocket // host → name → socket not yet connected or listening
	listens map[string]bool                         // "host name": a socket the script will listen on
}

// bgCall is a call running on its own goroutine.
type bgCall struct {
	c     *Call
	w     *stack.Waiter
	stop  context.CancelFunc
	done  chan struct{}
	start time.Time // on the lab's clock
	res   callResult
	at    int // trace length when it returned
	// reported: its outcome was already reported (a foreground call
	// found still blocked after the step timeout).
	reported bool
}

// label is the name "wait NAME" knows the call by.
func (b *bgCall) label() string {
	if b.c.As != "" {
		return b.c.As
	}
	return b.c.On
}

func (b *bgCall) finished() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

func (r *runner) now() time.Time {
	if r.opt.Now != nil {
		return r.opt.Now()
	}
	return time.Now()
}

// afterFunc runs f after d on the lab's clock.
func (r *runner) afterFunc(d time.Duration, f func()) (stop func() bool) {
	if r.opt.AfterFunc != nil {
		return r.opt.AfterFunc(d, f)
	}
	return time.AfterFunc(d, f).Stop
}

// start runs the call on a goroutine of its own.
func (r *runner) start(ctx context.Context, c *Call, op func(context.Context) callResult) *bgCall {
	w := &stack.Waiter{}
	w.SetBackground(c.Background)
	cctx, cancel := context.WithCancel(stack.WithWaiter(ctx, w))
	b := &bgCall{c: c, w: w, stop: cancel, done: make(chan struct{}), start: r.now()}
	go func() {
		defer close(b.done)
		b.res = op(cctx)
		b.at = r.lab.Trace.Len()
	}()
	return b
}

// callStep runs one call: in the foreground it waits for it, at most
// StepTimeout; with "&" only until it returns or starts to wait.
func (r *runner) callStep(ctx context.Context, c *Call) error {
	if err := r.collect(); err != nil {
		return err
	}
	op, err := r.prepare(c)
	if err != nil {
		return err
	}
	b := r.start(ctx, c, op)
	if c.Background {
		r.conc.calls = append(r.conc.calls, b)
		// Let it get going (send its SYN, queue its bytes) before the
		// next step; a peer that does not tell is given a moment.
		t := time.NewTimer(2 * time.Second)
		defer t.Stop()
		select {
		case <-b.done:
		case <-b.w.Waiting():
		case <-t.C:
		case <-ctx.Done():
		}
		return nil
	}
	if !r.waitCalls(ctx, []*bgCall{b}) {
		if ctx.Err() != nil {
			b.stop()
			<-b.done
			return errInterrupted
		}
		b.w.SetBackground(true)
		b.reported = true
		r.conc.calls = append(r.conc.calls, b)
		r.stillBlocked(c, c, r.opt.StepTimeout, "the step timeout; the script goes on, the call stays blocked in the background")
		return nil
	}
	return r.collectOne(b)
}

// waitCalls waits, in the foreground, until every call of bs has
// returned (true) or StepTimeout passed on the lab's clock or ctx ended
// (false).
func (r *runner) waitCalls(ctx context.Context, bs []*bgCall) bool {
	expired := make(chan struct{})
	for _, b := range bs {
		b.w.SetBackground(false)
	}
	stop := r.afterFunc(r.opt.StepTimeout, func() {
		// On the goroutine that moves the clock: the calls stop counting
		// as blocked at once, so virtual time stops here.
		for _, b := range bs {
			b.w.SetBackground(true)
		}
		close(expired)
	})
	defer stop()
	for _, b := range bs {
		select {
		case <-b.done:
		case <-expired:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// collectOne registers what a finished call made and checks its
// expectation.
func (r *runner) collectOne(b *bgCall) error {
	r.register(b.c, b.res)
	if b.reported {
		return nil
	}
	err := r.finish(b.c, b.res, b.at)
	if err != nil && b.c.Background {
		// Too late to stop the script: the call ran beside it.
		r.failAt(b.c, err.Error(), b.at)
		return nil
	}
	return err
}

// collect collects the background calls that have returned, in launch
// order.
func (r *runner) collect() error {
	var keep []*bgCall
	var first error
	for _, b := range r.conc.calls {
		if !b.finished() {
			keep = append(keep, b)
			continue
		}
		if err := r.collectOne(b); err != nil && first == nil {
			first = err
		}
	}
	r.conc.calls = keep
	return first
}

// waitFor runs a "wait" step.
func (r *runner) waitFor(ctx context.Context, s *Wait) error {
	var bs []*bgCall
	for _, b := range r.conc.calls {
		if s.Name == "all" || s.Name == b.c.Host || s.Name == b.label() {
			bs = append(bs, b)
		}
	}
	if !r.waitCalls(ctx, bs) {
		if ctx.Err() != nil {
			return errInterrupted
		}
		for _, b := range bs {
			if !b.finished() {
				b.w.SetBackground(true)
				if !b.reported {
					b.reported = true
					r.stillBlocked(b.c, s, r.now().Sub(b.start), "at "+s.String())
				}
			}
		}
	}
	return r.collect()
}

// stillBlocked reports a call that has not returned: a failure unless it
// has no expectation (then a note) or expects to be blocked.
func (r *runner) stillBlocked(c *Call, at Step, d time.Duration, when string) {
	what := fmt.Sprintf("%s: still blocked after %s (%s)", c, fmtDuration(d.Round(time.Millisecond)), when)
	r.note(c.Host, what)
	if c.Expect == nil {
		if !c.Background && at == Step(c) {
			r.res.Checked++ // a foreground call is expected to return
			r.res.Failures = append(r.res.Failures, Failure{Pos: c.Position(), Step: c.String(), Msg: what, At: r.lab.Trace.Len()})
		}
		return
	}
	r.res.Checked++
	if c.Expect.Blocked {
		return
	}
	r.res.Failures = append(r.res.Failures, Failure{Pos: c.Position(), Step: c.String(), Msg: what + "; want " + wantText(c.Expect), At: r.lab.Trace.Len()})
}

// endBackground reports the calls still blocked at the end of the
// scenario, then abandons them: their context is cancelled and the
// runner waits for them to return.
func (r *runner) endBackground(ctx context.Context) {
	if ctx.Err() == nil && !r.res.Stopped && !r.res.Interrupted {
		r.collect()
	}
	for _, b := range r.conc.calls {
		if b.finished() || b.reported || ctx.Err() != nil || r.res.Interrupted {
			continue
		}
		b.reported = true
		r.stillBlocked(b.c, b.c, r.now().Sub(b.start), "at the end of the scenario; tcplab abandons it")
	}
	for _, b := range r.conc.calls { // one at a time: the trace's order is the launch order
		b.stop()
		<-b.done
	}
	r.conc.calls = nil
}

// failAt records a failed expectation of a call checked when the trace
// had at events.
func (r *runner) failAt(c *Call, msg string, at int) {
	r.res.Failures = append(r.res.Failures, Failure{Pos: c.Position(), Step: c.String(), Msg: msg, At: at})
}

// wantText says what a call's expectation wanted.
func wantText(e *CallExpect) string {
	switch {
	case e.Data != nil:
		return fmt.Sprintf("%q", *e.Data)
	case e.EOF:
		return "EOF"
	case e.OK:
		return "success"
	case e.Errno != "":
		return "error " + e.Errno
	case e.Bytes >= 0:
		return fmt.Sprintf("%d bytes", e.Bytes)
	}
	return "a result"
}

func inProgress(err error) bool { return errors.Is(err, syscall.EINPROGRESS) }

// cutBackground takes a trailing "&" off a line's tokens ("read &" or
// "read&"), returning its column (0: none).
func cutBackground(toks []token) ([]token, int) {
	if len(toks) == 0 {
		return toks, 0
	}
	last := toks[len(toks)-1]
	if last.quoted || !strings.HasSuffix(last.text, "&") {
		return toks, 0
	}
	col := last.col + len(last.text) - 1
	if last.text == "&" {
		return toks[:len(toks)-1], col
	}
	out := append([]token(nil), toks...)
	out[len(out)-1].text = strings.TrimSuffix(last.text, "&")
	return out, col
}

// strayAmp returns the column of an "&" that does not end its line, or 0.
func strayAmp(toks []token) int {
	for _, t := range toks {
		if !t.quoted && t.text == "&" {
			return t.col
		}
	}
	return 0
}
