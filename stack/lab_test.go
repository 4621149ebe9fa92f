package stack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// connected returns a lab on the real-time memory wire with one
// established connection: client side and server side.
func connected(t *testing.T) (*stack.Lab, *stack.Conn, *stack.Conn) {
	t.Helper()
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := lab.Server.Listen(9527, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lab.Client.Dial(ctx, lab.ServerAddr(9527))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return lab, c, s
}

// sent waits up to 2 s for host to send a segment with these flags and
// returns its event.
func sent(t *testing.T, lab *stack.Lab, host, flags string) trace.Event {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		for _, e := range lab.Trace.Events() {
			if e.Kind == trace.Segment && e.Host == host && e.Dir == "out" && e.Flags == flags {
				return e
			}
		}
	}
	t.Fatalf("%s never sent [%s]", host, flags)
	return trace.Event{}
}

func TestReasons(t *testing.T) {
	ctx := context.Background()
	t.Run("close with unread data", func(t *testing.T) {
		lab, c, s := connected(t)
		c.Write(ctx, []byte("abcde"))
		for s.Ledger().RcvQueued != 5 {
			time.Sleep(time.Millisecond)
		}
		s.Close()
		if r := sent(t, lab, "server", "R.").Reason; !strings.HasPrefix(r, "close() with 5 unread bytes") {
			t.Errorf("reason = %q", r)
		}
		if l := s.Ledger(); l.Discarded == nil || l.Discarded.Unread != 5 || l.Discarded.By != "RST sent" {
			t.Errorf("ledger = %+v, want 5 unread bytes destroyed by our RST", l)
		}
	})
	t.Run("linger 0", func(t *testing.T) {
		lab, c, _ := connected(t)
		c.SetLinger(true, 0)
		c.Close()
		if r := sent(t, lab, "client", "R.").Reason; !strings.Contains(r, "SO_LINGER 0") {
			t.Errorf("reason = %q", r)
		}
	})
	t.Run("shutdown then close", func(t *testing.T) {
		lab, c, s := connected(t)
		c.Shutdown(stack.ShutWR)
		if r := sent(t, lab, "client", "F.").Reason; !strings.HasPrefix(r, "shutdown(SHUT_WR)") {
			t.Errorf("client FIN reason = %q", r)
		}
		s.Close()
		if r := sent(t, lab, "server", "F.").Reason; !strings.HasPrefix(r, "close()") {
			t.Errorf("server FIN reason = %q", r)
		}
	})
	t.Run("no listener", func(t *testing.T) {
		lab, _, _ := connected(t)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := lab.Client.Dial(ctx, lab.ServerAddr(1)); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Dial to a closed port = %v, want connection refused", err)
		}
		if r := sent(t, lab, "server", "R.").Reason; r != "segment for no connection: nothing listens on port 1" {
			t.Errorf("reason = %q", r)
		}
	})
}

func TestFlagString(t *testing.T) {
	for _, tc := range []struct {
		f    uint8
		want string
	}{{0x02, "S"}, {0x12, "S."}, {0x10, "."}, {0x18, "P."}, {0x11, "F."}, {0x19, "FP."}, {0x04, "R"}, {0x14, "R."}, {0, "none"}} {
		if got := stack.FlagString(headerFlags(tc.f)); got != tc.want {
			t.Errorf("FlagString(%#x) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func headerFlags(f uint8) header.TCPFlags { return header.TCPFlags(f) }
