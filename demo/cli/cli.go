// Package cli provides tcplab's command line: run, check, list, show,
// syntax, chat, diff, explain and replay (cli.go: Main and the flags every run takes;
// run.go, check.go, catalog.go, chat.go, diff.go, explain.go, replay.go: the commands; output.go:
// SVG and pcapng files; capture.go: run --capture). It builds labs on the wire the user picks and
// renders their traces. It does not create TUN devices or kernel sockets
// itself: the caller (cmd/tcplab) passes constructors in Env, so that demo
// never imports tun and never needs root.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
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
	// StartCapture captures the TUN wire's devices for --capture. Nil
	// means --capture is not available in this build.
	StartCapture CaptureFunc
	// Program runs a user's program in the TUN wire (exec). Nil means exec
	// is not available in this build.
	Program *ProgramEnv
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
	// KernelSettings are sysctls ("net.ipv4.tcp_rfc1337", "1") to write
	// in the lab namespace: a scenario's "config kernel" settings.
	KernelSettings [][2]string
}

// Exit codes.
const (
	ExitOK          = 0   // every expectation held
	ExitFailure     = 1   // an expectation failed, a step or the lab could not run, or output could not be written
	ExitUsage       = 2   // bad command line or scenario file
	ExitBug         = 70  // tcplab itself failed (a panic): a bug to report (sysexits' EX_SOFTWARE)
	ExitInterrupted = 130 // stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)
)

// usageError marks errors that are the user's command line.
type usageError struct{ error }

// interrupted is the error of a run that Ctrl-C (or SIGTERM) stopped.
type interrupted struct{ where string }

func (e interrupted) Error() string {
	if e.where == "" {
		return "interrupted; the lab was torn down"
	}
	return "interrupted at " + e.where + "; the lab was torn down"
}

// Main runs the command line with args (without the program name) and
// returns the exit code. A panic in the command's goroutine is reported as
// a bug and exits with ExitBug; a write to stdout that fails (a full disk,
// a closed pipe) makes the exit code ExitFailure at least.
func Main(ctx context.Context, args []string, env Env) (code int) {
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	out := &checkedWriter{w: env.Stdout}
	env.Stdout = out
	defer func() {
		if p := recover(); p != nil {
			if pe, ok := p.(panicError); ok {
				reportBug(env.Stderr, pe.val, pe.stack)
			} else {
				reportBug(env.Stderr, p, debug.Stack())
			}
			code = ExitBug
			return
		}
		if out.err != nil && code != ExitUsage && code != ExitInterrupted {
			fmt.Fprintf(env.Stderr, "tcplab: write standard output: %v\n", out.err)
			code = max(code, ExitFailure)
		}
	}()
	root := newRoot(&env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var px programExit
	if errors.As(err, &px) {
		if px.msg != "" {
			fmt.Fprintln(env.Stderr, "tcplab:", px.msg)
		}
		return px.code
	}
	var pe2 panicError
	if errors.As(err, &pe2) {
		reportBug(env.Stderr, pe2.val, pe2.stack)
		return ExitBug
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintln(env.Stderr, "tcplab:", err)
	}
	var ue usageError
	var pe *scenario.Error
	var ie interrupted
	switch {
	case errors.As(err, &ie):
		return ExitInterrupted
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
	capture  string   // run only: see addCaptureFlag
	prog     *execRun // exec only: the program and its side
	full     bool     // exec only: --full-trace, see addLongRunFlag
	pcapDone bool     // --pcap was streamed during the run (startLongRun)
	netSpec  string   // run and check: see addNetFlag
	net      *scenario.Net
	// inputs are the scenario files of the run, which no output may
	// overwrite.
	inputs []string
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

// addNetFlag adds --net, network conditions for the whole run.
func (f *runFlags) addNetFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.netSpec, "net", "", `network conditions for the whole run, as after "net" in a scenario: e.g. "loss 5%", "delay 100ms jitter 10ms", "client->server loss 20%" (see tcplab syntax); the kernel's netem on the TUN wire, a seeded model on the memory wire (--seed)`)
}

func (f *runFlags) validate() error {
	if f.netSpec != "" {
		n, err := scenario.ParseNet(f.netSpec)
		if err != nil {
			return usageError{err}
		}
		if err := n.Apply(stack.Conditions{}).Validate(); err != nil {
			return usageError{fmt.Errorf("--net %q: %w", f.netSpec, err)}
		}
		if f.wire == "memory" && f.realtime {
			return usageError{fmt.Errorf("--net on the memory wire needs virtual time: drop --realtime")}
		}
		f.net = n
	}
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
	if err := validTimeout(f.timeout); err != nil {
		return err
	}
	if f.svg != "" && f.svg == f.pcap {
		return usageError{fmt.Errorf("--svg and --pcap name the same file %s", f.svg)}
	}
	for _, o := range []struct{ flag, path string }{{"--svg", f.svg}, {"--pcap", f.pcap}} {
		if err := checkOutput(o.flag, o.path, f.inputs); err != nil {
			return err
		}
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
	root.AddCommand(newRun(env), newCheck(env), newList(env), newShow(env), newSyntax(env), newChat(env), newDiff(env), newExec(env), newExplain(env), newReplay(env), newView(env))
	return root
}

// watch cancels ctx on SIGINT/SIGTERM so that a run tears its lab down.
func watch(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// panicError is a panic recovered on a goroutine of the command (diff's
// variants), carried back to Main to be reported as a bug.
type panicError struct {
	val   any
	stack []byte
}

func (p panicError) Error() string { return fmt.Sprintf("panic: %v", p.val) }

// reportBug says that a panic is tcplab's bug, with its stack.
func reportBug(w io.Writer, val any, stack []byte) {
	fmt.Fprintf(w, "tcplab: internal error: panic: %v\n"+
		"This is a bug in tcplab, not in your scenario or command line; please report it with the command and this message.\n%s", val, stack)
}

// errSilent is an error already reported to the user: exit 1, print
// nothing more.
var errSilent = errors.New("expectations failed")

// checkedWriter remembers the first error writing to w, so that Main can
// fail when standard output could not be written (the renderers write
// many lines and do not stop at the first error).
type checkedWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	c.err = err
	return n, err
}

// isStdout reports whether w writes to the process's standard output.
func isStdout(w io.Writer) bool { return unwrap(w) == io.Writer(os.Stdout) }

// unwrap returns the writer under Main's checkedWriter, for code that needs
// the file itself (a terminal).
func unwrap(w io.Writer) io.Writer {
	if c, ok := w.(*checkedWriter); ok {
		return c.w
	}
	return w
}

// validTimeout checks a --step-timeout value.
func validTimeout(d time.Duration) error {
	if d <= 0 || d > scenario.MaxDuration {
		return usageError{fmt.Errorf("--step-timeout %s: want more than 0 and at most %s", d, scenario.MaxDuration)}
	}
	return nil
}
