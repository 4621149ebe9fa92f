package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/chat"
	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/demo/scenario"
)

func newChat(env *Env) *cobra.Command {
	var f runFlags
	var o chat.Options
	cmd := &cobra.Command{
		Use:   "chat",
		Short: "the article's client and server, interactive: type lines, shutdown, close, linger 0, and watch the trace",
		Long: "chat starts the article's server (it answers every line with \"Hi, <line>\" after --delay)\n" +
			"and connects a client to it. At the client> prompt, type text to send it, or a socket\n" +
			"call to see what it does on the wire.\n\n" + chat.Help,
		Example: `  sudo tcplab chat
  tcplab chat --wire memory --delay 2s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			for _, fl := range []string{"svg", "pcap", "pcap-view", "format", "explain", "arrivals", "no-buffers", "step-timeout", "realtime", "kernel"} {
				if cmd.Flags().Changed(fl) {
					return usageError{fmt.Errorf("chat does not take --%s (it applies to tcplab run)", fl)}
				}
			}
			f.realtime = true // a person types in real time
			ctx, stop := watch(cmd.Context())
			defer stop()
			lab, _, err := newLab(ctx, env, &f, &scenario.Script{Name: "chat"}, false)
			if err != nil {
				return err
			}
			defer lab.Close()
			if tw, ok := lab.Wire.(interface{ TcpdumpCommand() string }); ok {
				fmt.Fprintf(env.Stderr, "# to watch the wire: %s\n", tw.TcpdumpCommand())
			}
			// On a terminal the chat keeps its prompt under the trace; it
			// needs the keys as they are typed.
			if out, ok := unwrap(env.Stdout).(*os.File); ok && render.IsTerminal(env.stdin()) && render.IsTerminal(out) {
				if restore, err := chat.Cbreak(env.stdin()); err == nil {
					defer restore()
					o.Terminal = true
				}
			}
			return chat.Run(ctx, lab, env.stdin(), unwrap(env.Stdout), o)
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&o.Delay, "delay", 5*time.Second, "how long the server works before it answers")
	cmd.Flags().BoolVar(&o.Quiet, "quiet", false, "hide the trace; show only the conversation")
	return cmd
}

func (e *Env) stdin() *os.File {
	if e.Stdin != nil {
		return e.Stdin
	}
	return os.Stdin
}
