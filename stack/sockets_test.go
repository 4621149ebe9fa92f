package stack_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
)

// A socket made before it connects takes options, a bind and O_NONBLOCK
// first; non-blocking, connect says EINPROGRESS and read and accept
// EAGAIN; the connection keeps the socket's name.
func TestFreshSocketNonblocking(t *testing.T) {
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ls, err := lab.Server.NewSocket(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Listen(1); !errors.Is(err, syscall.EDESTADDRREQ) {
		t.Errorf("Listen before Bind = %v, want EDESTADDRREQ", err)
	}
	if err := ls.Bind(9527); err != nil {
		t.Fatal(err)
	}
	l, err := ls.Listen(1)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID() != "l1" || ls.ID() != "l1" {
		t.Errorf("listener %s from socket %s, want l1", l.ID(), ls.ID())
	}
	if err := ls.SetNonblock(true); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(ctx); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("Accept on an empty non-blocking listener = %v, want EAGAIN", err)
	}

	cs, err := lab.Client.NewSocket(false)
	if err != nil {
		t.Fatal(err)
	}
	cs.SetNonblock(true)
	cs.SetLinger(true, 0)
	if err := cs.Bind(40000); err != nil {
		t.Fatal(err)
	}
	c, err := cs.Connect(ctx, lab.ServerAddr(9527))
	if !errors.Is(err, syscall.EINPROGRESS) || c == nil || c.ID() != cs.ID() {
		t.Fatalf("non-blocking Connect = %v, %v; want the connection %s and EINPROGRESS", c, err, cs.ID())
	}
	if _, err := c.Read(ctx, make([]byte, 8)); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("Read on an empty non-blocking socket = %v, want EAGAIN", err)
	}
	// The handshake completes on its own; a blocking accept then returns it.
	ls.SetNonblock(false)
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.(*stack.Conn).RemoteAddr().Port(); got != 40000 {
		t.Errorf("accepted a connection from port %d, want 40000 (the bind)", got)
	}
	if _, err := cs.Connect(ctx, lab.ServerAddr(9527)); !errors.Is(err, syscall.EISCONN) {
		t.Errorf("second Connect = %v, want EISCONN", err)
	}
}

// A call waiting in the background does not count as blocked (virtual time
// must not move for it); in the foreground it does, and the Waiter learns
// when it started to wait.
func TestWaiterBackground(t *testing.T) {
	lab, c, _ := connected(t)
	w := &stack.Waiter{}
	w.SetBackground(true)
	ctx, cancel := context.WithCancel(stack.WithWaiter(context.Background(), w))
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, make([]byte, 8))
		done <- err
	}()
	select {
	case <-w.Waiting():
	case <-time.After(5 * time.Second):
		t.Fatal("the read never told its Waiter it waits")
	}
	if _, ok := lab.Client.Blocked(); ok {
		t.Errorf("a background read counts as blocked")
	}
	w.SetBackground(false)
	if _, ok := lab.Client.Blocked(); !ok {
		t.Errorf("a foreground read does not count as blocked")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read = %v", err)
	}
	if _, ok := lab.Client.Blocked(); ok {
		t.Errorf("a returned read still counts as blocked")
	}
}

// Closing a socket while its non-blocking connect is in SYN-SENT aborts
// the handshake: no FIN leaves.
func TestFreshSocketCloseInSynSent(t *testing.T) {
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	lab.Hold()
	cs, err := lab.Client.NewSocket(false)
	if err != nil {
		t.Fatal(err)
	}
	cs.SetNonblock(true)
	c, err := cs.Connect(context.Background(), lab.ServerAddr(9527))
	if !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("Connect = %v, want EINPROGRESS", err)
	}
	if st := c.State(); st != "SYN-SENT" {
		t.Errorf("state after connect = %s, want SYN-SENT", st)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st != "CLOSED" {
		t.Errorf("state after close = %s, want CLOSED", st)
	}
	if err := cs.Close(); !errors.Is(err, syscall.EBADF) {
		t.Errorf("second Close = %v, want EBADF", err)
	}
}
