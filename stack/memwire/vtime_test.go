package memwire_test

import (
	"context"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
)

// virtualPair returns a virtual-time lab with one established connection:
// client side and server side.
func virtualPair(t testing.TB) (*stack.Lab, *memwire.Wire, *stack.Conn, *stack.Conn) {
	t.Helper()
	lab, w, err := memwire.NewLab(memwire.LabConfig{Wire: memwire.Config{QuietWindow: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := lab.Server.Listen(80, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lab.Client.Dial(ctx, lab.ServerAddr(80))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return lab, w, c, s
}

// TestVirtualTimeBlockedWriter: a writer blocks on the server's zero
// window; the server reads after a sleep, and the window update its read
// sends is lost, so only the client's persist timer gets the data moving
// while both calls wait. In virtual time the clock must move to that timer
// as real time would.
func TestVirtualTimeBlockedWriter(t *testing.T) {
	lab, w, c, s := virtualPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	s.SetReceiveBuffer(4096)
	c.SetSendBuffer(4096)
	const total = 60000
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		n, err := c.Write(ctx, make([]byte, total))
		wrote <- result{n, err}
	}()
	if err := w.Sleep(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-wrote:
		t.Fatalf("Write = %d, %v before the server read: want it blocked on the zero window", r.n, r.err)
	default:
	}
	lab.Server.DropNext(1, func(f string) bool { return f == "." }, "the window update")
	buf := make([]byte, 16384)
	got := 0
	for got < total {
		n, err := s.Read(ctx, buf)
		if err != nil {
			t.Fatalf("Read after %d bytes: %v (virtual time stalled?)", got, err)
		}
		got += n
	}
	if r := <-wrote; r.n != total || r.err != nil {
		t.Errorf("Write = %d, %v; want %d, nil", r.n, r.err, total)
	}
}

// TestVirtualTimeLinger: close() with SO_LINGER {on, 2 s} while the peer
// neither reads nor acknowledges our FIN blocks for 2 s of the lab's clock,
// then returns with the FIN still unacknowledged (FIN-WAIT-1); with a peer
// that acknowledges at once it returns without waiting.
func TestVirtualTimeLinger(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		lab, w, c, s := virtualPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		s.SetReceiveBuffer(4096)
		if err := c.SetLinger(true, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Write(ctx, make([]byte, 30000)); n != 30000 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		w.Settle(ctx)
		clk := lab.Client.Stack().Clock()
		start := clk.Now()
		if err := c.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if took := clk.Now().Sub(start); took < 2*time.Second || took > 2100*time.Millisecond {
			t.Errorf("Close lingered %v of virtual time, want 2s", took)
		}
		if got := c.State(); got != "FIN-WAIT-1" {
			t.Errorf("state after the linger timeout = %s, want FIN-WAIT-1", got)
		}
	})
	t.Run("acknowledged", func(t *testing.T) {
		lab, w, c, _ := virtualPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		if err := c.SetLinger(true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		c.Write(ctx, []byte("hello"))
		w.Settle(ctx)
		clk := lab.Client.Stack().Clock()
		start := clk.Now()
		c.Close()
		if took := clk.Now().Sub(start); took > 100*time.Millisecond {
			t.Errorf("Close lingered %v of virtual time with a peer that acknowledges, want about one RTT", took)
		}
		if got := c.State(); got != "FIN-WAIT-2" {
			t.Errorf("state after Close = %s, want FIN-WAIT-2", got)
		}
	})
}
