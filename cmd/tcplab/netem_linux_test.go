package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/kernelpeer"
)

var netem struct {
	once      sync.Once
	err       error
	userspace bool // the kernel has no netem: conditions in userspace
}

// needNetemFor skips the witness test of built-in scenario name when it
// has "net" steps and the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM
// unset: the capability is truly absent): the lab then applies the
// conditions in userspace after the capture saw each packet, which the
// witness does not model. The memory wire and TestIntegrationCatalogueOverTUN
// run such scenarios.
func needNetemFor(t *testing.T, name string) {
	t.Helper()
	s, err := scenario.Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	if !s.UsesNet() {
		return
	}
	netem.once.Do(func() {
		l, err := tun.New(context.Background(), tun.Config{})
		if err != nil {
			netem.err = err
			return
		}
		defer l.Close()
		netem.err = l.SetConditions(stack.ClientToServer, stack.Conditions{Loss: 1})
		netem.userspace = l.NetInUserspace()
	})
	if netem.err != nil {
		t.Fatalf("netem check: %v", netem.err)
	}
	if netem.userspace {
		t.Skipf("skipping %s: it sets network conditions, this kernel has no netem (CONFIG_NET_SCH_NETEM), and the witness does not model the userspace fallback", name)
	}
}

// TestIntegrationNetTowardAKernelPeer runs fin-under-loss with the kernel
// as server: its client->server losses act on what the kernel receives.
// With the userspace conditions (a kernel without netem) the run holds
// every expectation; with netem, which shapes only what leaves a TUN
// device toward a gVisor host, the net step must fail and say why.
func TestIntegrationNetTowardAKernelPeer(t *testing.T) {
	needTUN(t)
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", "fin-under-loss", "--kernel", "server"},
		cli.Env{NewTUN: newTUN, NewKernelPeer: kernelpeer.NewPeer, Stdout: &out, Stderr: &errb})
	userspace := strings.Contains(out.String(), "this kernel has no netem")
	t.Logf("exit %d, userspace conditions: %v", code, userspace)
	switch {
	case userspace && (code != 0 || !strings.Contains(out.String(), "# net client->server: lost [F.] seq 4, ack 1, length 0 (loss 100%)")):
		t.Errorf("userspace conditions toward a kernel server: exit %d\n%s%s", code, out.String(), errb.String())
	case !userspace && (code == 0 || !strings.Contains(errb.String(), "conditions toward a kernel peer are not supported yet")):
		t.Errorf("netem toward a kernel server: exit %d, want the net step refused\n%s", code, errb.String())
	}
	assertNothingLeft(t)
}
