package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/explain"
	"github.com/tcplab/tcplab/demo/view"
)

// newView is `tcplab view FILE`: a local web page for a trace or a capture
// (package view), served on 127.0.0.1 until Ctrl-C.
func newView(env *Env) *cobra.Command {
	var cfg view.Config
	var lopt view.Options
	var open, noOpen bool
	cmd := &cobra.Command{
		Use:   "view FILE|-",
		Short: "look at a trace or capture in a local web page (127.0.0.1 only)",
		Long: `view serves a web page for one file on 127.0.0.1, at a random port unless --addr
names one, and prints its URL; Ctrl-C stops it. The file is a trace as
` + "`tcplab run --format json`" + ` writes it, a pcapng tcplab wrote (--pcap), or any capture
(pcap, pcapng, gzip'd), whose FINs and RSTs explain's rules account for.

The page shows the ladder (two lanes per connection; zoom with the row buttons or
Ctrl+wheel, scroll through thousands of segments, filter by connection), every field
and the reason of a segment, call or state on click, a time-sequence graph per
direction (sequence numbers sent, the ACKs and the window's right edge, as
Wireshark's Stevens and tcptrace graphs), and each host's TCP states and buffer
levels over time. Everything the page needs is inside the binary: no network
access beyond 127.0.0.1. The URL takes #select=N (select event N) and #conn=ID.

  tcplab run close --wire memory --format json > close.jsonl
  tcplab view close.jsonl                  # prints http://127.0.0.1:PORT/
  tcplab view --addr 8080 close.pcapng     # a port of your choice, still on 127.0.0.1
  tcplab view wire.pcap.gz                 # any capture, with explain's reasons
  tcplab view big.pcap --conn 3            # one connection of a big capture`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := view.CheckAddr(cfg.Addr); err != nil {
				return usageError{err}
			}
			if lopt.Conn != "" {
				if _, _, _, err := explain.ParseConn(lopt.Conn); err != nil {
					return usageError{err}
				}
			}
			if open && noOpen {
				return usageError{fmt.Errorf("--open and --no-open: choose one")}
			}
			name := args[0]
			var in io.ReadSeeker
			if name == "-" {
				src := io.Reader(env.Stdin)
				if env.Stdin == nil {
					src = os.Stdin
				}
				b, err := io.ReadAll(src)
				if err != nil {
					return fmt.Errorf("view: read standard input: %w", err)
				}
				name, in = "standard input", bytes.NewReader(b)
			} else {
				f, err := os.Open(name)
				if err != nil {
					return fmt.Errorf("view: %w", err)
				}
				defer f.Close()
				in = f
			}
			d, err := view.Load(name, in, lopt)
			if err != nil {
				return err
			}
			srv, err := view.Listen(d, cfg)
			if err != nil {
				return err
			}
			conns := fmt.Sprintf("%d connections", len(d.Conns))
			if len(d.Conns) == 1 {
				conns = "1 connection"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tcplab view: %s (%d rows, %s) at %s\n", name, len(d.Items), conns, srv.URL())
			if !cfg.Once {
				fmt.Fprintln(cmd.OutOrStdout(), "# Ctrl-C stops it")
			}
			if open {
				if err := exec.Command("xdg-open", srv.URL()).Start(); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "# --open: %v; open the URL yourself\n", err)
				}
			}
			ctx, stop := watch(cmd.Context())
			defer stop()
			return srv.Serve(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Addr, "addr", "", "listen on this port of 127.0.0.1 (PORT or 127.0.0.1:PORT); default: a random port")
	fl.StringVar(&lopt.Conn, "conn", "", "a capture: only this connection, its number or ADDR:PORT-ADDR:PORT (as explain numbers them)")
	fl.IntVar(&lopt.MaxItems, "max-rows", view.DefaultMaxItems, "refuse inputs of more rows than this (events or packets; -1: no limit)")
	fl.BoolVar(&cfg.Once, "once", false, "stop once the page has loaded its data (for tests and screenshots)")
	fl.BoolVar(&open, "open", false, "also open the page with xdg-open")
	fl.BoolVar(&noOpen, "no-open", false, "do not open a browser (the default)")
	return cmd
}
