package tun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// bulkChunk is what one benchmark iteration moves: one write of 1 MiB, so
// -benchtime=1024x moves 1 GiB.
const bulkChunk = 1 << 20

// bulkReadSize is the receiver's read buffer, the same for every wire.
const bulkReadSize = 256 << 10

// bulkMTUs are the MTUs every wire is measured at.
var bulkMTUs = []int{1500, 65000}

// BenchmarkBulk measures a one-stream bulk TCP transfer, client to server,
// one MiB per iteration:
//
//	wire=kernel-veth/mtu=M           two Linux sockets in two namespaces
//	                                 joined by a veth pair (the yardstick)
//	wire=tun/mtu=M/trace=off|on      the two gVisor hosts over the TUN lab
//	wire=memory/mtu=M/trace=off|on   the two gVisor hosts over memwire
//
// Besides ns/op and MB/s it reports Gbit/s (payload bits per second, the
// time until the receiver has read the last byte) and, with tracing on,
// trace events per MiB. Setup and teardown are not timed. cmd/benchtable
// turns the output into a table. The kernel and tun wires need root; they
// are skipped with the reason when Check fails.
func BenchmarkBulk(b *testing.B) {
	b.Run("wire=kernel-veth", func(b *testing.B) {
		for _, mtu := range bulkMTUs {
			b.Run(fmt.Sprintf("mtu=%d", mtu), func(b *testing.B) { benchKernelBulk(b, mtu) })
		}
	})
	for _, wire := range []string{"tun", "memory"} {
		b.Run("wire="+wire, func(b *testing.B) {
			for _, mtu := range bulkMTUs {
				b.Run(fmt.Sprintf("mtu=%d", mtu), func(b *testing.B) {
					for _, on := range []bool{false, true} {
						b.Run("trace="+map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
							benchLabBulk(b, wire, mtu, on)
						})
					}
				})
			}
		})
	}
}

// skipWithoutLab skips b, with the reason, when Check fails.
func skipWithoutLab(b *testing.B) {
	b.Helper()
	if err := Check(); err != nil {
		b.Skipf("skipping: %v", err)
	}
}

// benchKernelBulk is the kernel yardstick: bulk TCP between two Linux
// sockets across a veth pair with the given MTU.
func benchKernelBulk(b *testing.B, mtu int) {
	skipWithoutLab(b)
	v := newVethPair(b, mtu)
	left, right := connect(b, v)
	runBulk(b, left.Write, left.Close, right.Read, func() { right.Close() })
}

// benchLabBulk measures the two gVisor hosts of a stack.Lab on wire ("tun"
// or "memory") with the given MTU, with or without a trace recorder.
func benchLabBulk(b *testing.B, wire string, mtu int, traced bool) {
	var w stack.Wire
	switch wire {
	case "tun":
		skipWithoutLab(b)
		l, err := New(context.Background(), Config{MTU: mtu})
		if err != nil {
			b.Fatalf("New: %v", err)
		}
		w = l
	case "memory":
		w = memwire.New(memwire.Config{MTU: mtu})
	default:
		b.Fatalf("unknown wire %q", wire)
	}
	var cfg stack.Config
	if traced {
		cfg.Recorder = trace.NewRecorder(nil)
	}
	lab, err := stack.NewLab(w, cfg, !traced) // owns w from here on
	if err != nil {
		b.Fatalf("NewLab: %v", err)
	}
	b.Cleanup(func() {
		if err := lab.Close(); err != nil {
			b.Errorf("close lab: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	const port = 5001
	ln, err := lab.Server.Listen(port, 1)
	if err != nil {
		b.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	setup, cancelSetup := context.WithTimeout(ctx, 5*time.Second)
	defer cancelSetup()
	client, err := lab.Client.Dial(setup, lab.ServerAddr(port))
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	server, err := ln.Accept(setup)
	if err != nil {
		b.Fatalf("Accept: %v", err)
	}
	b.Cleanup(func() { server.Close() })

	var before int
	if traced {
		before = lab.Trace.Len()
	}
	runBulk(b,
		func(p []byte) (int, error) { return client.Write(ctx, p) },
		client.Close,
		func(p []byte) (int, error) { return server.Read(ctx, p) },
		cancel)
	if traced {
		events := lab.Trace.Len() - before
		b.ReportMetric(float64(events)/float64(b.N), "events/MiB")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	}
}

// received is what the receiver read: n bytes, then err (nil at EOF).
type received struct {
	n   int64
	err error
}

// runBulk is the timed part of every BenchmarkBulk case. The connection
// is set up; write sends on it, closeWrite ends the stream (FIN) and read
// reads the other end. runBulk starts a receiver goroutine that reads until
// end of stream and discards the data, writes one MiB per iteration,
// closes, and stops the timer once the receiver has read every byte. It
// reports Gbit/s.
//
// abort must make a blocked read return (close the socket, cancel its
// context). A cleanup calls it and waits for the receiver, so no goroutine
// outlives the benchmark even when it fails early; it runs before the
// cleanups the caller registered earlier, e.g. closing the lab.
func runBulk(b *testing.B, write func([]byte) (int, error), closeWrite func() error, read func([]byte) (int, error), abort func()) {
	b.Helper()
	done := make(chan received, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, bulkReadSize)
		var r received
		for {
			n, err := read(buf)
			r.n += int64(n)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					r.err = err
				}
				break
			}
		}
		done <- r
	}()
	b.Cleanup(func() {
		abort()
		<-stopped
	})

	chunk := make([]byte, bulkChunk)
	for i := range chunk {
		chunk[i] = byte(i) // not all zeros, in case anything compresses
	}
	runtime.GC() // do not pay for the previous case's garbage
	b.SetBytes(bulkChunk)
	var sent int64
	for b.Loop() {
		n, err := write(chunk)
		sent += int64(n)
		if err != nil {
			b.Fatalf("write after %d bytes: %v", sent, err)
		}
	}
	// The bytes still in flight belong to the measurement: time until the
	// receiver has them all.
	b.StartTimer()
	if err := closeWrite(); err != nil {
		b.Fatalf("close sender: %v", err)
	}
	r := <-done
	b.StopTimer()
	if r.err != nil || r.n != sent {
		b.Fatalf("receiver read %d of %d bytes: %v", r.n, sent, r.err)
	}
	b.ReportMetric(float64(sent)*8/b.Elapsed().Seconds()/1e9, "Gbit/s")
}
