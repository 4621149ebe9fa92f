// Package cli provides tcplab's command line: run, check, list. It builds
// labs on the wire the user picks and renders their traces. It does not
// create TUN devices itself: the caller (cmd/tcplab) passes a constructor,
// so that demo never imports tun and never needs root.
package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// Env is what the command line gets from its caller.
type Env struct {
	// NewTUN builds the TUN wire (needs root). Nil means the TUN wire is
	// not available in this build.
	NewTUN func(ctx context.Context, cfg WireConfig) (stack.Wire, error)
	// NewKernelPeer puts a real Linux socket API on side ("client" or
	// "server") of a TUN wire, recording into rec. release frees it.
	// Nil means --kernel is not available in this build.
	NewKernelPeer func(w stack.Wire, side string, rec *trace.Recorder) (p stack.Peer, release func() error, err error)
	// Stdin, Stdout and Stderr default to the process's.
	Stdin          *os.File
	Stdout, Stderr io.Writer
}

// WireConfig is what a run asks of the TUN wire.
type WireConfig struct {
	// MTU of both links.
	MTU int
	// KernelFinWait2, if set, is the orphaned FIN-WAIT-2 timeout of the
	// Linux kernel in the lab namespace (tcp_fin_timeout), so that a
	// kernel peer follows a scenario's "config finwait2".
	KernelFinWait2 time.Duration
}

// Exit codes.
const (
	ExitOK      = 0 // every expectation held
	ExitFailure = 1 // an expectation failed or the lab could not run
	ExitUsage   = 2 // bad command line or scenario file
)

// usageError marks errors that are the user's command line.
type usageError struct{ error }

// Main runs the command line with args (without the program name) and
// returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	root := newRoot(&env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(env.Stderr, "tcplab:", err)
	var ue usageError
	var pe *scenario.Error
	switch {
	case errors.As(err, &ue), errors.As(err, &pe):
		return ExitUsage
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"),
		strings.HasPrefix(err.Error(), "accepts "), strings.HasPrefix(err.Error(), "requires "),
		strings.Contains(err.Error(), "invalid argument"), strings.HasPrefix(err.Error(), "flag needs"):
		return ExitUsage
	}
	return ExitFailure
}

// runFlags are the flags every run takes.
type runFlags struct {
	wire     string
	format   string
	mtu      int
	explain  bool
	arrivals bool
	noBuf    bool
	svg      string
	pcap     string
	timeout  time.Duration
	kernel   string
	pcapView string
	realtime bool
	seed     uint64
}

func (f *runFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.wire, "wire", "tun", "the wire between the hosts: tun (real TUN devices and kernel routing, needs root) or memory (in-process, no root)")
	fl.StringVar(&f.format, "format", "text", "output: text (timeline), json (one event per line), ladder (sequence diagram)")
	fl.IntVar(&f.mtu, "mtu", 1500, "MTU of the links, 576-65535")
	fl.BoolVar(&f.explain, "explain", false, "add a plain-language note under important events")
	fl.BoolVar(&f.arrivals, "arrivals", false, "also print each segment as its receiver saw it")
	fl.BoolVar(&f.noBuf, "no-buffers", false, "leave buffer levels out of the timeline")
	fl.StringVar(&f.svg, "svg", "", "also write the ladder diagram as SVG to this file")
	fl.StringVar(&f.pcap, "pcap", "", "also write every packet both hosts saw to this pcapng file")
	fl.StringVar(&f.pcapView, "pcap-view", "both", "whose packets --pcap writes: both (one interface per host; Wireshark flags the second copy as a retransmission), client or server")
	fl.DurationVar(&f.timeout, "step-timeout", 10*time.Second, "give up on a blocking call after this long")
	fl.BoolVar(&f.realtime, "realtime", false, "on the memory wire, run on the wall clock instead of virtual time")
	fl.Uint64Var(&f.seed, "seed", 1, "on the memory wire, the seed for ISNs and ports (same seed, same trace)")
	fl.StringVar(&f.kernel, "kernel", "", "put a real Linux kernel socket on this side: client or server (TUN wire only)")
}

