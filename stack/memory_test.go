package stack_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
)

// heapAfterGC returns the bytes of live heap.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// churn opens and closes n connections one after the other on lab, the
// client closing first (its side goes through TIME-WAIT).
func churn(t *testing.T, lab *stack.Lab, l *stack.Listener, n int) {
	t.Helper()
	buf := make([]byte, 16)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := lab.Client.Dial(ctx, lab.ServerAddr(80))
		if err != nil {
			cancel()
			t.Fatalf("connection %d: %v", i, err)
		}
		s, err := l.Accept(ctx)
		if err != nil {
			cancel()
			t.Fatalf("connection %d: accept: %v", i, err)
		}
		c.Write(ctx, []byte("hi"))
		s.Read(ctx, buf)
		c.Close()
		s.Read(ctx, buf) // EOF
		s.Close()
		cancel()
	}
}

// TestLongLivedHostMemory opens and closes 20,000 connections on one lab
// (issue 9: 280 MB of heap, every connection kept). A host forgets closed
// connections beyond Config.KeepClosed, so its heap follows its live
// connections: the growth from 1,000 to 20,000 connections must stay under
// 4 MB, i.e. under 220 bytes per connection, when one connection record
// with its gVisor endpoint and buffers alone is several kilobytes. After
// Lab.Close, Conns remembers at most KeepClosed connections. The lab runs
// without a trace: a Recorder keeps every event by design (about 40 events,
// 15 kB, per connection of this churn), which is the trace's memory, not
// the host's.
func TestLongLivedHostMemory(t *testing.T) {
	total := 20000
	if testing.Short() || raceDetector {
		total = 5000 // still 2 kB per connection at most, main kept 8 kB
	}
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{TimeWait: time.Millisecond}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	l, err := lab.Server.Listen(80, 0)
	if err != nil {
		t.Fatal(err)
	}
	churn(t, lab, l, 1000)
	time.Sleep(50 * time.Millisecond) // the last TIME-WAITs end
	before := heapAfterGC()
	start := time.Now()
	churn(t, lab, l, total-1000)
	took := time.Since(start)
	time.Sleep(50 * time.Millisecond)
	after := heapAfterGC()
	growth := int64(after) - int64(before)
	t.Logf("heap %.1f MB after 1,000 connections, %.1f MB after %d (%+d B per connection; %v for %d)",
		float64(before)/1e6, float64(after)/1e6, total, growth/int64(total-1000), took, total-1000)
	if limit := int64(4 << 20); growth > limit {
		t.Errorf("heap grew %d bytes over %d connections, want under %d: closed connections are kept", growth, total-1000, limit)
	}
	if n := len(lab.Client.Conns()); n > 64 {
		t.Errorf("client Conns() lists %d connections, want at most 64 (KeepClosed default)", n)
	}
	lab.Close()
	if n := len(lab.Server.Conns()); n > 64 {
		t.Errorf("after Close, server Conns() lists %d connections, want at most 64", n)
	}
}

// TestConnsKeepsRecentClosed: with tracing on, a closed connection stays
// listed (and its ledger readable) until KeepClosed newer ones closed.
func TestConnsKeepsRecentClosed(t *testing.T) {
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{TimeWait: time.Millisecond, KeepClosed: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	l, err := lab.Server.Listen(80, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 10 {
		c, err := lab.Client.Dial(ctx, lab.ServerAddr(80))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatalf("connection %d: accept: %v", i, err)
		}
		c.SetLinger(true, 0)
		c.Close() // RST: CLOSED at once, so they close in creation order
		s.Read(ctx, make([]byte, 8))
		s.Close()
	}
	c, err := lab.Client.Dial(ctx, lab.ServerAddr(80)) // forgets the oldest
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range lab.Client.Conns() {
		ids = append(ids, x.ID())
	}
	if want := []string{"c8", "c9", "c10", "c11"}; len(ids) != 4 || ids[0] != want[0] || ids[3] != want[3] {
		t.Errorf("client Conns() = %v, want %v: the 3 last closed and the live one", ids, want)
	}
	if c.ID() != "c11" {
		t.Errorf("new connection is %s, want c11", c.ID())
	}
}

// TestListenAfterClose: a closed host refuses new sockets with
// ErrHostClosed.
func TestListenAfterClose(t *testing.T) {
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	lab.Close()
	if _, err := lab.Server.Listen(80, 0); !errors.Is(err, stack.ErrHostClosed) {
		t.Errorf("Listen after Close = %v, want ErrHostClosed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := lab.Client.Dial(ctx, lab.ServerAddr(80)); !errors.Is(err, stack.ErrHostClosed) {
		t.Errorf("Dial after Close = %v, want ErrHostClosed", err)
	}
}
