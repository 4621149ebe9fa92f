package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/explain"
	"github.com/tcplab/tcplab/demo/replay"
	"github.com/tcplab/tcplab/demo/scenario"
)

// replayFlags are the flags of 'tcplab replay'.
type replayFlags struct {
	conn      string
	out       string
	writeOnly bool
	wire      string
	noKernel  bool
	timeout   time.Duration
}

// newReplay is `tcplab replay FILE --conn N`: a captured connection as a
// .lab scenario (package replay), then run to see whether its teardown
// reproduces.
func newReplay(env *Env) *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay FILE [--conn N|ADDR:PORT-ADDR:PORT]",
		Short: "turn a captured connection into a .lab scenario and run it: does the teardown reproduce?",
		Long: `replay reads a capture (as explain does) and writes a .lab scenario that does what
the capture shows the connection's applications did: who connected, who wrote how many
bytes when (segments coalesced into writes while back to back), who read (where the
receiver's window grew again; a zero window means it stopped reading), who half-closed
with shutdown(SHUT_WR) or close()d, and who aborted (close() with unread data, or
SO_LINGER 0, also as a stand-in for a timeout or a middlebox's RST). Every step is an
inferred call, commented with the packets it rests on; the scenario is plain text to
read and edit.

Then, unless --write-only, it runs the scenario with gVisor on both sides (the memory
wire, or --wire tun), and, as root with TUN, with the Linux kernel as client and as
server, and says for each whether the teardown reproduces: the same FINs and RSTs from
the same sides in the same order, and where it differs.

The scenario goes to -o FILE, or to standard output; the results follow as comment
lines. Exit status: 0 when the gVisor run reproduces the teardown (the kernel runs are
reported, not judged), 1 when it does not or a run could not run, 2 for a bad command
line.`,
		Example: `  tcplab run close --wire memory --pcap close.pcapng && tcplab replay close.pcapng --conn 1
  tcplab replay capture.pcap --conn 10.0.0.1:40000-10.0.0.2:80 -o conn.lab --write-only
  sudo tcplab replay capture.pcap --conn 3 --wire tun      # gVisor over TUN, then the kernel on each side`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.conn != "" {
				if _, _, _, err := explain.ParseConn(f.conn); err != nil {
					return usageError{err}
				}
			}
			if f.wire != "memory" && f.wire != "tun" {
				return usageError{fmt.Errorf("--wire %q: want memory or tun", f.wire)}
			}
			if err := validTimeout(f.timeout); err != nil {
				return err
			}
			if err := checkOutput("-o", f.out, args); err != nil {
				return err
			}
			r, err := buildReplay(args[0], f.conn, env)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f.out != "" {
				if err := os.WriteFile(f.out, []byte(r.Lab), 0o644); err != nil {
					return fmt.Errorf("replay: write -o: %w", err)
				}
				fmt.Fprintf(env.Stderr, "# wrote the replay of connection %d to %s\n", r.Conn, f.out)
			} else if _, err := io.WriteString(w, r.Lab); err != nil {
				return err
			}
			if f.writeOnly {
				return nil
			}
			name := f.out
			if name == "" {
				name = fmt.Sprintf("replay-conn%d.lab", r.Conn)
			}
			s, err := scenario.Parse(name, strings.NewReader(r.Lab))
			if err != nil {
				return fmt.Errorf("replay: the scenario written does not parse (a bug): %w", err)
			}
			ctx, stop := watch(cmd.Context())
			defer stop()
			return runReplays(ctx, env, &f, s, r, w)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.conn, "conn", "", "the connection: its number as explain gives it, or ADDR:PORT-ADDR:PORT (the first on that 4-tuple); may be left out when the capture has one connection")
	fl.StringVarP(&f.out, "output", "o", "", "write the .lab scenario to this file (default: standard output)")
	fl.BoolVar(&f.writeOnly, "write-only", false, "write the scenario, do not run it")
	fl.StringVar(&f.wire, "wire", "memory", "the wire of the gVisor run: memory (no root) or tun")
	fl.BoolVar(&f.noKernel, "no-kernel", false, "skip the runs with the Linux kernel as client and as server")
	fl.DurationVar(&f.timeout, "step-timeout", 10*time.Second, "give up on a blocking call after this long")
	return cmd
}