func (f *runFlags) validate() error {
	if f.wire != "tun" && f.wire != "memory" {
		return usageError{fmt.Errorf("--wire %q: want tun or memory", f.wire)}
	}
	switch f.format {
	case "text", "json", "ladder":
	default:
		return usageError{fmt.Errorf("--format %q: want text, json or ladder", f.format)}
	}
	if f.kernel != "" && f.kernel != "client" && f.kernel != "server" {
		return usageError{fmt.Errorf("--kernel %q: want client or server", f.kernel)}
	}
	if f.kernel != "" && f.wire != "tun" {
		return usageError{fmt.Errorf("--kernel needs --wire tun: the kernel socket reaches the other host through the TUN device")}
	}
	switch f.pcapView {
	case "both", "client", "server":
	default:
		return usageError{fmt.Errorf("--pcap-view %q: want both, client or server", f.pcapView)}
	}
	if f.mtu < 576 || f.mtu > 65535 {
		return usageError{fmt.Errorf("--mtu %d: want 576-65535", f.mtu)}
	}
	return nil
}

func newRoot(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "tcplab",
		Short: "a userspace TCP laboratory: two gVisor stacks on real TUN devices, every segment explained",
		Long: `tcplab runs two TCP stacks (gVisor's netstack) as a client and a server, joined by
real TUN devices with the Linux kernel routing between them inside a private network
namespace, and shows everything: each socket call, segment, state change and buffer
level, with the reason for every FIN and RST.

The founding experiment: a client writes "aaa" and the server answers "Hi, aaa" after
5 s. If the client close()s meanwhile, the answer meets a dead socket and the client
stack sends RST; if it shutdown(SHUT_WR)s instead, it still reads the answer and the
connection ends with a clean FIN exchange.

  sudo tcplab run close                 # the close() experiment over TUN
  sudo tcplab run shutdown              # the shutdown(SHUT_WR) experiment
  tcplab run close --wire memory        # no root: in-process wire
  tcplab run my.lab --format json       # your own scenario, JSON lines
  tcplab check --wire memory            # run the whole catalogue, check expectations
  tcplab list                           # the built-in scenarios
  tcplab syntax                         # the scenario language at a glance
  sudo tcplab chat                      # the article's programs, interactive
  sudo tcplab diff close                # gVisor vs the Linux kernel`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRun(env), newCheck(env), newList(env), newShow(env), newSyntax(env), newChat(env), newDiff(env))
	return root
}

func newList(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list the built-in scenarios with a line about each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, n := range scenario.Names() {
				s, err := scenario.Builtin(n)
				if err != nil {
					return err
				}
				first, _, _ := strings.Cut(s.Doc, "\n")
				_, first, _ = strings.Cut(first, ": ")
				fmt.Fprintf(env.Stdout, "%-20s %s\n", n, first)
			}
			return nil
		},
	}
}

func newSyntax(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "syntax",
		Short: "the .lab scenario language at a glance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(env.Stdout, scenario.Reference)
			return err
		},
	}
}

func newShow(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "print a built-in scenario's source (a starting point for your own .lab file)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := scenario.Source(args[0])
			if err != nil {
				return usageError{err}
			}
			_, err = env.Stdout.Write(b)
			return err
		},
	}
}

// load parses a built-in name or a .lab file.
func load(arg string) (*scenario.Script, error) {
	if strings.HasSuffix(arg, ".lab") || strings.ContainsRune(arg, filepath.Separator) {
		f, err := os.Open(arg)
		if err != nil {
			return nil, usageError{fmt.Errorf("scenario file: %w", err)}
		}
		defer f.Close()
		return scenario.Parse(arg, f)
	}
	s, err := scenario.Builtin(arg)
	if err != nil {
		var pe *scenario.Error
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, usageError{err}
	}
	return s, nil
}

