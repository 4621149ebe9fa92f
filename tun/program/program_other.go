//go:build !linux

package program

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/tcplab/tcplab/tun"
)

var errUnsupported = errors.New("program: only supported on Linux")

// Process is a program in a lab; only supported on Linux.
type Process struct{}

// Start fails: programs in the lab need Linux.
func Start(*tun.Lab, *exec.Cmd) (*Process, error) { return nil, errUnsupported }

// Pid returns 0.
func (*Process) Pid() int { return 0 }

// Done returns a closed channel.
func (*Process) Done() <-chan struct{} { c := make(chan struct{}); close(c); return c }

// Wait fails.
func (*Process) Wait() (syscall.WaitStatus, time.Duration, error) {
	var ws syscall.WaitStatus
	return ws, 0, errUnsupported
}

// Signal does nothing.
func (*Process) Signal(os.Signal) error { return nil }

// Stop does nothing.
func (*Process) Stop(time.Duration) {}

// WaitListening fails.
func WaitListening(context.Context, *tun.Lab, uint16) error { return errUnsupported }
