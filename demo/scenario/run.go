package scenario

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// Lab is what a script runs against: two peers recording into one trace.
type Lab struct {
	Client, Server stack.Peer
	Trace          *trace.Recorder
	// Faults injects faults for "wire" steps; nil makes them fail.
	Faults Faults
	// Net imposes the network conditions of "net" steps (and of
	// Options.Net); nil makes them fail.
	Net stack.Conditioner
	// Inject delivers the segments of "inject" steps; nil makes them
	// fail.
	Inject stack.Injector
	// Kernel is the side a real Linux kernel plays ("client", "server"),
	// "" for none: the script's "config kernel" settings apply only then.
	Kernel string
}

// Faults injects faults on the wire (stack.Lab implements it).
type Faults interface {
	// Hold holds back what the hosts send until Release.
	Hold()
	// Release sends what host's link held, in order.
	Release(host string) error
	// Drop drops the next n segments host sends whose flags match.
	Drop(host string, n int, match func(flags string) bool, what string) error
}

// Options tune a run. The zero value is a sane default.
type Options struct {
	// StepTimeout bounds each blocking call (connect, accept, read,
	// write); 0 means 10 s.
	StepTimeout time.Duration
	// Sleep waits for d on the lab's clock; nil means real time.
	Sleep func(ctx context.Context, d time.Duration) error
	// Quiet is how long nothing may happen in the lab before the next
	// step runs (real time); 0 means 50 ms.
	Quiet time.Duration
	// Settle, if set, replaces the real-time quiet wait (virtual time).
	//
	// Every step waits until the lab is quiet before it runs: what one
	// step set in motion (segments, ACKs, state changes) has finished
	// before the next begins. That makes runs reproducible in virtual time
	// and makes the TUN and memory wires tell the same story.
	Settle func(ctx context.Context)
	// Step, if set, is called before each step runs (progress output).
	Step func(s Step)
	// Net, if set, are network conditions for the whole run (--net),
	// applied before the first step; the script's "net" steps change
	// them from there.
	Net *Net
	// AfterFunc runs f once d has passed on the lab's clock and returns
	// a function that cancels it; nil means the wall clock. It bounds a
	// blocked call by StepTimeout; in virtual time it must be the lab's
	// clock (memwire.Wire.AfterFunc), which moves while a call waits.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// Now reads the lab's clock (how long a call has been blocked); nil
	// means the wall clock.
	Now func() time.Time
}

// Failure is an expectation that did not hold, or a step that could not
// run.
type Failure struct {
	Pos  Pos
	Step string // the scenario line
	Msg  string // what was wrong
	At   int    // how many trace events existed when it was checked
	// Stop is set when this is a step that could not run (the rest of the
	// script was skipped), not an expectation that failed.
	Stop bool
}

// Error returns "file:line:col: step: what was wrong".
func (f Failure) Error() string { return fmt.Sprintf("%s: %s: %s", f.Pos, f.Step, f.Msg) }

// Result is the outcome of a run.
type Result struct {
	Script   *Script
	Failures []Failure
	// Stopped is set when a step could not run at all (the rest of the
	// script was skipped); it is also the last Failure.
	Stopped bool
	// Checked counts expectations evaluated.
	Checked int
	// Interrupted is set when ctx ended before the script did (Ctrl-C):
	// the step at Where was running or next, and the rest was skipped.
	// An interruption is not a Failure.
	Interrupted bool
	Where       Pos
}

// OK reports whether every expectation held and the script ran to its end.
func (r *Result) OK() bool { return len(r.Failures) == 0 && !r.Interrupted }

// Failed counts the expectations that failed (not a step that could not
// run).
func (r *Result) Failed() int {
	n := 0
	for _, f := range r.Failures {
		if !f.Stop {
			n++
		}
	}
	return n
}

// errInterrupted is what a step returns when the run's context ended.
var errInterrupted = errors.New("interrupted")

// runner holds the state of one run.
type runner struct {
	lab     Lab
	opt     Options
	res     *Result
	socks   map[string]map[string]stack.Socket       // host → name → socket
	lns     map[string]map[string]stack.ListenSocket // host → name → listener
	latest  map[string]string                        // host → latest socket name
	latestL map[string]string                        // host → latest listener name
	settled int                                      // trace length at the last settle
	net     [2]stack.Conditions                      // the conditions in effect, by direction
	conc    concState                                // background calls, sockets before they connect
}

