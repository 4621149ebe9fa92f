package tun

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
)

// needNetem skips the test when the kernel has no netem qdisc (truly
// absent: CONFIG_NET_SCH_NETEM unset, no module): SetConditions then falls
// back to userspace, which the lab reports.
func needNetem(t *testing.T, l *Lab) {
	t.Helper()
	if err := l.SetConditions(stack.ClientToServer, stack.Conditions{Delay: time.Millisecond}); err != nil {
		t.Fatalf("SetConditions: %v", err)
	}
	if l.NetInUserspace() {
		t.Skipf("skipping: the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM); the lab applies conditions in userspace")
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

// TestIntegrationConditionsDelayTheHandshake measures a connect between
// two gVisor hosts over the TUN wire with 100 ms each way, with the
// kernel's netem (when it has one) and in userspace: the handshake takes
// one round trip, so at least 200 ms; without conditions, far less.
func TestIntegrationConditionsDelayTheHandshake(t *testing.T) {
	for _, user := range []bool{false, true} {
		t.Run(fmt.Sprintf("userspace=%v", user), func(t *testing.T) {
			l := newLab(t, Config{UserspaceNet: user})
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
			t.Logf("connect: %v without conditions, %v with delay 100ms each way (userspace: %v)", before, after, l.NetInUserspace())
			if after < 200*time.Millisecond || before > 100*time.Millisecond {
				t.Errorf("connect took %v, then %v with delay 100ms each way: want under 100ms, then at least 200ms", before, after)
			}
			if user && !l.NetInUserspace() {
				t.Errorf("Config.UserspaceNet: NetInUserspace() = false")
			}
		})
	}
}

// TestIntegrationUserspaceConditions checks the userspace conditions on
// real packets: with loss 100% toward the server, a connect never gets an
// answer and each lost SYN is noted; once cleared, the next attempt
// connects. On a kernel without netem the lab falls back to userspace by
// itself.
func TestIntegrationUserspaceConditions(t *testing.T) {
	l := newLab(t, Config{})
	if err := l.SetConditions(stack.ServerToClient, stack.Conditions{Loss: 1}); err != nil {
		t.Fatalf("SetConditions: %v", err)
	}
	if !l.NetInUserspace() {
		l.Close()
		l = newLab(t, Config{UserspaceNet: true})
	}
	var mu sync.Mutex
	var notes []string
	l.SetNetNotes(func(host, text string) {
		mu.Lock()
		notes = append(notes, host+": "+text)
		mu.Unlock()
	})
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
	if err := l.SetConditions(stack.ClientToServer, stack.Conditions{Loss: 100}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if c, err := lab.Client.Dial(ctx, lab.ServerAddr(9527)); err == nil {
		c.Close()
		t.Fatalf("connect succeeded with every client segment lost")
	}
	mu.Lock()
	got := append([]string(nil), notes...)
	mu.Unlock()
	if len(got) == 0 || !strings.HasPrefix(got[0], "client: net client->server: lost [S] seq 0, length 0 (loss 100%)") {
		t.Errorf("notes = %q, want the lost SYNs", got)
	}
	if err := l.SetConditions(stack.ClientToServer, stack.Conditions{}); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	c, err := lab.Client.Dial(ctx2, lab.ServerAddr(9527))
	if err != nil {
		t.Fatalf("connect after clear: %v", err)
	}
	c.Close()
}
