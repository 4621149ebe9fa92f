package stack_test

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

func TestCloseThenReplyGetsReset(t *testing.T) {
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := lab.Server.Listen(9527, 0)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := lab.Client.Dial(ctx, lab.ServerAddr(9527))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Write(ctx, []byte("aaa")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := sc.Read(ctx, buf); err != nil || string(buf[:n]) != "aaa" {
		t.Fatalf("server Read = %q, %v; want aaa", buf[:n], err)
	}
	cc.Close()
	time.Sleep(50 * time.Millisecond)
	sc.Write(ctx, []byte("Hi, aaa"))
	_, rerr := sc.Read(ctx, buf)
	time.Sleep(50 * time.Millisecond)
	_, rerr2 := sc.Read(ctx, buf)
	for _, e := range lab.Trace.Events() {
		t.Logf("%8.4f %s %s %s %s %s %d %d len=%d %s|%s %s->%s %s ret=%d err=%s %s", e.T.Seconds(), e.Host, e.Conn, e.Kind, e.Dir, e.Flags, e.Seq, e.Ack, e.Len, e.Reason, e.Call, e.From, e.To, e.Arg, e.Ret, e.Err, e.Data)
		if e.Kind == trace.Buffer {
			t.Logf("   snd=%d rcv=%d", e.SndQueued, e.RcvQueued)
		}
	}
	if !(errors.Is(rerr, io.EOF) || errors.Is(rerr, syscall.ECONNRESET)) {
		t.Errorf("server Read after close = %v", rerr)
	}
	t.Logf("reads: %v %v", rerr, rerr2)
}