// Run executes s on lab, step by step, and returns the expectations that
// failed. It stops early only when ctx ends or a step cannot run (e.g. a
// connect fails without an expectation saying it should).
func Run(ctx context.Context, s *Script, lab Lab, opt Options) *Result {
	if opt.StepTimeout == 0 {
		opt.StepTimeout = 10 * time.Second
	}
	if opt.Quiet == 0 {
		opt.Quiet = 50 * time.Millisecond
	}
	if opt.Sleep == nil {
		opt.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	r := &runner{
		lab: lab, opt: opt, res: &Result{Script: s},
		socks:   map[string]map[string]stack.Socket{"client": {}, "server": {}},
		lns:     map[string]map[string]stack.ListenSocket{"client": {}, "server": {}},
		latest:  map[string]string{},
		latestL: map[string]string{},
	}
	r.noteKnobs(s)
	if opt.Net != nil {
		if err := r.setNet(opt.Net); err != nil {
			r.stop(opt.Net, err.Error())
			return r.res
		}
	}
	for _, st := range s.Steps {
		if ctx.Err() != nil {
			r.res.Interrupted, r.res.Where = true, st.Position()
			break
		}
		if opt.Step != nil {
			opt.Step(st)
		}
		r.settle(ctx)
		r.collect() // background calls that returned: their sockets, their expectations
		if err := r.step(ctx, st); err != nil {
			if ctx.Err() != nil || errors.Is(err, errInterrupted) {
				r.res.Interrupted, r.res.Where = true, st.Position()
				break
			}
			r.stop(st, err.Error())
			break
		}
		if _, ok := st.(*Expect); !ok {
			r.settled = -1 // the step may have set something in motion
		}
	}
	r.settle(ctx)
	r.endBackground(ctx)
	return r.res
}

func (r *runner) fail(st Step, msg string) {
	r.res.Failures = append(r.res.Failures, Failure{Pos: st.Position(), Step: st.String(), Msg: msg, At: r.lab.Trace.Len()})
}

func (r *runner) stop(st Step, msg string) {
	r.fail(st, msg)
	r.res.Failures[len(r.res.Failures)-1].Stop = true
	r.res.Stopped, r.res.Where = true, st.Position()
}

func (r *runner) peer(host string) stack.Peer {
	if host == "client" {
		return r.lab.Client
	}
	return r.lab.Server
}

func (r *runner) note(host, text string) {
	r.lab.Trace.Emit(trace.Event{Host: host, Kind: trace.Note, Text: text})
}

// settle waits until nothing has happened for opt.Quiet (at most 5 s), so
// that what a step set in motion is in the trace before the next step.
func (r *runner) settle(ctx context.Context) {
	if r.opt.Settle != nil {
		r.opt.Settle(ctx)
		return
	}
	if r.lab.Trace.Len() == r.settled {
		return // only expectations ran since the lab was last quiet
	}
	defer func() { r.settled = r.lab.Trace.Len() }()
	deadline := time.Now().Add(5 * time.Second)
	last, lastN := time.Now(), r.lab.Trace.Len()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(r.opt.Quiet / 5)
		if n := r.lab.Trace.Len(); n != lastN {
			last, lastN = time.Now(), n
			continue
		}
		if time.Since(last) >= r.opt.Quiet {
			return
		}
	}
}

func (r *runner) step(ctx context.Context, st Step) error {
	switch s := st.(type) {
	case *Sleep:
		who := s.Host
		if who == "" {
			who = "client"
		}
		r.note(who, fmt.Sprintf("%s sleeps %s", who, s.D))
		return r.opt.Sleep(ctx, s.D)
	case *WaitQuiet:
		r.settle(ctx)
		return nil
	case *Wait:
		return r.waitFor(ctx, s)
	case *Note:
		r.note("client", s.Text)
		return nil
	case *Net:
		return r.setNet(s)
	case *Inject:
		return r.inject(s)
	case *Wire:
		if r.lab.Faults == nil {
			return fmt.Errorf("this lab cannot inject faults")
		}
		switch s.Op {
		case "hold":
			r.note("client", "wire: holding every segment from now on")
			r.lab.Faults.Hold()
		case "release":
			r.note("client", "wire: releasing the held segments, the client's first")
			if err := r.lab.Faults.Release("client"); err != nil {
				return err
			}
			r.settled = -1
			r.settle(ctx) // one host at a time, in a reproducible order
			return r.lab.Faults.Release("server")
		case "drop":
			flags := s.Flags
			return r.lab.Faults.Drop(s.Host, s.Count, func(f string) bool { return FlagsMatch(flags, f) }, s.String())
		}
		return nil
	case *Expect:
		r.settle(ctx)
		r.res.Checked++
		if msg := r.checkWithin(ctx, s); msg != "" {
			r.fail(s, msg)
		}
		return nil
	case *Call:
		return r.callStep(ctx, s)
	}
	return fmt.Errorf("unknown step %T", st)
}

