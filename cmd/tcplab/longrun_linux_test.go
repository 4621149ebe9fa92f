package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// TestExecLongRun: a program moves 200 MB through tcplab exec (sink).
// The trace summarises the bulk data and stays small, yet accounts for
// every byte: the data of the segments the gVisor server accepted (those
// kept in full, each byte counted once, plus the summaries' exact counts)
// and what its reads returned both equal what the program says it sent
// (its own count, the witness), and so does --pcap (--pcap-view server),
// written as the run goes from every event. tcplab's peak memory stays
// far below the 600 MB an unsummarised trace of 200 MB takes.
//
// The kernel's side is held to the same: the program's segments as the
// eBPF observer saw them, plus the ranges its "not observed" notes name
// (the kernel now and then sends a whole GSO packet without running the
// observer's programs: ktrace.Unseen), carry exactly what the program
// sent, unless the observer says it lost events.
func TestExecLongRun(t *testing.T) {
	needTUN(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("skipping: no python3 to run the bulk sender")
	}
	const total = 200_000_000
	bin := buildTcplab(t)
	dir := t.TempDir()
	out, pcap := filepath.Join(dir, "trace.json"), filepath.Join(dir, "server.pcapng")
	cmd := exec.Command(bin, "exec", "--format", "json", "--out", out, "--pcap", pcap, "--pcap-view", "server", "sink", "--", "python3", "examples/bulk.py", strconv.Itoa(total))
	cmd.Dir = "../.."
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("tcplab exec: %v\nstderr:\n%s", err, e.String())
	}
	if got := strings.TrimSpace(o.String()); got != strconv.Itoa(total) {
		t.Fatalf("the program says it sent %q bytes, want %d\nstderr:\n%s", got, total, e.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	evs := jsonLines(t, b)

	// The data of a host's segments one way, by sequence number relative
	// to the client's SYN: each byte counted once.
	type flow struct {
		ranges   [][2]int64
		data     int64
		segments int
	}
	var isn uint32
	flows := map[string]*flow{"client out": {}, "server in": {}}
	summaries := 0
	var read, unseen int64
	lostNote := false
	for _, ev := range evs {
		f := flows[ev.Host+" "+ev.Dir]
		seq, n := ev.Seq, int64(ev.Len)
		var a, b uint32
		if ev.Kind == "note" && ev.Host == "client" {
			if _, err := fmt.Sscanf(ev.Text, "not observed: the kernel sent seq %d:%d", &a, &b); err == nil {
				f, seq, n = flows["client out"], a, int64(b-a)
				unseen += n
			} else if strings.Contains(ev.Text, "were lost") {
				lostNote = true
			}
		}
		switch {
		case f == nil:
		case ev.Kind == "note":
		case ev.Kind == "segment":
			f.segments++
			if ev.Flags == "S" {
				isn = ev.Seq
			}
		case ev.Kind == "summary":
			s := ev.Summary
			if s == nil || s.Of != "segments" {
				t.Fatalf("summary without its counts: %+v", ev)
			}
			if int64(s.SeqEnd-s.Seq) != s.Bytes {
				t.Errorf("summary of %d bytes covers seq %d:%d (%d bytes)", s.Bytes, s.Seq, s.SeqEnd, s.SeqEnd-s.Seq)
			}
			f.segments += s.Count
			summaries++
			seq, n = s.Seq, s.Bytes
		default:
			f = nil
		}
		if f != nil && n > 0 {
			start := int64(seq - isn - 1)
			f.ranges = append(f.ranges, [2]int64{start, start + n})
		}
		switch {
		case ev.Kind == "call" && ev.Host == "server" && ev.Call == "read":
			read += int64(ev.Ret)
		case ev.Kind == "summary" && ev.Host == "server" && ev.Call == "read":
			read += ev.Summary.Bytes
		}
	}
	// Each byte counted once, whatever the order of the events (a
	// not-observed note may follow segments sent after the bytes it names).
	for _, f := range flows {
		sort.Slice(f.ranges, func(i, j int) bool { return f.ranges[i][0] < f.ranges[j][0] })
		next := int64(-1 << 62)
		for _, r := range f.ranges {
			if r[1] > next {
				f.data += r[1] - max(r[0], next)
				next = r[1]
			}
		}
	}
	srvIn, cliOut := flows["server in"], flows["client out"]
	if srvIn.data != total {
		t.Errorf("the segments the server accepted carry %d bytes of data (%d segments), the program sent %d", srvIn.data, srvIn.segments, total)
	}
	if read != total {
		t.Errorf("the server's reads returned %d bytes, the program sent %d", read, total)
	}
	switch {
	case cliOut.data > total:
		t.Errorf("the program's segments, as the kernel was observed to send them (%d bytes in not-observed notes), carry %d bytes: more than the %d it sent", unseen, cliOut.data, total)
	case cliOut.data < total && lostNote:
		t.Logf("the observer lost events (it says so): its segments carry %d bytes of the %d sent", cliOut.data, total)
	case cliOut.data < total:
		t.Errorf("the program's segments, as the kernel was observed to send them, and the not-observed notes (%d bytes) carry %d bytes, the program sent %d: the trace misses %d bytes without saying so", unseen, cliOut.data, total, total-cliOut.data)
	case unseen > 0:
		t.Logf("%d bytes the kernel sent were not observed, and the trace says so", unseen)
	}
	segments := srvIn.segments
	if summaries == 0 || len(evs)*20 > segments {
		t.Errorf("the trace keeps %d events for %d segments the server accepted (%d summaries): want a summarised trace, under 1 event in 20", len(evs), segments, summaries)
	}
	// --pcap is written as the run goes, from every event: it holds every
	// segment the server received, summarised or not.
	if got := pcapData(t, pcap, 9527); got != total {
		t.Errorf("--pcap holds %d bytes of data sent to port 9527, the program sent %d", got, total)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		t.Logf("%d events kept for %d segments the server accepted, %d summaries; tcplab's peak RSS %d MB", len(evs), segments, summaries, ru.Maxrss>>10)
		if ru.Maxrss > 250<<10 {
			t.Errorf("tcplab's peak RSS was %d MB for 200 MB moved: the trace is not bounded", ru.Maxrss>>10)
		}
	}
	assertNothingLeft(t)
}

// pcapData returns the TCP payload bytes of the packets to port in a
// pcapng file of raw IPv4 packets, each sequence number counted once.
func pcapData(t *testing.T, path string, port uint16) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(bufio.NewReader(f), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var isn uint32
	var next, data int64
	for {
		p, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if len(p) < 40 || p[0]>>4 != 4 {
			continue
		}
		ihl := int(p[0]&0xf) * 4
		tcp := p[ihl:]
		if binary.BigEndian.Uint16(tcp[2:]) != port {
			continue
		}
		seq := binary.BigEndian.Uint32(tcp[4:])
		if tcp[13]&0x02 != 0 { // SYN
			isn = seq
			continue
		}
		n := int64(int(binary.BigEndian.Uint16(p[2:])) - ihl - int(tcp[12]>>4)*4)
		start := int64(seq - isn - 1)
		if end := start + n; n > 0 && end > next {
			data += end - max(start, next)
			next = end
		}
	}
	return data
}
