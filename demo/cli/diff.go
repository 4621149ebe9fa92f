package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/diff"
	"github.com/tcplab/tcplab/demo/scenario"
)

// diffFlags are the flags of 'tcplab diff'.
type diffFlags struct {
	all     bool
	buffers bool
	serial  bool
	mtu     int
	timeout time.Duration
}

// newDiff returns the 'diff' command: a scenario run with gVisor on both
// sides and with the Linux kernel as client and as server, compared.
func newDiff(env *Env) *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff NAME|FILE.lab | --all",
		Short: "run a scenario with gVisor on both sides and with the Linux kernel as client and as server, and show where they differ (TUN wire, needs root)",
		Long: `diff runs a scenario three times over the TUN wire: gVisor on both sides (the
baseline), a real Linux socket as the client, a real Linux socket as the server.
It reduces each trace to comparable lines — the segments on the wire with
sequence numbers relative to each SYN, the calls and their results, each
connection's states — and prints, for each kernel variant, the baseline's lines
with what differs marked "-" (gVisor only) and "+" (Linux only). FIN and RST
reasons are compared by cause ("close()", "data after close()", ...) and listed
in full apart, since the kernel's evidence is worded differently.

With --all it runs the whole catalogue and prints one row per scenario.

Exit status: 0 when every run ran to its end and the baseline (gVisor on both
sides) held all its expectations, whatever the differences: differences are
what diff reports, not a failure, and a scenario's expectations describe
gVisor, so where Linux behaves otherwise the report lists the expectations the
kernel variant did not meet, as differences. 1 when the baseline failed an
expectation, a run could not run to its end, or a lab could not be built. 2 for a bad command line or scenario file,
130 when interrupted.`,
		Example: `  sudo tcplab diff close
  sudo tcplab diff shutdown --buffers
  sudo tcplab diff --all`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.all != (len(args) == 0) {
				return usageError{errors.New("give one scenario (NAME or FILE.lab), or --all")}
			}
			if len(args) > 1 {
				return usageError{fmt.Errorf("diff takes one scenario, got %d", len(args))}
			}
			if f.mtu < 576 || f.mtu > 65535 {
				return usageError{fmt.Errorf("--mtu %d: want 576-65535", f.mtu)}
			}
			if err := validTimeout(f.timeout); err != nil {
				return err
			}
			if env.NewTUN == nil || env.NewKernelPeer == nil {
				return errors.New("diff needs the TUN wire and the kernel peer, which this build does not have")
			}
			var scripts []*scenario.Script
			if f.all {
				for _, n := range scenario.Names() {
					s, err := scenario.Builtin(n)
					if err != nil {
						return err
					}
					scripts = append(scripts, s)
				}
			} else {
				s, err := load(args[0], env.stdin())
				if err != nil {
					return err
				}
				scripts = append(scripts, s)
			}
			ctx, stop := watch(cmd.Context())
			defer stop()
			run := diffRunner(env, &f)
			opt := diff.Options{Buffers: f.buffers, Serial: f.serial}
			fmt.Fprintf(env.Stderr, "# Linux %s vs gVisor netstack\n", kernelRelease())
			var reports []*diff.Report
			var failed []string
			for _, s := range scripts {
				start := time.Now()
				r, err := diff.Compare(ctx, s, run, opt)
				if ctx.Err() != nil {
					return interrupted{where: s.Name}
				}
				if err != nil {
					return diffHint(err, s.Name)
				}
				failed = append(failed, failedRuns(r)...)
				reports = append(reports, r)
				if f.all {
					fmt.Fprintf(env.Stderr, "# %s: %.1fs\n", s.Name, time.Since(start).Seconds())
				} else if err := r.Write(env.Stdout); err != nil {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			if f.all {
				if err := diff.WriteTable(env.Stdout, reports); err != nil {
					return err
				}
			}
			if len(failed) > 0 {
				fmt.Fprintf(env.Stderr, "# diff: expectations failed in %s\n", strings.Join(failed, "; "))
				return errSilent
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.all, "all", false, "compare every built-in scenario and print a table")
	fl.BoolVar(&f.buffers, "buffers", false, "also compare buffer levels")
	fl.BoolVar(&f.serial, "serial", false, "run the three variants one after the other instead of at once")
	fl.IntVar(&f.mtu, "mtu", 1500, "MTU of the links, 576-65535")
	fl.DurationVar(&f.timeout, "step-timeout", 10*time.Second, "give up on a blocking call after this long")
	return cmd
}

// diffRunner runs a script on a fresh TUN lab with the kernel on the given
// side, with runOne.
func diffRunner(env *Env, f *diffFlags) diff.RunFunc {
	return func(ctx context.Context, s *scenario.Script, kernel string) (_ diff.Run, err error) {
		// The variants run on goroutines of their own: a panic there
		// would bypass Main's recover and exit 2, the code of a usage
		// error.
		defer func() {
			if p := recover(); p != nil {
				err = panicError{val: p, stack: debug.Stack()}
			}
		}()
		rf := runFlags{wire: "tun", format: "text", mtu: f.mtu, timeout: f.timeout, kernel: kernel}
		sc := *s
		sc.Kernel = "" // the baseline is gVisor on both sides whatever the script says
		start := time.Now()
		res, events, err := runOne(ctx, env, &rf, &sc, false)
		if err != nil {
			return diff.Run{}, err
		}
		return diff.Run{Kernel: kernel, Events: events, Result: res, Elapsed: time.Since(start)}, nil
	}
}

// kernelRelease returns the running kernel's release, e.g. "6.18.44".
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "(unknown release)"
	}
	return strings.TrimSpace(string(b))
}

// failedRuns names the runs of r whose expectations did not all hold, e.g.
// "close with Linux as client (2 failed)".
func failedRuns(r *diff.Report) []string {
	var out []string
	runs := []diff.Run{r.Base}
	for _, v := range r.Variants {
		runs = append(runs, v.Run)
	}
	for _, run := range runs {
		if run.Result == nil || run.Result.OK() {
			continue
		}
		if run.Kernel != "" && !run.Result.Stopped {
			// A scenario's expectations describe gVisor; where Linux
			// behaves otherwise that is a difference, which the report
			// shows, not a failure of the run.
			continue
		}
		who := "gVisor on both sides"
		if run.Kernel != "" {
			who = "Linux as " + run.Kernel
		}
		what := fmt.Sprintf("%d failed", run.Result.Failed())
		if run.Result.Stopped {
			what += ", stopped at " + lineOf(run.Result.Where)
		}
		out = append(out, fmt.Sprintf("%s with %s (%s)", r.Script.Name, who, what))
	}
	return out
}

// diffHint replaces the "--wire memory" advice of a wire error, which diff
// does not take, with what does work without root.
func diffHint(err error, name string) error {
	msg := err.Error()
	if !strings.Contains(msg, "--wire memory") {
		return err
	}
	for _, advice := range []string{"; or use --wire memory, which needs no privileges", "; use --wire memory"} {
		msg = strings.Replace(msg, advice, "", 1)
	}
	return hinted{err, msg + "\ndiff always uses the TUN wire, since it runs the Linux kernel as one peer (--wire memory does not apply to it); " +
		"without root, 'tcplab run " + name + " --wire memory' shows the gVisor side alone"}
}

// hinted is err with a reworded message.
type hinted struct {
	err error
	msg string
}

func (h hinted) Error() string { return h.msg }
func (h hinted) Unwrap() error { return h.err }
