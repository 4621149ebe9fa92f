package render

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// settle waits until the trace stops growing, so that each step of a
// scenario is finished before the next starts and the order of events is
// the same from run to run.
func settle(lab *stack.Lab) {
	n, quiet := lab.Trace.Len(), 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && quiet < 4; {
		time.Sleep(10 * time.Millisecond)
		if m := lab.Trace.Len(); m == n {
			quiet++
		} else {
			n, quiet = m, 0
		}
	}
}

// closeTrace runs the close experiment on the in-memory wire: the client
// writes "aaa" and closes, the server answers "Hi, aaa" into the closed
// socket and the client resets the connection.
func closeTrace(t testing.TB) []trace.Event {
	t.Helper()
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{KeepPackets: true}, false)
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
	settle(lab)
	cc, err := lab.Client.Dial(ctx, lab.ServerAddr(9527))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	settle(lab)
	if _, err := cc.Write(ctx, []byte("aaa")); err != nil {
		t.Fatal(err)
	}
	settle(lab)
	buf := make([]byte, 64)
	if n, err := sc.Read(ctx, buf); err != nil || string(buf[:n]) != "aaa" {
		t.Fatalf("server Read = %q, %v; want aaa", buf[:n], err)
	}
	settle(lab)
	cc.Close()
	settle(lab)
	sc.Write(ctx, []byte("Hi, aaa"))
	settle(lab)
	sc.Read(ctx, buf)
	settle(lab)
	return lab.Trace.Events()
}

func TestDumpScratch(t *testing.T) {
	ev := closeTrace(t)
	var b bytes.Buffer
	NewText(&b, TextOptions{NoTime: true, Arrivals: true}).WriteAll(ev)
	t.Log("\n" + b.String())
}

// bulkTrace runs a bulk transfer: the client writes size bytes while the
// server reads them, then both close.
func bulkTrace(t testing.TB, size int) []trace.Event {
	t.Helper()
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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
	settle(lab)
	got := make(chan int, 1)
	go func() {
		buf, total := make([]byte, 64<<10), 0
		for total < size {
			n, err := sc.Read(ctx, buf)
			total += n
			if err != nil {
				break
			}
		}
		got <- total
	}()
	if _, err := cc.Write(ctx, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != size {
		t.Fatalf("server read %d bytes, want %d", n, size)
	}
	settle(lab)
	cc.Close()
	settle(lab)
	sc.Close()
	settle(lab)
	return lab.Trace.Events()
}

func TestDumpBulk(t *testing.T) {
	ev := bulkTrace(t, 2<<20)
	var b bytes.Buffer
	for _, e := range ev {
		if e.Kind == trace.Segment && e.Dir == "in" {
			continue
		}
		switch e.Kind {
		case trace.Segment:
			b.WriteString(e.Host[:1] + e.Flags + " ")
		case trace.Call:
			b.WriteString("\n" + e.Host + " " + Call(e) + "\n")
		case trace.State:
			b.WriteString("\n" + e.Host + " " + e.To + "\n")
		case trace.Buffer:
			b.WriteString("b" + e.Host[:1] + " ")
		}
	}
	t.Log(len(ev), "\n"+b.String())
}
