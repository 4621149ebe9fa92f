package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
	// The live output runs on its own goroutine (render.Async): a slow
	// terminal must not hold up the stacks.
	var out *render.Async
	defer func() {
		if out != nil {
			out.Close()
		}
	}()
	if stream {
		if tw, ok := lab.Wire.(interface{ TcpdumpCommand() string }); ok {
			fmt.Fprintf(env.Stderr, "# lab namespace ready; to watch the wire: %s\n", tw.TcpdumpCommand())
		}
		fmt.Fprintf(env.Stderr, "# scenario %s on the %s wire (client %v, server %v)\n", s.Name, lab.Wire.Kind(), lab.Client.Addr(), lab.Server.Addr())
		fmt.Fprintf(env.Stderr, "# connections still open at the end are abandoned silently: the hosts leave the wire before their stacks are destroyed\n")
		// On a terminal, long real-time sleeps show how far they have got.
		prog := &progress{w: env.Stderr}
		if opt.Sleep == nil && env.Stderr == io.Writer(os.Stderr) && render.IsTerminal(os.Stderr) {
			opt.Sleep = prog.sleep
		}
		switch f.format {
		case "text":
			t := render.NewText(env.Stdout, render.TextOptions{Explain: f.explain, Arrivals: f.arrivals, NoBuffers: f.noBuf})
			out = render.NewAsync(func(e trace.Event) { prog.clear(); t.Write(e) })
		case "json":
			j := render.NewJSON(env.Stdout)
			out = render.NewAsync(func(e trace.Event) { j.Write(e) })
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
	if out != nil {
		lab.Trace.Subscribe(out.Push)
	}
	res := scenario.Run(ctx, s, sl, opt)
	if out != nil {
		out.Close() // everything streamed before the summary
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
