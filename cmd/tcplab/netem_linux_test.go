package main

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/tun"
)

var netem struct {
	once sync.Once
	err  error // ErrNoNetem when the kernel has none
}

// needNetemFor skips the test of built-in scenario name when it has "net"
// steps and the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM unset: the
// capability is truly absent; the memory wire runs it in demo/scenario).
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
	})
	if errors.Is(netem.err, tun.ErrNoNetem) {
		t.Skipf("skipping %s: it sets network conditions and %v", name, netem.err)
	}
	if netem.err != nil {
		t.Fatalf("netem check: %v", netem.err)
	}
}
