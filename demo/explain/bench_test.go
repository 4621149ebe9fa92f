package explain

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// benchConv is connection i of the benchmark's capture: a request, a
// response of segs full segments, and a teardown that varies with i (the
// close experiment, a clean shutdown, a refused SYN).
func benchConv(i, segs int) conv {
	cl := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 16), byte(i >> 8)}), uint16(1024+i%60000))
	c := conv{client: cl, server: sAddr, cisn: uint32(i) * 7919, sisn: uint32(i) * 104729}
	if i%10 == 9 {
		c.pkts = refusedConv.pkts
		return c
	}
	c.pkts = append(handshake(), wpkt{flags: fPA, seq: 1, ack: 1, win: 228, len: 300})
	seq := uint32(1)
	for k := 0; k < segs; k++ {
		c.pkts = append(c.pkts, wpkt{fromServer: true, flags: fPA, seq: seq, ack: 301, win: 228, len: 1448})
		seq += 1448
		if k%2 == 1 {
			c.pkts = append(c.pkts, wpkt{flags: fA, seq: 301, ack: seq, win: 228})
		}
	}
	if i%2 == 0 {
		c.pkts = append(c.pkts, wpkt{flags: fFA, seq: 301, ack: seq, win: 228}, wpkt{fromServer: true, flags: fA, seq: seq, ack: 302, win: 228},
			wpkt{fromServer: true, flags: fPA, seq: seq, ack: 302, win: 228, len: 7}, wpkt{flags: fRA, seq: 302, ack: seq})
	} else {
		c.pkts = append(c.pkts, wpkt{flags: fFA, seq: 301, ack: seq, win: 228}, wpkt{fromServer: true, flags: fA, seq: seq, ack: 302, win: 228},
			wpkt{fromServer: true, flags: fFA, seq: seq, ack: 302, win: 228}, wpkt{flags: fA, seq: 302, ack: seq + 1, win: 228})
	}
	return c
}

// writeBenchCapture writes conns connections, 64 at a time interleaved
// packet by packet, 100 µs apart, to a pcap file; it returns the file's
// size and packet count.
func writeBenchCapture(b *testing.B, path string, conns, segs int) (int64, int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		b.Fatal(err)
	}
	now, n := t0, 0
	for base := 0; base < conns; base += 64 {
		var group []conv
		for i := base; i < min(base+64, conns); i++ {
			group = append(group, benchConv(i, segs))
		}
		for k := 0; ; k++ {
			wrote := false
			for _, c := range group {
				if k >= len(c.pkts) {
					continue
				}
				now = now.Add(100 * time.Microsecond)
				data := c.frame(b, c.pkts[k], linkEthernet, 0)
				if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: now, CaptureLength: len(data), Length: len(data)}, data); err != nil {
					b.Fatal(err)
				}
				wrote = true
				n++
			}
			if !wrote {
				break
			}
		}
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	fi, _ := f.Stat()
	f.Close()
	return fi.Size(), n
}

// BenchmarkExplain summarises a synthetic capture of 20,000 connections
// (about 22 packets and 12 KB each) read from a file, as `tcplab explain
// --summary` does, and reports throughput, the heap's peak and the
// process's peak resident memory while it summarised (VmHWM, reset after
// the capture was written). EXPLAIN_BENCH_CONNS and EXPLAIN_BENCH_SEGS
// (full-sized segments of response per connection, 8 by default) set
// another size: `make bench` runs 100,000 connections of 7 segments, about
// 1.1 GB. The capture is written to a temporary directory and removed.
func BenchmarkExplain(b *testing.B) {
	conns, segs := 20000, 8
	if s := os.Getenv("EXPLAIN_BENCH_CONNS"); s != "" {
		fmt.Sscan(s, &conns)
	}
	if s := os.Getenv("EXPLAIN_BENCH_SEGS"); s != "" {
		fmt.Sscan(s, &segs)
	}
	path := filepath.Join(b.TempDir(), "bench.pcap")
	start := time.Now()
	size, pkts := writeBenchCapture(b, path, conns, segs)
	b.Logf("wrote %d connections, %d packets, %.2f GB in %.1f s", conns, pkts, float64(size)/1e9, time.Since(start).Seconds())
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	b.SetBytes(size)
	b.ResetTimer()
	var peak uint64
	for i := 0; i < b.N; i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		done := 0
		var ms runtime.MemStats
		sum, err := Analyze("bench.pcap", f, false, func(c *Conn) {
			done++
			if done%2000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if sum.Conns != conns || sum.TCP != pkts {
			b.Fatalf("summary: %d connections, %d packets; want %d, %d", sum.Conns, sum.TCP, conns, pkts)
		}
		if want := conns - conns/10; sum.RST[ClassDataAfter]+sum.Teardown[TeardownClean] != want {
			b.Fatalf("summary %+v", sum)
		}
	}
	b.StopTimer()
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/op")
	b.ReportMetric(float64(pkts)*float64(b.N)/b.Elapsed().Seconds(), "packets/s")
	b.ReportMetric(float64(conns)*float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	if rss := peakRSS(); rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	}
}

// resetPeakRSS resets the process's peak resident set size (VmHWM), so
// that it measures what follows (Linux 4.0 and later; a no-op elsewhere).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns the process's peak resident set size in bytes (VmHWM),
// 0 when unknown.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			var kb uint64
			fmt.Sscan(f[1], &kb)
			return kb << 10
		}
	}
	return 0
}
