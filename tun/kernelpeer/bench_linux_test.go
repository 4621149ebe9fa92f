package kernelpeer

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
)

// BenchmarkBulk measures the cost of watching the kernel: a
// one-stream bulk transfer, one MiB per iteration, from the gVisor client
// host to a kernel server socket over the TUN lab (MTU 1500), traced, with
// the kernel observed by eBPF or sampled with sock_diag and mirrored
// segments. The kernel and gVisor do the same work in both
// cases; the difference is what observing costs. It reports Gbit/s and
// trace events per MiB. Needs root; observer=on also needs BPF.
//
// Its cases are named like package tun's BenchmarkBulk, so that `make
// bench` shows them in the same table: wire=tun+kernel/mtu=1500/trace=
// sampled (observer off) and trace=ebpf (observer on).
func BenchmarkBulk(b *testing.B) {
	b.Run("wire=tun+kernel/mtu=1500", func(b *testing.B) {
		for _, observe := range []bool{false, true} {
			b.Run("trace="+map[bool]string{false: "sampled", true: "ebpf"}[observe], func(b *testing.B) { benchKernelBulk(b, observe, false) })
		}
		b.Run("trace=ebpf+summary", func(b *testing.B) { benchKernelBulk(b, true, true) })
	})
}

// With summarise, the trace summarises bulk data (trace.Recorder.Summarise,
// as tcplab exec does): heap-MiB, the live heap after the transfer with the
// trace still held, shows what a long run costs in memory.
func benchKernelBulk(b *testing.B, observe, summarise bool) {
	needPrivileges(b)
	w, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		b.Fatalf("tun.New: %v", err)
	}
	lab, err := stack.NewLab(w, stack.Config{}, false)
	if err != nil {
		b.Fatalf("stack.NewLab: %v", err)
	}
	if summarise {
		lab.Trace.Summarise(trace.SummaryConfig{})
	}
	peer, err := NewConfig(w, "server", lab.Trace, Config{Sample: !observe})
	if err != nil {
		lab.Close()
		b.Fatalf("NewConfig: %v", err)
	}
	if observe && peer.obs == nil {
		peer.Close()
		lab.Close()
		b.Skip("skipping: the eBPF observer is not available here (see the trace's first note)")
	}
	b.Cleanup(func() {
		peer.Close()
		lab.Close()
	})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	const port = 5001
	ln, err := peer.Listen(port, 1)
	if err != nil {
		b.Fatalf("Listen: %v", err)
	}
	setup, cancelSetup := context.WithTimeout(ctx, 5*time.Second)
	defer cancelSetup()
	accepted := make(chan stack.Socket, 1)
	go func() {
		s, err := ln.Accept(setup)
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- s
	}()
	client, err := lab.Client.Dial(setup, netip.AddrPortFrom(peer.Addr(), port))
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	ss := <-accepted
	if ss == nil {
		b.Fatal("Accept failed")
	}
	before := lab.Trace.Len()
	done := make(chan int64, 1)
	go func() {
		buf := make([]byte, 256<<10)
		var n int64
		for {
			k, err := ss.Read(ctx, buf)
			n += int64(k)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					n = -1
				}
				break
			}
		}
		done <- n
	}()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	runtime.GC()
	b.SetBytes(int64(len(chunk)))
	var sent int64
	for b.Loop() {
		n, err := client.Write(ctx, chunk)
		sent += int64(n)
		if err != nil {
			b.Fatalf("write after %d bytes: %v", sent, err)
		}
	}
	b.StartTimer()
	client.Close()
	got := <-done
	b.StopTimer()
	if got != sent {
		b.Fatalf("the kernel read %d of %d bytes", got, sent)
	}
	b.ReportMetric(float64(sent)*8/b.Elapsed().Seconds()/1e9, "Gbit/s")
	b.ReportMetric(float64(lab.Trace.Len()-before)/float64(b.N), "events/MiB")
	if observe {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(lab.Trace.Stats().Kept)/float64(b.N), "kept/MiB")
	}
	runtime.KeepAlive(lab)
	ss.Close()
	ln.Close()
}
