package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

func newRun(env *Env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run NAME|FILE.lab",
		Short: "run one scenario and show its trace (built-in NAME from 'tcplab list', or a .lab file)",
		Example: `  sudo tcplab run close
  sudo tcplab run shutdown --format ladder
  tcplab run close --wire memory --format json
  sudo tcplab run close --pcap close.pcapng --svg close.svg
  sudo tcplab run close --capture wire.pcapng   # the wire itself, as the kernel saw it`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("run takes one scenario, got %d: a built-in NAME, a FILE.lab, or - to read standard input (to run several: tcplab check A B ...); built-in: %s",
					len(args), strings.Join(scenario.Names(), ", "))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f.inputs = args
			if err := f.validate(); err != nil {
				return err
			}
			s, err := load(args[0], env.stdin())
			if err != nil {
				return err
			}
			if err := f.checkCapture(args[0]); err != nil {
				return err
			}
			ctx, stop := watch(cmd.Context())
			defer stop()
			res, events, err := runOne(ctx, env, &f, s, true)
			if err != nil {
				if ctx.Err() != nil {
					return interrupted{}
				}
				return err
			}
			if err := writeExtras(&f, events, s.Name); err != nil {
				return err
			}
			report(env.Stderr, res, events)
			return outcome(res)
		},
	}
	f.add(cmd)
	f.addCaptureFlag(cmd)
	f.addNetFlag(cmd)
	return cmd
}

