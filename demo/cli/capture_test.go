package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
)

// TestCaptureUsageErrors: --capture is checked before anything runs.
func TestCaptureUsageErrors(t *testing.T) {
	dir := t.TempDir()
	lab := filepath.Join(dir, "mine.lab")
	os.WriteFile(lab, []byte("server listen 9527\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "close", "--wire", "memory", "--capture", filepath.Join(dir, "x.pcapng")}, "--capture needs --wire tun"},
		{[]string{"run", "close", "--capture", dir}, "--capture " + dir + " is a directory"},
		{[]string{"run", lab, "--capture", lab}, "is the scenario file itself"},
		{[]string{"run", "close", "--capture", filepath.Join(dir, "no", "x.pcapng")}, "directory " + filepath.Join(dir, "no") + " does not exist"},
	} {
		built := false
		newTUN := func(context.Context, WireConfig) (stack.Wire, error) { built = true; return nil, os.ErrInvalid }
		code, _, stderr := run(t, newTUN, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) || built {
			t.Errorf("tcplab %s = exit %d (lab built: %v), stderr %q; want exit 2 before any lab and %q", strings.Join(tc.args, " "), code, built, stderr, tc.want)
		}
	}
	if b, _ := os.ReadFile(lab); string(b) != "server listen 9527\n" {
		t.Errorf("the scenario file was changed: %q", b)
	}
}

// closeRecorder is a wire that records when it is closed.
type closeRecorder struct {
	*memwire.Wire
	closed atomic.Bool
}

func (c *closeRecorder) Kind() string { return "tun" }
func (c *closeRecorder) Close() error {
	c.closed.Store(true)
	return c.Wire.Close()
}

// TestCaptureLifetime: the capture starts on the lab's wire before the
// first step and stops after the lab is closed; its file holds what it
// wrote, the user is told, and the namespace line is unchanged.
func TestCaptureLifetime(t *testing.T) {
	out := filepath.Join(t.TempDir(), "lab.pcapng")
	var w *closeRecorder
	var startedWith stack.Wire
	var stoppedAfterClose, startedFirst bool
	var o, e bytes.Buffer
	env := Env{
		NewTUN: func(context.Context, WireConfig) (stack.Wire, error) {
			w = &closeRecorder{Wire: memwire.New(memwire.Config{})}
			return w, nil
		},
		StartCapture: func(sw stack.Wire, f io.Writer) (func() (int, int, error), error) {
			startedWith = sw
			startedFirst = !strings.Contains(e.String(), "# scenario") // nothing has run yet
			io.WriteString(f, "pcapng bytes")
			return func() (int, int, error) {
				stoppedAfterClose = w.closed.Load()
				return 7, 0, nil
			}, nil
		},
	}
	env.Stdout, env.Stderr = &o, &e
	code := Main(context.Background(), []string{"run", "connect-refused", "--capture", out}, env)
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, e.String())
	}
	if !startedFirst {
		t.Errorf("capture started after the scenario began")
	}
	if startedWith != stack.Wire(w) {
		t.Errorf("capture started on %v, want the lab's wire", startedWith)
	}
	if !stoppedAfterClose {
		t.Errorf("capture stopped before the lab was closed")
	}
	if b, _ := os.ReadFile(out); string(b) != "pcapng bytes" {
		t.Errorf("capture file holds %q", b)
	}
	if !strings.Contains(e.String(), "# captured 7 packets on the wire to "+out) {
		t.Errorf("stderr lacks the capture line:\n%s", e.String())
	}
	code = Main(context.Background(), []string{"run", "connect-refused", "--capture", out}, Env{NewTUN: env.NewTUN, Stdout: &o, Stderr: &e})
	if code != ExitFailure || !strings.Contains(e.String(), "--capture is not available in this build") {
		t.Errorf("without StartCapture: exit %d, stderr %q", code, e.String())
	}
}
