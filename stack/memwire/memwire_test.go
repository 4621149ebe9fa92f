package memwire_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
)

// timeWaitLab returns a virtual-time lab whose client is in TIME-WAIT.
func timeWaitLab(t testing.TB) (*stack.Lab, *memwire.Wire, *stack.Conn) {
	t.Helper()
	lab, w, c, s := virtualPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.Close()
	w.Settle(ctx)
	s.Close()
	w.Settle(ctx)
	if got := c.State(); got != "TIME-WAIT" {
		t.Fatalf("client state = %s, want TIME-WAIT", got)
	}
	return lab, w, c
}

// TestVirtualTimeWait fast-forwards a default 60 s TIME-WAIT; how long that
// takes in real time is BenchmarkVirtualTimeWait's business.
func TestVirtualTimeWait(t *testing.T) {
	lab, w, c := timeWaitLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Sleep(ctx, 59*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.State(); got != "TIME-WAIT" {
		t.Errorf("after 59 s: client state = %s, want TIME-WAIT still", got)
	}
	w.Sleep(ctx, 2*time.Second)
	if got := c.State(); got != "CLOSED" {
		t.Errorf("after 61 s: client state = %s, want CLOSED", got)
	}
	ev := lab.Trace.Events()
	last := ev[len(ev)-1]
	if last.To != "CLOSED" || last.T < 60*time.Second || last.T > 62*time.Second {
		t.Errorf("last event %+v: want TIME-WAIT -> CLOSED at ~60 s virtual", last)
	}
}

// BenchmarkVirtualTimeWait measures the real time 61 s of virtual time
// take, TIME-WAIT expiry included.
func BenchmarkVirtualTimeWait(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		lab, w, c := timeWaitLab(b)
		b.StartTimer()
		w.Sleep(context.Background(), 61*time.Second)
		if c.State() != "CLOSED" {
			b.Fatalf("state %s after 61 s", c.State())
		}
		b.StopTimer()
		lab.Close()
		b.StartTimer()
	}
}

// TestRealTimeWire moves segments without a clock.
func TestRealTimeWire(t *testing.T) {
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, _ := lab.Server.Listen(80, 0)
	c, err := lab.Client.Dial(ctx, lab.ServerAddr(80))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := l.Accept(ctx)
	c.Write(ctx, []byte("ping"))
	buf := make([]byte, 8)
	if n, err := s.Read(ctx, buf); err != nil || string(buf[:n]) != "ping" {
		t.Errorf("Read = %q, %v", buf[:n], err)
	}
}

// TestSetConditionsNeedsVirtualTime checks that a real-time wire refuses
// conditions (it has no clock to delay on) and that bad values are refused
// with their range.
func TestSetConditionsNeedsVirtualTime(t *testing.T) {
	w := memwire.New(memwire.Config{})
	defer w.Close()
	if err := w.SetConditions(stack.ClientToServer, stack.Conditions{Loss: 1}); err == nil || !strings.Contains(err.Error(), "virtual time") {
		t.Errorf("SetConditions in real time = %v, want an error about virtual time", err)
	}
	if err := w.SetConditions(stack.ClientToServer, stack.Conditions{Loss: 200}); err == nil || !strings.Contains(err.Error(), "0%-100%") {
		t.Errorf("SetConditions(loss 200%%) = %v, want the range", err)
	}
}