// runOne runs s on a fresh lab, streaming its trace to stdout when stream.
// With --capture, the capture starts as soon as the lab exists and stops
// after the lab is closed.
func runOne(ctx context.Context, env *Env, f *runFlags, s *scenario.Script, stream bool) (_ *scenario.Result, _ []trace.Event, err error) {
	if e := relayExpect(s); e != nil && (f.prog == nil || f.prog.side != "middle") {
		return nil, nil, usageError{fmt.Errorf("%s: %q: there is a relay only with tcplab exec --side middle", e.Position(), e.String())}
	}
	lab, opt, err := newLab(ctx, env, f, s, f.pcap != "")
	if err != nil {
		return nil, nil, err
	}
	capt, err := startCapture(env, f, lab)
	if err != nil {
		lab.Close()
		return nil, nil, err
	}
	defer func() {
		lab.Close()
		if capt != nil {
			if cerr := capt.finish(env.Stderr); err == nil {
				err = cerr
			}
		}
	}()
	if os.Getenv("TCPLAB_TEST_PANIC") == "after-setup" {
		// Test hook: the end-to-end tests check that a panic leaves
		// nothing behind.
		panic("tcplab: TCPLAB_TEST_PANIC=after-setup")
	}
	// The live output runs on its own goroutine (render.Async): a slow
	// terminal must not hold up the stacks.
	var out *render.Async
	var bugs catcher          // a panic on the renderer's goroutine, raised again here
	stopProgress := func() {} // the live line of a long run
	finishLongRun := func() error { return nil }
	defer func() {
		stopProgress()
		if out != nil {
			out.Close()
		}
		finishLongRun() // after an error: its own is not the one to report
		bugs.raise()
	}()
	if stream {
		if tw, ok := lab.Wire.(interface{ TcpdumpCommand() string }); ok {
			fmt.Fprintf(env.Stderr, "# lab namespace ready; to watch the wire: %s\n", tw.TcpdumpCommand())
		}
		fmt.Fprintf(env.Stderr, "# connections still open at the end are abandoned silently: the hosts leave the wire before their stacks are destroyed\n")
		// On a terminal, long real-time sleeps show how far they have got;
		// a program's run (exec) shows what it has moved so far.
		prog := &progress{w: env.Stderr}
		tty := env.Stderr == io.Writer(os.Stderr) && render.IsTerminal(os.Stderr)
		if tty {
			prog.width = render.TerminalWidth(os.Stderr)
			prog.separate = !toTerminal(env.Stdout)
		}
		if f.prog != nil {
			if finishLongRun, err = startLongRun(lab.Trace, f); err != nil {
				return nil, nil, err
			}
			if tty {
				stopProgress = prog.live(lab.Trace)
			}
		}
		if opt.Sleep == nil && tty && f.prog == nil {
			opt.Sleep = prog.sleep
		}
		switch f.format {
		case "text":
			t := render.NewText(env.Stdout, render.TextOptions{Explain: f.explain, Arrivals: f.arrivals, NoBuffers: f.noBuf, Peers: relayPeers(f, lab)})
			out = render.NewAsync(bugs.catch(func(e trace.Event) { prog.write(func() { t.Write(e) }) }))
		case "json":
			j := render.NewJSON(env.Stdout)
			out = render.NewAsync(bugs.catch(func(e trace.Event) { prog.write(func() { j.Write(e) }) }))
		}
	}
	if out != nil {
		// Before the kernel peer: its first note (observed with eBPF,
		// or only sampled) belongs to the live output too.
		lab.Trace.Subscribe(out.Push)
	}
	sl := scenario.Lab{Client: lab.Client.Peer(), Server: lab.Server.Peer(), Trace: lab.Trace, Faults: lab}
	if c, ok := lab.Wire.(stack.Conditioner); ok {
		sl.Net = c
		if lab.Wire.Kind() == "tun" {
			sl.Net = tunNet{c: c, rec: lab.Trace}
		}
		if n, ok := lab.Wire.(interface {
			SetNetNotes(func(host, text string))
		}); ok {
			rec := lab.Trace
			n.SetNetNotes(func(host, text string) {
				rec.Emit(trace.Event{Host: host, Kind: trace.Note, Text: text})
			})
		}
	}
	if in, ok := lab.Wire.(stack.Injector); ok {
		sl.Inject = in
	}
	opt.Net = f.net
	var kp stack.Peer // the kernel peer, if any
	kernel := f.kernel
	if kernel == "" {
		kernel = s.Kernel
	}
	newKernelPeer := env.NewKernelPeer
	if f.prog != nil && f.prog.side != "middle" {
		kernel = f.prog.side
		newKernelPeer = env.Program.NewPeer
	}
	if f.prog != nil && f.prog.side == "middle" {
		if lab.Wire.Kind() != "tun" {
			return nil, nil, usageError{errors.New("exec --side middle needs --wire tun")}
		}
		rel, err := newRelay(env, lab)
		if err != nil {
			return nil, nil, err
		}
		defer rel.release()
		f.prog.relay = rel
	}
	if kernel != "" {
		if newKernelPeer == nil {
			return nil, nil, errors.New("--kernel is not available in this build")
		}
		if lab.Wire.Kind() != "tun" {
			return nil, nil, usageError{fmt.Errorf("scenario %s puts the kernel on the %s side: that needs --wire tun", s.Name, kernel)}
		}
		var release func() error
		kp, release, err = newKernelPeer(lab.Wire, kernel, lab.Trace)
		if err != nil {
			return nil, nil, err
		}
		defer release()
		kf, ok := kp.(scenario.Faults)
		if !ok {
			return nil, nil, fmt.Errorf("the kernel peer cannot inject faults on the wire")
		}
		sl.Faults = kernelFaults{lab: lab, kernel: kernel, kf: kf}
		if sl.Net != nil {
			kn := kernelNet{c: sl.Net, kernel: kernel}
			if u, ok := lab.Wire.(interface{ NetInUserspace() bool }); ok {
				kn.userspace = u.NetInUserspace
			}
			sl.Net = kn
		}
		sl.Kernel = kernel
		if kernel == "client" {
			sl.Client = kp
		} else {
			sl.Server = kp
		}
	}
	if stream {
		// After the kernel peer, if any: its address is not its host's.
		who := func(p stack.Peer) string {
			if p.Name() == kernel && f.prog != nil {
				return fmt.Sprintf("%s %v [your program: Linux kernel]", p.Name(), p.Addr())
			}
			if p.Name() == kernel {
				return fmt.Sprintf("%s %v [Linux kernel]", p.Name(), p.Addr())
			}
			return fmt.Sprintf("%s %v", p.Name(), p.Addr())
		}
		if f.prog != nil && f.prog.relay != nil {
			fmt.Fprintf(env.Stderr, "# scenario %s on the %s wire (%s, relay %v and %v [your program: Linux kernel], %s)\n", s.Name, lab.Wire.Kind(),
				who(sl.Client), f.prog.relay.accept.Addr(), f.prog.relay.connect.Addr(), who(sl.Server))
		} else {
			fmt.Fprintf(env.Stderr, "# scenario %s on the %s wire (%s, %s)\n", s.Name, lab.Wire.Kind(), who(sl.Client), who(sl.Server))
		}
	}
	var res *scenario.Result
	if f.prog != nil {
		res = f.prog.drive(ctx, env, lab, sl, s, opt)
	} else {
		res = scenario.Run(ctx, s, sl, opt)
	}
	if sy, ok := kp.(interface{ Sync() }); ok {
		sy.Sync() // the kernel's last events are in the trace before it is shown
	}
	if f.prog != nil && f.prog.relay != nil && !res.Interrupted {
		f.prog.relay.sync()
		f.prog.relay.verdicts(lab.Trace)
	}
	stopProgress()
	if out != nil {
		out.Close() // everything streamed before the summary
	}
	if err := finishLongRun(); err != nil {
		return nil, nil, err
	}
	events := lab.Trace.Events()
	if stream && f.format == "text" {
		var rows []render.LedgerRow
		for _, h := range []*stack.Host{lab.Client, lab.Server} {
			if kernel == h.Name() {
				continue
			}
			for _, c := range h.Conns() {
				rows = append(rows, render.LedgerRow{Host: h.Name(), Conn: c.ID(), Ledger: c.Ledger()})
			}
		}
		render.Ledgers(env.Stdout, rows)
	}
	if stream && f.format == "ladder" {
		if err := ladder(env.Stdout, events); err != nil {
			return nil, nil, err
		}
	}
	return res, events, nil
}

