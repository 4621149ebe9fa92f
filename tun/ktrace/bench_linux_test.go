package ktrace

import (
	"io"
	"testing"
	"time"
)

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
			lost, _ := o.Lost()
			o.Close()
			n := <-counted
			b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(n)/float64(b.N), "events/op")
			b.ReportMetric(float64(lost), "lost")
		})
	}
}
