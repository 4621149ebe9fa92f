package ktrace

import (
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// enableStats turns on the kernel's run-time accounting of BPF programs
// until the benchmark ends (it costs two clock reads per program run).
func enableStats(b *testing.B) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Logf("no BPF run-time statistics: %v", err)
		return
	}
	b.Cleanup(func() { c.Close() })
}

// reportKernelCost reports the time the observer's programs ran in the
// kernel per benchmark op, and logs each program's runs and cost per run.
func reportKernelCost(b *testing.B, o *Observer) {
	var total time.Duration
	v := reflect.ValueOf(o.objs.ktracePrograms)
	for i := range v.NumField() {
		p, ok := v.Field(i).Interface().(*ebpf.Program)
		if !ok || p == nil {
			continue
		}
		st, err := p.Stats()
		if err != nil || st.RunCount == 0 {
			continue
		}
		total += st.Runtime
		b.Logf("%-20s %8d runs %6.0f ns/run", v.Type().Field(i).Name, st.RunCount, float64(st.Runtime)/float64(st.RunCount))
	}
	b.ReportMetric(float64(total)/float64(b.N), "bpf-ns/op")
}

// drain counts the observer's events until the channel closes and sends
// the count on done.
func drain(o *Observer) <-chan int {
	done := make(chan int, 1)
	go func() {
		n := 0
		for range o.Events() {
			n++
		}
		done <- n
	}()
	return done
}

// BenchmarkBulk sends 256 MiB per op over loopback in a private namespace
// between kernel sockets, with the observer off and on (its events
// drained and counted), to measure what observing costs a bulk transfer.
func BenchmarkBulk(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "observer=off"
		if on {
			name = "observer=on"
		}
		b.Run(name, func(b *testing.B) {
			ns := newNetns(b)
			var o *Observer
			var counted <-chan int
			if on {
				enableStats(b)
				o = openObserver(b, ns.ino)
				counted = drain(o)
			}
			client, server := pair(b, ns, "127.0.0.1")
			defer client.Close()
			go io.Copy(io.Discard, server)
			buf := make([]byte, 1<<20)
			const total = 256 << 20
			b.SetBytes(total)
			b.ResetTimer()
			for range b.N {
				for sent := 0; sent < total; sent += len(buf) {
					if _, err := client.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			if on {
				reportKernelCost(b, o)
				lost, _ := o.Lost()
				o.Close()
				b.ReportMetric(float64(<-counted)/float64(b.N), "events/op")
				b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
			}
			server.Close()
		})
	}
}

// BenchmarkPingPong measures the cost per event and the event rate the
// observer sustains: one-byte ping-pong over loopback (TCP_NODELAY), with
// the observer off and on; each round trip is about six events (two Sent,
// two Received, two Probe).
func BenchmarkPingPong(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "observer=off"
		if on {
			name = "observer=on"
		}
		b.Run(name, func(b *testing.B) {
			ns := newNetns(b)
			var o *Observer
			var counted <-chan int
			if on {
				enableStats(b)
				o = openObserver(b, ns.ino)
				counted = drain(o)
			}
			client, server := pair(b, ns, "127.0.0.1")
			defer client.Close()
			go func() {
				defer server.Close()
				p := make([]byte, 1)
				for {
					if _, err := io.ReadFull(server, p); err != nil {
						return
					}
					if _, err := server.Write(p); err != nil {
						return
					}
				}
			}()
			p := make([]byte, 1)
			start := time.Now()
			b.ResetTimer()
			for range b.N {
				if _, err := client.Write(p); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, p); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			elapsed := time.Since(start)
			if !on {
				return
			}
			time.Sleep(50 * time.Millisecond) // let the reader catch up
			reportKernelCost(b, o)
			lost, _ := o.Lost()
			o.Close()
			n := <-counted
			b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(n)/float64(b.N), "events/op")
			b.ReportMetric(float64(lost), "lost")
		})
	}
}
