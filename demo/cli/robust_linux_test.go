package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO as the scenario file is refused at once instead of blocking
// forever.
func TestFIFOScenarioDoesNotBlock(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe.lab")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var code int
	var stderr string
	go func() {
		defer close(done)
		code, _, stderr = run(t, nil, "run", fifo, "--wire", "memory")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// Unblock the open so that the goroutine ends.
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		<-done
		t.Fatal("run on a FIFO blocked")
	}
	if code != ExitUsage || !strings.Contains(stderr, "is a FIFO (named pipe), not a regular file") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// `tcplab run close --wire memory > /dev/full` fails, saying why.
func TestDevFull(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	var e strings.Builder
	code := Main(context.Background(), []string{"run", "close", "--wire", "memory"}, Env{Stdout: full, Stderr: &e})
	if code != ExitFailure || !strings.Contains(e.String(), "write standard output") || !strings.Contains(e.String(), "no space left on device") {
		t.Errorf("exit %d, stderr %q", code, e.String())
	}
}
