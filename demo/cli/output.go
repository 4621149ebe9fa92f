package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tcplab/tcplab/demo/pcapng"
	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/stack/trace"
)

// ladder draws the terminal ladder, in colour when stdout is a terminal
// and NO_COLOR is unset.
func ladder(w io.Writer, events []trace.Event) error {
	return render.Ladder(w, events, render.LadderOptions{Color: isStdout(w) && render.ColorWanted(os.Stdout)})
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

// checkOutput checks, before a run, that the file an output flag names can
// be written afterwards: it is not a directory, not one of the scenario
// files being run, and its directory exists and lets us create it. It
// creates nothing: a file it had to create to test is removed again.
func checkOutput(flag, path string, inputs []string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return usageError{fmt.Errorf("%s %s is a directory; give a file name", flag, path)}
	case err == nil:
		for _, in := range inputs {
			if ii, ierr := os.Stat(in); ierr == nil && os.SameFile(fi, ii) {
				return usageError{fmt.Errorf("%s %s is the scenario file itself; it would be overwritten", flag, path)}
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return usageError{fmt.Errorf("%s %s: %w", flag, path, err)}
	}
	if di, derr := os.Stat(filepath.Dir(path)); derr != nil || !di.IsDir() {
		return usageError{fmt.Errorf("%s %s: directory %s does not exist", flag, path, filepath.Dir(path))}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return usageError{fmt.Errorf("%s %s: cannot write it: %w", flag, path, errors.Unwrap(err))}
	}
	f.Close()
	if fi == nil {
		os.Remove(path) // it did not exist before: leave nothing behind
	}
	return nil
}
