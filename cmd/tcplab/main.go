// Command tcplab is a userspace TCP laboratory: two gVisor TCP stacks on
// real TUN devices, every segment, state and buffer explained. See
// 'tcplab help' and the README.
package main

import (
	"context"
	"os"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/kernelpeer"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Env{NewTUN: newTUN, NewKernelPeer: kernelpeer.NewPeer}))
}

// newTUN builds the lab's TUN wire in a private network namespace.
func newTUN(ctx context.Context, cfg cli.WireConfig) (stack.Wire, error) {
	return tun.New(ctx, tun.Config{MTU: cfg.MTU, KernelFinTimeout: cfg.KernelFinWait2})
}