func writeExtras(f *runFlags, events []trace.Event, title string) error {
	if f.svg != "" {
		var b bytes.Buffer
		if err := svg(&b, events, title); err != nil {
			return err
		}
		if err := os.WriteFile(f.svg, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write --svg: %w", err)
		}
	}
	if f.pcap != "" && !f.pcapDone {
		if err := writePcap(f.pcap, f.pcapView, events); err != nil {
			return err
		}
	}
	return nil
}

// outcome is the error a finished run returns: nil when every expectation
// held, interrupted after Ctrl-C, errSilent (exit 1, already reported)
// otherwise.
func outcome(res *scenario.Result) error {
	switch {
	case res.Interrupted:
		return interrupted{where: lineOf(res.Where)}
	case !res.OK():
		return errSilent
	}
	return nil
}

// lineOf writes a position as file:line.
func lineOf(p scenario.Pos) string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// report prints the failed expectations with the trace around each, the
// step that could not run, and a summary line.
func report(w io.Writer, res *scenario.Result, events []trace.Event) {
	for _, fl := range res.Failures {
		word := "FAIL"
		if fl.Stop {
			word = "STOP"
		}
		fmt.Fprintf(w, "%s %s: %s\n     %s\n", word, fl.Pos, render.Printable(fl.Step), fl.Msg)
		at := min(fl.At, len(events)) // a summarised trace is shorter than what was recorded
		from := max(0, at-8)
		if at > 0 {
			fmt.Fprintf(w, "     trace before it:\n")
			t := render.NewText(w, render.TextOptions{NoBuffers: true})
			for _, e := range events[:at] {
				line := t.Line(e)
				if e.Index >= from && line != "" {
					fmt.Fprint(w, "     "+strings.ReplaceAll(strings.TrimRight(line, "\n"), "\n", "\n     ")+"\n")
				}
			}
		}
	}
	fmt.Fprintf(w, "# %s: %s\n", res.Script.Name, summary(res))
}

// summary says in one line how a run ended.
func summary(res *scenario.Result) string {
	held := fmt.Sprintf("%d of %d expectations failed", res.Failed(), res.Checked)
	switch {
	case res.Checked == 0:
		held = "no expectation was checked"
	case res.Checked == 1 && res.Failed() == 0:
		held = "the one expectation checked held"
	case res.Failed() == 0:
		held = fmt.Sprintf("the %d expectations checked held", res.Checked)
	}
	switch {
	case res.Interrupted:
		return fmt.Sprintf("interrupted at %s before the script ended; %s", lineOf(res.Where), held)
	case res.Stopped:
		return fmt.Sprintf("stopped at %s: that step could not run, the rest of the script was skipped; %s", lineOf(res.Where), held)
	case res.OK() && res.Checked > 0:
		return fmt.Sprintf("all %d expectations held", res.Checked)
	}
	return held
}