// newLab builds a lab on the chosen wire for script s, and the runner
// options that go with its clock.
func newLab(ctx context.Context, env *Env, f *runFlags, s *scenario.Script, keepPackets bool) (*stack.Lab, scenario.Options, error) {
	opt := scenario.Options{StepTimeout: f.timeout}
	hc := stack.Config{TimeWait: s.TimeWait, FinWait2Timeout: s.FinWait2, KeepPackets: keepPackets}
	if f.wire == "memory" {
		lab, w, err := memwire.NewLab(memwire.LabConfig{Host: hc, Wire: memwire.Config{MTU: f.mtu}, RealTime: f.realtime, Seed: f.seed})
		if err != nil {
			return nil, opt, err
		}
		if !f.realtime {
			opt.Sleep, opt.Settle = w.Sleep, w.Settle
		}
		return lab, opt, nil
	}
	var w stack.Wire
	switch f.wire {
	case "tun":
		if env.NewTUN == nil {
			return nil, opt, errors.New("the TUN wire is not available in this build; use --wire memory")
		}
		var err error
		if w, err = env.NewTUN(ctx, WireConfig{MTU: f.mtu, KernelFinWait2: s.FinWait2}); err != nil {
			return nil, opt, err
		}
	}
	lab, err := stack.NewLab(w, hc, false)
	return lab, opt, err
}

