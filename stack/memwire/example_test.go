package memwire_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// ExampleNewLab runs a half-close on the in-memory wire in virtual time:
// the client shutdown(SHUT_WR)s, still reads the server's answer, and holds
// TIME-WAIT after the server closes. Wire.Sleep lets the 60 s of TIME-WAIT
// pass at once; the seed makes the trace (ports, sequence numbers) the same
// on every run.
func ExampleNewLab() {
	lab, w, err := memwire.NewLab(memwire.LabConfig{Seed: 7})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	l, _ := lab.Server.Listen(9527, 0)
	c, err := lab.Client.Dial(ctx, lab.ServerAddr(9527))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, _ := l.Accept(ctx)
	fmt.Println("client", c.LocalAddr(), "-> server", c.RemoteAddr())
	c.Write(ctx, []byte("aaa"))
	c.Shutdown(stack.ShutWR)
	buf := make([]byte, 100)
	n, _ := s.Read(ctx, buf)
	s.Write(ctx, []byte("Hi, "+string(buf[:n])))
	n, _ = c.Read(ctx, buf)
	fmt.Printf("client read %q\n", buf[:n])
	s.Read(ctx, buf) // EOF: the client's FIN
	s.Close()
	w.Settle(ctx)
	fmt.Println("client", c.State(), "server", s.State())

	w.Sleep(ctx, 61*time.Second) // virtual: returns in milliseconds
	fmt.Println("after 61 s: client", c.State())
	for _, e := range lab.Trace.Events() {
		if e.Kind == trace.Segment && e.Dir == "out" && (e.Flags == "F." || e.Flags == "FP.") {
			fmt.Printf("%v %s sent [%s]: %s\n", e.T, e.Host, e.Flags, e.Reason)
		}
	}
	last := lab.Trace.Events()[lab.Trace.Len()-1]
	fmt.Printf("%v %s %s -> %s\n", last.T, last.Host, last.From, last.To)
	// Output:
	// client 198.18.0.1:32462 -> server 198.18.0.2:9527
	// client read "Hi, aaa"
	// client TIME-WAIT server CLOSED
	// after 61 s: client CLOSED
	// 750µs client sent [F.]: shutdown(SHUT_WR): half-close; no more data from this side, the socket can still read
	// 1.25ms server sent [F.]: close(): the application is done with the socket; no more data from this side
	// 1m0.0015s client TIME-WAIT -> CLOSED
}
