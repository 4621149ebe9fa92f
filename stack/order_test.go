package stack_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// stateOrderErrors returns the state events of events that do not start
// where the previous transition of their connection ended, or go back to
// a handshake state after ESTABLISHED.
func stateOrderErrors(events []trace.Event) []trace.Event {
	var bad []trace.Event
	last := map[string]string{}
	synced := map[string]bool{}
	for _, e := range events {
		if e.Kind == trace.Note && e.Conn != "" {
			bad = append(bad, e) // "ignored an impossible state order"
		}
		if e.Kind != trace.State {
			continue
		}
		k := e.Host + "/" + e.Conn
		if prev, ok := last[k]; (ok && prev != e.From) || (synced[k] && (e.To == "SYN-SENT" || e.To == "SYN-RECEIVED")) {
			bad = append(bad, e)
		}
		synced[k] = synced[k] || e.To == "ESTABLISHED"
		last[k] = e.To
	}
	return bad
}

// TestStateOrderUnderConcurrentSampling opens, uses and closes connections
// in real time while other goroutines sample both hosts' states without
// pause, as the probe, the waiter queue and the poller do in a run: every
// sample that read a state must record it before a later one, so the
// trace of each connection is one path through TCP's states (issue 8
// finding 6: ESTABLISHED -> SYN-SENT -> ESTABLISHED).
func TestStateOrderUnderConcurrentSampling(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 30
	}
	for i := range rounds {
		lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{PollInterval: -1}, false)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, h := range []*stack.Host{lab.Client, lab.Server, lab.Client, lab.Server} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						h.Sample()
						runtime.Gosched()
					}
				}
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
		c.Write(ctx, []byte("aaa"))
		time.Sleep(time.Millisecond)
		s.Close() // unread data: RST
		c.Read(ctx, make([]byte, 8))
		cancel()
		close(stop)
		wg.Wait()
		lab.Close()
		if bad := stateOrderErrors(lab.Trace.Events()); len(bad) > 0 {
			for _, e := range bad {
				t.Errorf("round %d: %s %s: %s -> %s %s", i, e.Host, e.Conn, e.From, e.To, e.Text)
			}
			return
		}
	}
}
