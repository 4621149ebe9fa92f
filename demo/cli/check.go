package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/demo/scenario"
)

func newCheck(env *Env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "check [FILE.lab|NAME...]",
		Short: "run scenarios and check their expectations (no arguments: the whole built-in catalogue)",
		Example: `  tcplab check --wire memory
  sudo tcplab check
  sudo tcplab check mytest.lab close`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.inputs = args
			if err := f.validate(); err != nil {
				return err
			}
			for _, fl := range []string{"svg", "pcap", "pcap-view", "format", "explain", "arrivals", "no-buffers"} {
				if cmd.Flags().Changed(fl) {
					return usageError{fmt.Errorf("check prints one line per scenario and writes no trace: --%s applies to tcplab run", fl)}
				}
			}
			if len(args) == 0 {
				args = scenario.Names()
			}
			var scripts []*scenario.Script
			for _, a := range args {
				s, err := load(a, env.stdin())
				if err != nil {
					return err
				}
				scripts = append(scripts, s)
			}
			ctx, stop := watch(cmd.Context())
			defer stop()
			passed, failed, skipped := 0, 0, 0
			progress := render.IsTerminal(os.Stderr)
			for i, s := range scripts {
				if f.net != nil && s.ExactSegments != "" {
					skipped++
					fmt.Fprintf(env.Stdout, "skip %-22s needs exact segments under --net: %s\n", s.Name, s.ExactSegments)
					continue
				}
				start := time.Now()
				if progress {
					fmt.Fprintf(env.Stderr, "\r[%d/%d] %s ...\x1b[K", i+1, len(scripts), s.Name)
				}
				res, events, err := runOne(ctx, env, &f, s, false)
				if err != nil {
					if ctx.Err() != nil {
						return interrupted{where: s.Name}
					}
					return err
				}
				if progress {
					fmt.Fprint(env.Stderr, "\r\x1b[K")
				}
				if res.Interrupted {
					fmt.Fprintf(env.Stdout, "%d passed, %d failed, interrupted in %s\n", passed, failed, s.Name)
					return interrupted{where: lineOf(res.Where)}
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
			fmt.Fprintf(env.Stdout, "%d passed, %d failed%s\n", passed, failed, skippedText(skipped))
			if failed > 0 {
				return errSilent
			}
			return nil
		},
	}
	f.add(cmd)
	f.addNetFlag(cmd)
	return cmd
}

// skippedText says how many scenarios check skipped, if any.
func skippedText(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d skipped (they need exact segments: see each line)", n)
}
