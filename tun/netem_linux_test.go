package tun

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
)

// needNetem skips the test when the kernel has no netem qdisc (truly
// absent: CONFIG_NET_SCH_NETEM unset, no module), after checking that the
// lab says so with ErrNoNetem.
func needNetem(t *testing.T, l *Lab) {
	t.Helper()
	err := l.SetConditions(stack.ClientToServer, stack.Conditions{Delay: time.Millisecond})
	if errors.Is(err, ErrNoNetem) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("SetConditions: %v", err)
	}
	if err := l.SetConditions(stack.ClientToServer, stack.Conditions{}); err != nil {
		t.Fatalf("clear: %v", err)
	}
}

// TestIntegrationNetemOnTheLabDevice sets conditions on each direction and
// reads back the kernel's qdisc: netem on the receiving host's device,
// with the parameters asked for; clear removes it; the other device keeps
// its default qdisc.
func TestIntegrationNetemOnTheLabDevice(t *testing.T) {
	l := newLab(t, Config{})
	needNetem(t, l)
	c := stack.Conditions{Loss: 5, Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond, Duplicate: 1, Corrupt: 0.5, Reorder: 25, Rate: 8_000_000}
	if err := l.SetConditions(stack.ClientToServer, c); err != nil {
		t.Fatalf("SetConditions: %v", err)
	}
	kind, q, err := l.Qdisc("server")
	if err != nil {
		t.Fatal(err)
	}
	if kind != "netem" || q == nil {
		t.Fatalf("server device qdisc = %q, want netem", kind)
	}
	if q.Limit != netemLimit || q.Rate64 != 1_000_000 || q.Loss == 0 || q.Duplicate == 0 || q.ReorderProb == 0 || q.CorruptProb == 0 || q.Latency == 0 || q.Jitter == 0 {
		t.Errorf("netem = %+v, want every parameter of %v", q, c)
	}
	if kind, _, _ := l.Qdisc("client"); kind == "netem" {
		t.Errorf("client device has netem: client->server must shape only the server's device")
	}
	if err := l.SetConditions(stack.ServerToClient, stack.Conditions{Loss: 100}); err != nil {
		t.Fatal(err)
	}
	if kind, q, _ := l.Qdisc("client"); kind != "netem" || q.Loss != ^uint32(0) {
		t.Errorf("client device after server->client loss 100%%: %q %+v", kind, q)
	}
	for _, d := range []stack.Direction{stack.ClientToServer, stack.ServerToClient} {
		if err := l.SetConditions(d, stack.Conditions{}); err != nil {
			t.Fatalf("clear %s: %v", d, err)
		}
		if err := l.SetConditions(d, stack.Conditions{}); err != nil {
			t.Fatalf("clear %s twice: %v", d, err)
		}
	}
	for _, h := range []string{"client", "server"} {
		if kind, _, _ := l.Qdisc(h); kind == "netem" {
			t.Errorf("%s device still has netem after clear", h)
		}
	}
	if err := l.SetConditions(stack.ClientToServer, stack.Conditions{Loss: 101}); err == nil || !strings.Contains(err.Error(), "0%-100%") {
		t.Errorf("loss 101%%: err = %v, want the range", err)
	}
	if err := l.SetConditions(stack.ClientToServer, stack.Conditions{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLabDevices(t) // the qdisc went with its device
	if err := l.SetConditions(stack.ClientToServer, stack.Conditions{Loss: 1}); err == nil {
		t.Errorf("SetConditions after Close succeeded")
	}
}

// TestIntegrationNetemDelaysTheHandshake measures a connect between two
// gVisor hosts over the TUN wire with 100 ms each way: the handshake takes
// one round trip, so at least 200 ms; without conditions, far less.
func TestIntegrationNetemDelaysTheHandshake(t *testing.T) {
	l := newLab(t, Config{})
	needNetem(t, l)
	lab, err := stack.NewLab(l, stack.Config{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ln, err := lab.Server.Listen(9527, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		c, err := lab.Client.Dial(ctx, lab.ServerAddr(9527))
		if err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		c.Close()
		return d
	}
	before := dial()
	for _, d := range []stack.Direction{stack.ClientToServer, stack.ServerToClient} {
		if err := l.SetConditions(d, stack.Conditions{Delay: 100 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	after := dial()
	t.Logf("connect: %v without conditions, %v with delay 100ms each way", before, after)
	if after < 200*time.Millisecond || before > 100*time.Millisecond {
		t.Errorf("connect took %v, then %v with delay 100ms each way: want under 100ms, then at least 200ms", before, after)
	}
}

// TestIntegrationNoNetemIsSaid checks that a kernel without netem makes
// SetConditions fail with ErrNoNetem, which says how to fix it, and that
// clearing conditions never fails for that reason.
func TestIntegrationNoNetemIsSaid(t *testing.T) {
	l := newLab(t, Config{})
	if err := l.SetConditions(stack.ServerToClient, stack.Conditions{}); err != nil {
		t.Fatalf("clear with nothing installed: %v", err)
	}
	err := l.SetConditions(stack.ServerToClient, stack.Conditions{Loss: 1})
	if err == nil {
		t.Skip("skipping: this kernel has netem (TestIntegrationNetemOnTheLabDevice covers it)")
	}
	if !errors.Is(err, ErrNoNetem) || !strings.Contains(err.Error(), "--wire memory") {
		t.Errorf("SetConditions without netem: %v, want ErrNoNetem with the fix", err)
	}
}