// setNet applies a net step to the conditions in effect, notes the result
// for each direction it names, and imposes it on the wire.
func (r *runner) setNet(n *Net) error {
	if r.lab.Net == nil {
		return fmt.Errorf("this wire cannot impose network conditions")
	}
	for _, d := range n.Dirs {
		c := n.Apply(r.net[d])
		if err := c.Validate(); err != nil {
			return fmt.Errorf("net %s: %v", d, err)
		}
		r.note(d.From(), fmt.Sprintf("net %s: %s", d, c))
		if err := r.lab.Net.SetConditions(d, c); err != nil {
			return err
		}
		r.net[d] = c
	}
	return nil
}

// sock finds the socket a call uses.
func (r *runner) sock(c *Call) (stack.Socket, error) {
	name := c.On
	if name == "" {
		name = r.latest[c.Host]
	}
	if s := r.socks[c.Host][name]; s != nil {
		return s, nil
	}
	if name == "" {
		return nil, fmt.Errorf("%s has no connected socket yet (connect or accept first)", c.Host)
	}
	return nil, fmt.Errorf("%s has no socket named %q", c.Host, name)
}

// callResult is what a call returned, and the socket or listener it made.
type callResult struct {
	n    int
	data []byte
	err  error
	sock stack.Socket       // connect, accept
	ln   stack.ListenSocket // listen
	// fresh is the socket "socket" made; fatal, a reason the call
	// could not run at all (no such socket).
	fresh stack.FreshSocket
	fatal error
	// took is how long the call took on the lab's clock.
	took time.Duration
}

// prepare resolves, on the runner's goroutine, the sockets a call uses,
// and returns the call itself, which may run on another goroutine (a
// background call): it touches no state of the runner. The call measures
// how long it took on the lab's clock (expect took).
func (r *runner) prepare(c *Call) (func(ctx context.Context) callResult, error) {
	op, err := r.prepareOp(c)
	if op == nil || err != nil {
		return op, err
	}
	return func(ctx context.Context) callResult {
		start := r.lab.Trace.Now()
		res := op(ctx)
		res.took = r.lab.Trace.Now() - start
		return res
	}, nil
}

// prepareOp is prepare without the clock.
func (r *runner) prepareOp(c *Call) (func(ctx context.Context) callResult, error) {
	if op, ok, err := r.prepareSockets(c); ok {
		return op, err
	}
	p := r.peer(c.Host)
	switch c.Op {
	case "listen":
		return func(context.Context) callResult {
			l, err := p.Listen(c.Port, c.Backlog)
			return callResult{ln: l, err: err}
		}, nil
	case "connect":
		addr := netip.AddrPortFrom(r.peer(peerOf(c.Host)).Addr(), c.Port)
		return func(ctx context.Context) callResult {
			s, err := p.Dial(ctx, addr, c.From)
			return callResult{sock: s, err: err}
		}, nil
	case "accept":
		name := c.On
		if name == "" {
			name = r.latestL[c.Host]
		}
		l := r.lns[c.Host][name]
		if l == nil {
			return nil, fmt.Errorf("%s has no listener %q (listen first)", c.Host, name)
		}
		return func(ctx context.Context) callResult {
			s, err := l.Accept(ctx)
			return callResult{sock: s, err: err}
		}, nil
	case "close":
		if l := r.lns[c.Host][c.On]; l != nil && c.On != "" {
			return func(context.Context) callResult { return callResult{err: l.Close()} }, nil
		}
		s, err := r.sock(c)
		if err != nil {
			return nil, err
		}
		return func(context.Context) callResult { return callResult{err: s.Close()} }, nil
	}
	s, err := r.sock(c)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) callResult {
		n, data, err := r.sockCall(ctx, c, s)
		return callResult{n: n, data: data, err: err}
	}, nil
}

// register records, on the runner's goroutine, the socket or listener a
// call made.
func (r *runner) register(c *Call, res callResult) {
	switch {
	case res.ln != nil && res.err == nil:
		r.lns[c.Host][res.ln.ID()] = res.ln
		if c.As != "" {
			r.lns[c.Host][c.As] = res.ln
		}
		if c.On != "" {
			r.lns[c.Host][c.On] = res.ln
		}
		r.latestL[c.Host] = res.ln.ID()
	case res.sock != nil:
		r.addSock(c, res.sock)
		if c.On != "" && c.Op == "connect" {
			r.socks[c.Host][c.On] = res.sock
		}
	case res.fresh != nil:
		r.addFresh(c, res.fresh)
	}
}