// catcher keeps the first panic of functions run on goroutines tcplab does
// not own (the live renderer's), so that the command's goroutine can raise
// it again and Main reports it as a bug instead of Go crashing with exit 2.
type catcher struct {
	mu  sync.Mutex
	err *panicError
}

// catch wraps write: a panic in it is kept, and later events are dropped.
func (c *catcher) catch(write func(trace.Event)) func(trace.Event) {
	return func(e trace.Event) {
		c.mu.Lock()
		failed := c.err != nil
		c.mu.Unlock()
		if failed {
			return
		}
		defer func() {
			if p := recover(); p != nil {
				c.mu.Lock()
				if c.err == nil {
					c.err = &panicError{val: p, stack: debug.Stack()}
				}
				c.mu.Unlock()
			}
		}()
		write(e)
	}
}

// raise panics with the panic caught, if any.
func (c *catcher) raise() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		panic(*c.err)
	}
}

// kernelFaults routes the wire steps of a run with a kernel peer: what the
// kernel sends is held or dropped on the wire by the kernel peer's filter,
// what the gVisor host sends by its tap.
type kernelFaults struct {
	lab    *stack.Lab
	kernel string
	kf     scenario.Faults
}

func (k kernelFaults) Hold() {
	k.lab.Hold()
	k.kf.Hold()
}

func (k kernelFaults) Release(host string) error {
	if host == k.kernel {
		return k.kf.Release(host)
	}
	return k.lab.Release(host)
}

func (k kernelFaults) Drop(host string, n int, match func(flags string) bool, what string) error {
	if host == k.kernel {
		return k.kf.Drop(host, n, match, what)
	}
	return k.lab.Drop(host, n, match, what)
}

// kernelNet guards the network conditions of a run with a kernel peer:
// netem shapes what leaves a TUN device toward a gVisor host, which
// covers what the kernel sends, but not what it receives (that enters the
// kernel on the other device's ingress, where no qdisc is installed). The
// userspace conditions of the TUN wire (kernels without netem) cover both.
type kernelNet struct {
	c         stack.Conditioner
	kernel    string
	userspace func() bool // nil: never
}

func (k kernelNet) SetConditions(dir stack.Direction, c stack.Conditions) error {
	if dir.To() == k.kernel && !c.IsZero() {
		if k.userspace != nil {
			if err := k.c.SetConditions(dir, c); err != nil || k.userspace() {
				return err
			}
			k.c.SetConditions(dir, stack.Conditions{}) // netem: it would act on nothing
		}
		return fmt.Errorf("net %s: conditions toward a kernel peer are not supported yet (they act where the kernel hands packets to a gVisor host's TUN device; the kernel receives from the other device); only %s->%s can be conditioned", dir, k.kernel, dir.From())
	}
	return k.c.SetConditions(dir, c)
}

// tunNet notes, when conditions are set on the TUN wire, who applies them:
// the kernel's netem, which does not say what it does to which segment (a
// trace without "lost" notes there is not a trace without losses), or,
// on a kernel without netem, tcplab in userspace, which notes each fate.
type tunNet struct {
	c   stack.Conditioner
	rec *trace.Recorder
}

func (s tunNet) SetConditions(dir stack.Direction, c stack.Conditions) error {
	if err := s.c.SetConditions(dir, c); err != nil {
		return err
	}
	if c.IsZero() {
		return nil
	}
	text := fmt.Sprintf("net %s: the kernel's netem on %s's TUN device applies this; it does not say which segments it loses, delays, reorders, duplicates or corrupts", dir, dir.To())
	if u, ok := s.c.(interface{ NetInUserspace() bool }); ok && u.NetInUserspace() {
		text = fmt.Sprintf("net %s: this kernel has no netem: tcplab applies this itself, in userspace, to the packets on their way between the TUN devices and the kernel, and notes what it does to each", dir)
	}
	s.rec.Emit(trace.Event{Host: dir.From(), Kind: trace.Note, Text: text})
	return nil
}
