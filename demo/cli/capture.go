package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/stack"
)

// CaptureFunc starts an independent capture of the TUN wire w's devices
// (an AF_PACKET socket inside the lab namespace; needs root, like the
// wire) and writes it to out as pcapng. stop ends the capture once the lab
// is closed, so that the teardown is on it, and reports how many packets it
// wrote and how many the kernel dropped.
type CaptureFunc func(w stack.Wire, out io.Writer) (stop func() (written, dropped int, err error), err error)

// addCaptureFlag adds --capture to run (and only to run: check and chat
// run many labs, or none the user chose).
func (f *runFlags) addCaptureFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.capture, "capture", "", "also capture the lab's wire itself (AF_PACKET on both TUN devices, from before the first SYN to after teardown) to this pcapng file: an independent witness of the trace (TUN wire only)")
}

// checkCapture rejects --capture before anything runs: on the memory wire
// (there is no kernel interface to capture), or when the path is a
// directory, the scenario file itself (scenarioArg), or in a directory
// that does not exist.
func (f *runFlags) checkCapture(scenarioArg string) error {
	if f.capture == "" {
		return nil
	}
	if f.wire != "tun" {
		return usageError{fmt.Errorf("--capture needs --wire tun: it captures the TUN devices in the lab namespace; the memory wire has none (use --pcap for the packets the hosts saw)")}
	}
	st, err := os.Stat(f.capture)
	switch {
	case err == nil && st.IsDir():
		return usageError{fmt.Errorf("--capture %s is a directory; want a file name, e.g. %s", f.capture, filepath.Join(f.capture, "lab.pcapng"))}
	case err == nil:
		if sc, serr := os.Stat(scenarioArg); serr == nil && isScenarioFile(scenarioArg) && os.SameFile(st, sc) {
			return usageError{fmt.Errorf("--capture %s is the scenario file itself; it would be overwritten", f.capture)}
		}
	case errors.Is(err, os.ErrNotExist):
		dir := filepath.Dir(f.capture)
		if d, derr := os.Stat(dir); derr != nil || !d.IsDir() {
			return usageError{fmt.Errorf("--capture %s: directory %s does not exist", f.capture, dir)}
		}
	default:
		return usageError{fmt.Errorf("--capture: %w", err)}
	}
	return nil
}

// labCapture is a running --capture: the file and the capture's stop.
type labCapture struct {
	path string
	file *os.File
	stop func() (written, dropped int, err error)
}

// startCapture starts --capture on lab's wire, or returns nil when the flag
// is not set.
func startCapture(env *Env, f *runFlags, lab *stack.Lab) (*labCapture, error) {
	if f.capture == "" {
		return nil, nil
	}
	if env.StartCapture == nil {
		return nil, errors.New("--capture is not available in this build")
	}
	file, err := os.Create(f.capture)
	if err != nil {
		return nil, fmt.Errorf("--capture: %w", err)
	}
	stop, err := env.StartCapture(lab.Wire, file)
	if err != nil {
		file.Close()
		os.Remove(f.capture)
		return nil, fmt.Errorf("--capture: %w", err)
	}
	return &labCapture{path: f.capture, file: file, stop: stop}, nil
}

// finish stops the capture (call it after the lab is closed), closes the
// file and tells the user on w what it holds.
func (c *labCapture) finish(w io.Writer) error {
	n, dropped, err := c.stop()
	if cerr := c.file.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--capture %s: %w", c.path, err)
	}
	fmt.Fprintf(w, "# captured %d packets on the wire to %s (open with wireshark or tshark -r)\n", n, c.path)
	if dropped > 0 {
		fmt.Fprintf(w, "# warning: the kernel dropped %d packets the capture should have had: %s is incomplete\n", dropped, c.path)
	}
	return nil
}

// isScenarioFile reports whether load reads arg from a file (rather than
// the catalogue).
func isScenarioFile(arg string) bool {
	return strings.HasSuffix(arg, ".lab") || strings.ContainsRune(arg, filepath.Separator)
}
