//go:build linux && amd64

package calltrace

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/ktrace"
)

// BenchmarkSyscallOverhead measures what an open Tracer costs every syscall
// of the machine (here getppid(2) from outside the lab namespace, which the
// programs look at and drop): compare with -run x -bench . and the "off"
// variant.
func BenchmarkSyscallOverhead(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		for b.Loop() {
			unix.Getppid()
		}
	})
	b.Run("on", func(b *testing.B) {
		if err := tun.Check(); err != nil {
			b.Skipf("skipping: %v", err)
		}
		lab, err := tun.New(context.Background(), tun.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer lab.Close()
		ino, err := ktrace.NetnsInode(lab.NetnsPath())
		if err != nil {
			b.Fatal(err)
		}
		tr, err := Open(Config{NetnsInode: ino})
		if errors.Is(err, ErrUnavailable) {
			b.Skipf("skipping: %v", err)
		}
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		for b.Loop() {
			unix.Getppid()
		}
	})
}
