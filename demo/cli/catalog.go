package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
)

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

// load parses a built-in name, a .lab file, or standard input ("-"). Only
// regular files are read: a FIFO would block, a device or directory is
// not a scenario.
func load(arg string, stdin io.Reader) (*scenario.Script, error) {
	if arg == "-" {
		return scenario.Parse("stdin", stdin)
	}
	if isScenarioFile(arg) {
		fi, err := os.Stat(arg)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, usageError{fmt.Errorf("scenario file %s: %w", arg, err)}
		}
		if !fi.Mode().IsRegular() {
			return nil, usageError{fmt.Errorf("scenario file %s is %s, not a regular file; give a .lab file, or - to read standard input", arg, fileKind(fi.Mode()))}
		}
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
	hc := s.HostConfig()
	hc.KeepPackets = keepPackets
	if f.wire == "memory" {
		lab, w, err := memwire.NewLab(memwire.LabConfig{Host: hc, Wire: memwire.Config{MTU: f.mtu}, RealTime: f.realtime, Seed: f.seed})
		if err != nil {
			return nil, opt, err
		}
		if !f.realtime {
			opt.Sleep, opt.Settle = w.Sleep, w.Settle
			opt.AfterFunc, opt.Now = w.AfterFunc, w.Now
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
		if w, err = env.NewTUN(ctx, WireConfig{MTU: f.mtu, KernelFinWait2: s.FinWait2, KernelSettings: s.KernelSettings()}); err != nil {
			return nil, opt, err
		}
	}
	lab, err := stack.NewLab(w, hc, false)
	return lab, opt, err
}

// fileKind names a kind of file that is not a scenario.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeCharDevice != 0, m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}