// buildReplay explains the capture at path (or standard input for "-"),
// keeping the packets of the connection conn selects only, and builds its
// replay.
func buildReplay(path, conn string, env *Env) (*replay.Replay, error) {
	only := conn == "" // the capture's only connection: it is number 1
	if only {
		conn = "1"
	}
	match, err := explain.ConnFilter(conn)
	if err != nil {
		return nil, usageError{err}
	}
	var in io.Reader
	name := path
	if path == "-" {
		name, in = "standard input", env.stdin()
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		in = f
	}
	var found *explain.Conn
	sum, err := explain.AnalyzeSome(name, in, match, func(c *explain.Conn) {
		if found == nil && match(c) {
			found = c
		}
	})
	if err != nil {
		return nil, err
	}
	if only && sum.Conns != 1 {
		return nil, usageError{fmt.Errorf("replay: %s has %d connections: choose one with --conn N or --conn ADDR:PORT-ADDR:PORT (tcplab explain %s shows them numbered)", name, sum.Conns, path)}
	}
	if found == nil {
		return nil, fmt.Errorf("replay: %s: no connection %s (the capture has %d)", name, conn, sum.Conns)
	}
	return replay.Build(found, replay.Options{Source: filepath.Base(name)})
}

// replayRun is one run of the replayed scenario.
type replayRun struct {
	wire, kernel string
}

func (r replayRun) String() string {
	switch r.kernel {
	case "":
		return fmt.Sprintf("gVisor on both sides (%s wire)", r.wire)
	default:
		return fmt.Sprintf("Linux as %s (tun wire)", r.kernel)
	}
}

// runReplays runs s as the flags say and writes, as comment lines, whether
// each run's teardown is the capture's.
func runReplays(ctx context.Context, env *Env, f *replayFlags, s *scenario.Script, r *replay.Replay, w io.Writer) error {
	runs := []replayRun{{wire: f.wire}}
	kernelWhy := ""
	switch {
	case f.noKernel:
		kernelWhy = "--no-kernel"
	case env.NewTUN == nil || env.NewKernelPeer == nil:
		kernelWhy = "this build has no TUN wire"
	case os.Geteuid() != 0:
		kernelWhy = "they need root (the TUN wire)"
	default:
		runs = append(runs, replayRun{wire: "tun", kernel: "client"}, replayRun{wire: "tun", kernel: "server"})
	}
	fmt.Fprintf(w, "#\n# replay of connection %d: the capture's teardown is %s\n", r.Conn, patternText(r.Pattern))
	var failed error
	for i, run := range runs {
		rf := runFlags{wire: run.wire, format: "text", mtu: 1500, timeout: f.timeout, kernel: run.kernel, seed: 1}
		res, events, err := runOne(ctx, env, &rf, s, false)
		if ctx.Err() != nil {
			return interrupted{where: run.String()}
		}
		if err != nil {
			fmt.Fprintf(w, "# %s: could not run: %v\n", run, err)
			if i == 0 {
				failed = errSilent
			}
			continue
		}
		got := replay.Pattern(events)
		verdict := "reproduces: " + patternText(got)
		if d := replay.Differ(r.Pattern, got); d != "" {
			verdict = "differs: " + d + " (this run: " + patternText(got) + ")"
			// The reason of this run's first FIN or RST the capture does
			// not have where it has it.
			for i, k := range got {
				if i >= len(r.Pattern) || r.Pattern[i] != k {
					if why := replay.Reason(events, k); why != "" {
						verdict += "; its " + k + ": " + why
					}
					break
				}
			}
			if i == 0 {
				failed = errSilent
			}
		}
		if res.Stopped {
			verdict += fmt.Sprintf("; stopped at line %d: %s", res.Where.Line, firstFailure(res))
			if i == 0 {
				failed = errSilent
			}
		} else if n := res.Failed(); n > 0 {
			verdict += fmt.Sprintf("; %d expectation(s) failed", n)
		}
		fmt.Fprintf(w, "# %s: %s\n", run, verdict)
	}
	if kernelWhy != "" {
		fmt.Fprintf(w, "# the runs with the Linux kernel as client and as server were skipped: %s\n", kernelWhy)
	}
	return failed
}

// firstFailure is the message of a result's stopping failure.
func firstFailure(res *scenario.Result) string {
	for _, f := range res.Failures {
		if f.Stop {
			return f.Msg
		}
	}
	return "?"
}

// patternText writes a teardown pattern: "client FIN, then client RST".
func patternText(p []string) string {
	if len(p) == 0 {
		return "no FIN or RST"
	}
	return strings.Join(p, ", then ")
}
