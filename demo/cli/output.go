package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/tcplab/tcplab/demo/pcapng"
	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/stack/trace"
)

// ladder draws the terminal ladder, in colour when stdout is a terminal
// and NO_COLOR is unset.
func ladder(w io.Writer, events []trace.Event) error {
	return render.Ladder(w, events, render.LadderOptions{Color: w == io.Writer(os.Stdout) && render.ColorWanted(os.Stdout)})
}

func svg(w io.Writer, events []trace.Event, title string) error {
	return render.SVG(w, events, render.SVGOptions{Title: title})
}

// writePcap writes every packet the hosts of view ("both", "client" or
// "server") saw to path as pcapng, with a comment per packet (state,
// reason).
func writePcap(path, view string, events []trace.Event) error {
	opt := pcapng.Options{Application: "tcplab"}
	if view != "both" {
		opt.Only = view
	}
	var b bytes.Buffer
	n, err := pcapng.Write(&b, events, opt)
	if err != nil {
		return fmt.Errorf("write --pcap %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write --pcap: %w", err)
	}
	fmt.Fprintf(os.Stderr, "# wrote %d packets to %s (open with wireshark or tshark -r)\n", n, path)
	return nil
}
