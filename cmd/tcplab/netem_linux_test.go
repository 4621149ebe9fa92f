package main

import (
	"context"
	"sync"
	"testing"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/tun"
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