// finish checks a call's result against its expectation; a non-nil error
// means the script cannot go on (a socket it needs was not made).
func (r *runner) finish(c *Call, res callResult, at int) error {
	err := res.err
	if c.Expect == nil || c.Expect.Blocked {
		if c.Expect != nil {
			r.res.Checked++
			r.failAt(c, "want still blocked, got "+describe(res.n, res.data, err), at)
		}
		if err != nil && !inProgress(err) && (c.Op == "listen" || c.Op == "connect" || c.Op == "accept" || c.Op == "socket") {
			return fmt.Errorf("%s %s failed: %s", c.Host, c.Op, errText(err))
		}
		return nil
	}
	r.res.Checked++
	if msg := both(checkCall(c, res.n, res.data, err), checkTook(c.Expect, res.took)); msg != "" {
		r.failAt(c, msg, at)
		if c.Op == "connect" || c.Op == "accept" || c.Op == "listen" || c.Op == "socket" {
			if err != nil && !inProgress(err) {
				return fmt.Errorf("cannot go on without the socket")
			}
		}
	}
	return nil
}

func (r *runner) addSock(c *Call, s stack.Socket) {
	r.socks[c.Host][s.ID()] = s
	if c.As != "" {
		r.socks[c.Host][c.As] = s
	}
	r.latest[c.Host] = s.ID()
}

// sockCall runs a data or option call on a connected socket.
func (r *runner) sockCall(ctx context.Context, c *Call, s stack.Socket) (int, []byte, error) {
	switch c.Op {
	case "write":
		if c.Fill > 0 {
			n, err := writeFill(ctx, s, c.Fill)
			return n, nil, err
		}
		n, err := s.Write(ctx, c.Data)
		return n, nil, err
	case "read":
		size := c.N
		if size == 0 {
			size = 65536
		}
		if size < 0 || size > MaxRead {
			return 0, nil, fmt.Errorf("read size %d out of range 1-%d", size, MaxRead)
		}
		buf := make([]byte, size)
		if !c.All {
			n, err := s.Read(ctx, buf)
			return n, buf[:n], err
		}
		var all bytes.Buffer
		for {
			n, err := s.Read(ctx, buf)
			all.Write(buf[:n])
			if err == io.EOF {
				return all.Len(), all.Bytes(), err
			}
			if err != nil {
				return all.Len(), all.Bytes(), err
			}
		}
	case "shutdown":
		how := map[string]stack.How{"rd": stack.ShutRD, "wr": stack.ShutWR, "rdwr": stack.ShutRDWR}[c.How]
		return 0, nil, s.Shutdown(how)
	}
	return 0, nil, fmt.Errorf("unknown call %q", c.Op)
}

// writeFill writes n bytes of filler (see Filler) to s, at most
// MaxWriteChunk per write call, out of one buffer made once: a long write
// costs no more memory than a short one. It returns how many bytes were
// written, all of them unless a call failed.
func writeFill(ctx context.Context, s stack.Socket, n int64) (int, error) {
	chunk := min(n, MaxWriteChunk)
	buf := Filler(0, chunk+int64(len(fillAlphabet)))
	var total int64
	for total < n {
		off := total % int64(len(fillAlphabet))
		m, err := s.Write(ctx, buf[off:off+min(chunk, n-total)])
		total += int64(m)
		if err != nil {
			return int(total), err
		}
	}
	return int(total), nil
}

// checkCall returns what is wrong with a call's result, or "".
func checkCall(c *Call, n int, data []byte, err error) string {
	e := c.Expect
	got := describe(n, data, err)
	switch {
	case e.Data != nil:
		if err != nil && !(c.All && err == io.EOF) {
			return fmt.Sprintf("want %q, got %s", *e.Data, got)
		}
		if string(data) != *e.Data {
			return fmt.Sprintf("want %q, got %s", *e.Data, got)
		}
	case e.EOF:
		if err != io.EOF || (n != 0 && !c.All) {
			return "want EOF, got " + got
		}
	case e.OK:
		if err != nil {
			return "want success, got " + got
		}
	case e.Errno != "":
		if stack.ErrName(err) != e.Errno {
			return "want error " + e.Errno + ", got " + got
		}
	case e.Bytes >= 0:
		if n != e.Bytes {
			return fmt.Sprintf("want %d bytes, got %s", e.Bytes, got)
		}
	}
	return ""
}

// errText names an error by its errno when it has one, with the system's
// wording: "ECONNREFUSED (connection refused)".
func errText(err error) string {
	name, text := stack.ErrName(err), err.Error()
	if name == text || strings.Contains(text, name) {
		return text
	}
	return name + " (" + text + ")"
}

func describe(n int, data []byte, err error) string {
	var parts []string
	if len(data) > 0 {
		q := strconv.Quote(string(data))
		if len(q) > 40 {
			q = q[:37] + "..."
		}
		parts = append(parts, fmt.Sprintf("%d bytes %s", n, q))
	} else {
		parts = append(parts, strconv.Itoa(n))
	}
	if err != nil {
		parts = append(parts, "error "+stack.ErrName(err))
	}
	return strings.Join(parts, ", ")
}
