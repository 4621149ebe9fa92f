// Command tcplab is a userspace TCP laboratory: two gVisor TCP stacks on
// real TUN devices, every segment, state and buffer explained. See
// 'tcplab help' and the README.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/capture"
	"github.com/tcplab/tcplab/tun/kernelpeer"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Env{NewTUN: newTUN, NewKernelPeer: kernelpeer.NewPeer, StartCapture: startCapture}))
}

// newTUN builds the lab's TUN wire in a private network namespace.
func newTUN(ctx context.Context, cfg cli.WireConfig) (stack.Wire, error) {
	return tun.New(ctx, tun.Config{MTU: cfg.MTU, KernelFinTimeout: cfg.KernelFinWait2})
}

// startCapture captures the devices of the TUN wire w into out (pcapng)
// for --capture.
func startCapture(w stack.Wire, out io.Writer) (func() (int, int, error), error) {
	lab, ok := w.(*tun.Lab)
	if !ok {
		return nil, fmt.Errorf("capture needs the TUN wire, not the %s wire", w.Kind())
	}
	c, err := capture.Start(lab, out, capture.Config{})
	if err != nil {
		return nil, err
	}
	return func() (int, int, error) {
		err := c.Close()
		return c.Packets(), c.Dropped(), err
	}, nil
}
