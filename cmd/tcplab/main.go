// Command tcplab is a userspace TCP laboratory: two gVisor TCP stacks on
// real TUN devices, every segment, state and buffer explained. See
// 'tcplab help' and the README.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/capture"
	"github.com/tcplab/tcplab/tun/kernelpeer"
	"github.com/tcplab/tcplab/tun/program"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Env{
		NewTUN: newTUN, NewKernelPeer: kernelpeer.NewPeer, StartCapture: startCapture,
		Program: &cli.ProgramEnv{NewPeer: kernelpeer.NewProgramPeer, NewRelay: kernelpeer.NewRelayPeers, Start: startProgram, WaitListening: waitListening},
	}))
}

// startProgram runs cmd inside the TUN wire's namespace (exec).
func startProgram(w stack.Wire, cmd *exec.Cmd) (cli.Process, error) {
	lab, ok := w.(*tun.Lab)
	if !ok {
		return nil, fmt.Errorf("a program needs the TUN wire, not the %s wire", w.Kind())
	}
	return program.Start(lab, cmd)
}

// waitListening waits for a listener on port in the TUN wire's namespace.
func waitListening(ctx context.Context, w stack.Wire, port uint16) error {
	lab, ok := w.(*tun.Lab)
	if !ok {
		return fmt.Errorf("a program needs the TUN wire, not the %s wire", w.Kind())
	}
	return program.WaitListening(ctx, lab, port)
}

// newTUN builds the lab's TUN wire in a private network namespace.
func newTUN(ctx context.Context, cfg cli.WireConfig) (stack.Wire, error) {
	tc := tun.Config{MTU: cfg.MTU, KernelFinTimeout: cfg.KernelFinWait2}
	for _, s := range cfg.KernelSettings {
		tc.Sysctls = append(tc.Sysctls, tun.Sysctl{Key: s[0], Value: s[1]})
	}
	return tun.New(ctx, tc)
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