// watch cancels ctx on SIGINT/SIGTERM so that a run tears its lab down.
func watch(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func newRun(env *Env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run NAME|FILE.lab",
		Short: "run one scenario and show its trace (built-in NAME from 'tcplab list', or a .lab file)",
		Example: `  sudo tcplab run close
  sudo tcplab run shutdown --format ladder
  tcplab run close --wire memory --format json
  sudo tcplab run close --pcap close.pcapng --svg close.svg`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			s, err := load(args[0])
			if err != nil {
				return err
			}
			ctx, stop := watch(cmd.Context())
			defer stop()
			res, events, err := runOne(ctx, env, &f, s, true)
			if err != nil {
				return err
			}
			if err := writeExtras(&f, events, s.Name); err != nil {
				return err
			}
			report(env.Stderr, res, events)
			if !res.OK() {
				return errSilent
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

// errSilent is an error already reported to the user.
var errSilent = errors.New("expectations failed")

// runOne runs s on a fresh lab, streaming its trace to stdout when stream.
func runOne(ctx context.Context, env *Env, f *runFlags, s *scenario.Script, stream bool) (*scenario.Result, []trace.Event, error) {
	lab, opt, err := newLab(ctx, env, f, s, f.pcap != "")
	if err != nil {
		return nil, nil, err
	}
	defer lab.Close()
	if os.Getenv("TCPLAB_TEST_PANIC") == "after-setup" {
		// Test hook: the end-to-end tests check that a panic leaves
		// nothing behind.
		panic("tcplab: TCPLAB_TEST_PANIC=after-setup")
	}
	if stream {
		if tw, ok := lab.Wire.(interface{ TcpdumpCommand() string }); ok {
			fmt.Fprintf(env.Stderr, "# lab namespace ready; to watch the wire: %s\n", tw.TcpdumpCommand())
		}
		fmt.Fprintf(env.Stderr, "# scenario %s on the %s wire (client %v, server %v)\n", s.Name, lab.Wire.Kind(), lab.Client.Addr(), lab.Server.Addr())
		switch f.format {
		case "text":
			t := render.NewText(env.Stdout, render.TextOptions{Explain: f.explain, Arrivals: f.arrivals, NoBuffers: f.noBuf})
			lab.Trace.Subscribe(func(e trace.Event) { t.Write(e) })
		case "json":
			j := render.NewJSON(env.Stdout)
			lab.Trace.Subscribe(func(e trace.Event) { j.Write(e) })
		}
	}
	sl := scenario.Lab{Client: lab.Client.Peer(), Server: lab.Server.Peer(), Trace: lab.Trace, Faults: lab}
	kernel := f.kernel
	if kernel == "" {
		kernel = s.Kernel
	}
	if kernel != "" {
		if env.NewKernelPeer == nil {
			return nil, nil, errors.New("--kernel is not available in this build")
		}
		if lab.Wire.Kind() != "tun" {
			return nil, nil, usageError{fmt.Errorf("scenario %s puts the kernel on the %s side: that needs --wire tun", s.Name, kernel)}
		}
		kp, release, err := env.NewKernelPeer(lab.Wire, kernel, lab.Trace)
		if err != nil {
			return nil, nil, err
		}
		defer release()
		if kernel == "client" {
			sl.Client = kp
		} else {
			sl.Server = kp
		}
	}
	res := scenario.Run(ctx, s, sl, opt)
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
	if f.pcap != "" {
		if err := writePcap(f.pcap, f.pcapView, events); err != nil {
			return err
		}
	}
	return nil
}

// report prints the failed expectations with the trace around each.
func report(w io.Writer, res *scenario.Result, events []trace.Event) {
	for _, fl := range res.Failures {
		fmt.Fprintf(w, "FAIL %s: %s\n     %s\n", fl.Pos, fl.Step, fl.Msg)
		from := max(0, fl.At-8)
		if fl.At > 0 {
			fmt.Fprintf(w, "     trace before it:\n")
			t := render.NewText(w, render.TextOptions{NoBuffers: true})
			for _, e := range events[:min(fl.At, len(events))] {
				line := t.Line(e)
				if e.Index >= from && line != "" {
					fmt.Fprint(w, "     "+strings.ReplaceAll(strings.TrimRight(line, "\n"), "\n", "\n     ")+"\n")
				}
			}
		}
	}
	if res.OK() {
		fmt.Fprintf(w, "# %s: all %d expectations held\n", res.Script.Name, res.Checked)
	} else {
		fmt.Fprintf(w, "# %s: %d of %d expectations failed\n", res.Script.Name, len(res.Failures), res.Checked)
	}
}

func newCheck(env *Env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "check [FILE.lab|NAME...]",
		Short: "run scenarios and check their expectations (no arguments: the whole built-in catalogue)",
		Example: `  tcplab check --wire memory
  sudo tcplab check
  sudo tcplab check mytest.lab close`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			if len(args) == 0 {
				args = scenario.Names()
			}
			var scripts []*scenario.Script
			for _, a := range args {
				s, err := load(a)
				if err != nil {
					return err
				}
				scripts = append(scripts, s)
			}
			ctx, stop := watch(cmd.Context())
			defer stop()
			passed, failed := 0, 0
			progress := render.IsTerminal(os.Stderr)
			for i, s := range scripts {
				start := time.Now()
				if progress {
					fmt.Fprintf(env.Stderr, "\r[%d/%d] %s ...\x1b[K", i+1, len(scripts), s.Name)
				}
				res, events, err := runOne(ctx, env, &f, s, false)
				if err != nil {
					return err
				}
				if progress {
					fmt.Fprint(env.Stderr, "\r\x1b[K")
				}
				if res.OK() {
					passed++
					fmt.Fprintf(env.Stdout, "ok   %-22s %2d expectations  %6.2fs\n", s.Name, res.Checked, time.Since(start).Seconds())
				} else {
					failed++
					fmt.Fprintf(env.Stdout, "FAIL %-22s %2d expectations  %6.2fs\n", s.Name, res.Checked, time.Since(start).Seconds())
					report(env.Stdout, res, events)
				}
				if ctx.Err() != nil {
					break
				}
			}
			fmt.Fprintf(env.Stdout, "%d passed, %d failed\n", passed, failed)
			if failed > 0 {
				return errSilent
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
