package stack_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// Example runs the founding experiment of tcplab as a library: two gVisor
// hosts on the in-memory wire in virtual time (seeded, so the trace is the
// same on every run), a connection, a write the server reads, then the
// client's close() while the server still answers. It prints the trace's
// segments, calls and state changes, and each side's ledger.
func Example() {
	lab, w, err := memwire.NewLab(memwire.LabConfig{Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	l, err := lab.Server.Listen(9527, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := lab.Client.Dial(ctx, lab.ServerAddr(9527))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := l.Accept(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Write(ctx, []byte("aaa"))
	buf := make([]byte, 100)
	n, _ := s.Read(ctx, buf)
	w.Settle(ctx) // until every packet in flight has arrived
	c.Close()
	w.Sleep(ctx, 5*time.Second) // the server "works": 5 s of virtual time, no wait
	s.Write(ctx, []byte("Hi, "+string(buf[:n])))
	w.Settle(ctx)
	s.Read(ctx, buf)

	for _, e := range lab.Trace.Events() {
		var what string
		switch e.Kind {
		case trace.Segment:
			if e.Dir != "out" {
				continue // each segment once, as its sender sent it
			}
			what = fmt.Sprintf("sent [%s] len %d %s", e.Flags, e.Len, e.Reason)
		case trace.Call:
			what = fmt.Sprintf("%s(%s) = %d %s", e.Call, e.Arg, e.Ret, e.Err)
		case trace.State:
			what = e.From + " -> " + e.To
		default:
			continue // buffer levels
		}
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%-8v %s %s", e.T, e.Host, what)))
	}
	for _, x := range []struct {
		name string
		led  stack.Ledger
	}{{"client", c.Ledger()}, {"server", s.Ledger()}} {
		fmt.Printf("%s: written %d, acked %d, received %d, read %d", x.name, x.led.Written, x.led.Acked, x.led.Received, x.led.Read)
		if d := x.led.Discarded; d != nil {
			fmt.Printf("; %s destroyed %d unacked, %d unread", d.By, d.Unacked, d.Unread)
		}
		fmt.Println()
	}
	// Output:
	// 0s       server listen(9527) = 0
	// 0s       server CLOSED -> LISTEN
	// 0s       client CLOSED -> SYN-SENT
	// 0s       client sent [S] len 0
	// 250µs    server LISTEN -> SYN-RECEIVED
	// 250µs    server sent [S.] len 0
	// 500µs    client SYN-SENT -> ESTABLISHED
	// 500µs    client sent [.] len 0
	// 500µs    client connect(198.18.0.2:9527) = 0
	// 750µs    server accept() = 0
	// 750µs    server SYN-RECEIVED -> ESTABLISHED
	// 750µs    client write(3) = 3
	// 750µs    client sent [P.] len 3
	// 1ms      server sent [.] len 0
	// 1ms      server read(100) = 3
	// 1.25ms   client close() = 0
	// 1.25ms   client ESTABLISHED -> FIN-WAIT-1
	// 1.25ms   client sent [F.] len 0 close(): the application is done with the socket; no more data from this side
	// 1.5ms    server sent [.] len 0
	// 1.5ms    server ESTABLISHED -> CLOSE-WAIT
	// 1.75ms   client FIN-WAIT-1 -> FIN-WAIT-2
	// 5.00175s server write(7) = 7
	// 5.00175s server sent [P.] len 7
	// 5.002s   client sent [R.] len 0 data arrived in FIN-WAIT-2 after close(): no socket owns the connection any more, nobody can read it
	// 5.002s   client FIN-WAIT-2 -> CLOSED
	// 5.00225s server CLOSE-WAIT -> CLOSED
	// 5.00225s server read(100) = 0 EOF
	// client: written 3, acked 3, received 7, read 0; RST sent destroyed 0 unacked, 0 unread
	// server: written 7, acked 0, received 3, read 3; RST received destroyed 7 unacked, 0 unread
}
