package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/explain"
	"github.com/tcplab/tcplab/demo/render"
)

// newExplain is `tcplab explain FILE`: why each FIN and RST of a capture
// was sent (package explain). It needs no root and runs no lab.
func newExplain(env *Env) *cobra.Command {
	var opt explain.Options
	var svgPath string
	cmd := &cobra.Command{
		Use:   "explain FILE|-",
		Short: "say why each FIN and RST in a capture (pcap, pcapng, gzip'd) was sent",
		Long: `explain reads a capture of any TCP traffic — pcap or pcapng as tcpdump and Wireshark
write them (Ethernet, Linux cooked v1/v2, raw IP; IPv4 and IPv6), gzip'd or not — and
for every FIN and RST gives the most likely reason in the words tcplab uses for its own
stacks, the evidence (earlier packets, by number) and a confidence (high, medium, low),
or "unknown" with what is missing. Per connection: the states both ends went through as
the wire shows them, a byte ledger, retransmissions, which side the capture seems near,
the teardown (clean four-way, half-close then reset, abortive close, reset on SYN,
unanswered FIN, still open) with Zeek's conn_state beside it; then a summary table.

The reasons are inferred from the wire, never observed: the wire shows what a stack
did, not the call that made it do it (close() and shutdown(SHUT_WR) look alike until
the peer sends data). Needs no root.

  tcplab explain close.pcapng                      # every connection, text timeline
  tcplab explain big.pcap.gz --only resets         # only connections with a RST
  tcplab explain trace.pcap --conn 3               # connection 3 (numbered by first packet)
  tcplab explain trace.pcap --conn 10.0.0.1:40000-10.0.0.2:80
  tcplab explain trace.pcap --format json          # JSON lines: segments, findings, conns, summary
  tcplab explain trace.pcap --conn 3 --format ladder --svg conn3.svg  # the ladder, in the terminal and as SVG
  tcplab explain huge.pcap --summary               # the summary table only
  tcpdump -w - -i eth0 tcp | tcplab explain -      # a live capture from standard input (reasons at the end)
  sudo tcplab run close --capture c.pcapng && tcplab explain c.pcapng`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch opt.Format {
			case "text", "json", "ladder":
			default:
				return usageError{fmt.Errorf("--format %q: want text, json or ladder", opt.Format)}
			}
			if svgPath != "" && opt.SummaryOnly {
				return usageError{fmt.Errorf("--svg draws connections; --summary leaves them out")}
			}
			if err := checkOutput("--svg", svgPath, args); err != nil {
				return err
			}
			if opt.Conn != "" {
				if _, _, _, err := explain.ParseConn(opt.Conn); err != nil {
					return usageError{err}
				}
			}
			var in io.Reader
			name := args[0]
			if name == "-" {
				name, in = "standard input", env.Stdin
				if env.Stdin == nil {
					in = os.Stdin
				}
			} else {
				f, err := os.Open(name)
				if err != nil {
					return fmt.Errorf("explain: %w", err)
				}
				defer f.Close()
				in = f
			}
			var svgBuf bytes.Buffer
			if svgPath != "" {
				opt.SVG = &svgBuf
			}
			opt.Color = opt.Format == "ladder" && isStdout(cmd.OutOrStdout()) && render.ColorWanted(os.Stdout)
			_, err := explain.Run(name, in, cmd.OutOrStdout(), opt)
			if svgPath != "" && svgBuf.Len() > 0 {
				if werr := os.WriteFile(svgPath, svgBuf.Bytes(), 0o644); werr != nil && err == nil {
					err = fmt.Errorf("explain: write --svg: %w", werr)
				}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opt.Format, "format", "text", "output: text (timeline with the reason under each FIN and RST), json (JSON lines) or ladder (sequence diagram)")
	fl.StringVar(&svgPath, "svg", "", "also write the ladder of the selected connections as SVG to this file")
	fl.StringVar(&opt.Conn, "conn", "", "only this connection: its number, or ADDR:PORT-ADDR:PORT")
	var only string
	fl.StringVar(&only, "only", "", "only resets: connections with a RST, and only the RSTs' reasons")
	fl.BoolVar(&opt.SummaryOnly, "summary", false, "print the summary table only (keeps no packet in memory: for big captures)")
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		switch only {
		case "":
		case "resets", "reset", "rst":
			opt.OnlyResets = true
		default:
			return usageError{fmt.Errorf("--only %q: want resets", only)}
		}
		return nil
	}
	return cmd
}
