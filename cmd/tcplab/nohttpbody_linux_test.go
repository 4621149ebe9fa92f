package main

import (
	"cmp"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/tun/capture"
)

// TestExecNoHTTPBody: examples/nohttpbody (a Go net/http server whose
// handler answers without reading the body) against examples/nohttpbody.lab
// (a gVisor client posting 4 MiB). The trace must tell net/http's story:
// the answer, the FIN of its shutdown(SHUT_WR), its 500 ms wait, then the
// kernel's RST at close() for the unread body (TCP_ABORT_ON_CLOSE), and the
// client's write failing with EPIPE (a RST in CLOSE-WAIT) while the answer
// is still read. The capture of the wire witnesses the FIN, the wait and
// the RST, and the unread byte count of the reason: what arrived on the
// wire beyond what the program read.
func TestExecNoHTTPBody(t *testing.T) {
	needTUN(t)
	bin := buildTcplab(t)
	server := filepath.Join(t.TempDir(), "nohttpbody")
	if out, err := exec.Command("go", "build", "-o", server, "../../examples/nohttpbody").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/nohttpbody: %v\n%s", err, out)
	}
	dir := t.TempDir()
	out, pcap := filepath.Join(dir, "trace.json"), filepath.Join(dir, "wire.pcapng")
	stdout, stderr, code := tcplab(t, "../..", bin, "exec", "--format", "json", "--out", out, "--capture", pcap,
		"--side", "server", "examples/nohttpbody.lab", "--", server)
	if code != 0 || !strings.Contains(stderr, "all 5 expectations held") {
		t.Fatalf("exit %d, want 0 and every expectation held\nstderr:\n%s", code, stderr)
	}
	if want := "answered POST /upload (Content-Length 4194304) without reading the body\n"; stdout != want {
		t.Errorf("the program's output %q, want %q", stdout, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	evs := jsonLines(t, b)
	var fin, rst *event
	read, traced, clientWrite := 0, false, ""
	for i := range evs {
		e := &evs[i]
		switch {
		case e.Kind == "segment" && e.Host == "server" && e.Dir == "out" && strings.Contains(e.Flags, "F") && fin == nil:
			fin = e
		case e.Kind == "segment" && e.Host == "server" && e.Dir == "out" && strings.Contains(e.Flags, "R") && rst == nil:
			rst = e
		case e.Kind == "call" && e.Host == "server" && e.Conn == "c1" && e.Call == "read" && e.Ret > 0:
			read += e.Ret
		case e.Kind == "call" && e.Host == "client" && e.Call == "write" && e.Err != "":
			clientWrite = e.Err
		}
		traced = traced || (e.Kind == "call" && strings.Contains(e.Text, "observed with syscall tracepoints"))
	}
	if fin == nil || rst == nil {
		t.Fatalf("server FIN %+v, RST %+v: want both", fin, rst)
	}
	if wait := time.Duration((rst.T - fin.T) * float64(time.Second)); wait < 450*time.Millisecond || wait > 2*time.Second {
		t.Errorf("the RST came %v after the FIN, want net/http's 500 ms rstAvoidanceDelay", wait)
	}
	// The kernel's own reason, from tcp_send_reset; on a loaded machine
	// that event can reach tcplab after the segment was explained, and the
	// trace then says the kernel's word is missing (seen once in 4 runs at
	// load 10 on 2 cores).
	switch {
	case strings.Contains(rst.Reason, "(kernel: TCP_ABORT_ON_CLOSE)"):
	case strings.Contains(rst.Reason, "(inferred: no tcp_send_reset event)"):
		t.Logf("RST reason %q: the kernel's tcp_send_reset event came too late", rst.Reason)
	default:
		t.Errorf("RST reason %q: want the kernel's TCP_ABORT_ON_CLOSE", rst.Reason)
	}
	if clientWrite != "EPIPE" {
		t.Errorf("the client's write failed with %q, want EPIPE (a RST in CLOSE-WAIT)", clientWrite)
	}
	unread := -1
	if traced {
		if !strings.HasPrefix(fin.Reason, "shutdown(SHUT_WR)") {
			t.Errorf("FIN reason %q: want net/http's shutdown(SHUT_WR) (closeWriteAndWait)", fin.Reason)
		}
		m := regexp.MustCompile(`^close\(\) with (\d+) unread bytes`).FindStringSubmatch(rst.Reason)
		if m == nil {
			t.Fatalf("RST reason %q: want close() with N unread bytes", rst.Reason)
		}
		unread, _ = strconv.Atoi(m[1])
		var calls []string
		for _, e := range evs {
			if e.Kind == "call" && e.Host == "server" {
				calls = append(calls, cmp.Or(e.Conn, "-")+" "+e.Call+"("+e.Arg+")="+strconv.Itoa(e.Ret)+e.Err)
			}
		}
		all := strings.Join(calls, " ")
		// net/http's listener and connection setup, then its
		// closeWriteAndWait; and no SO_LINGER: the RST is the unread
		// body's alone.
		for _, want := range []string{" bind(198.18.1.1:8080)=0", "l1 listen(backlog ", "c1 setsockopt(TCP_NODELAY 1)=0",
			"c1 setsockopt(SO_KEEPALIVE 1)=0", "c1 shutdown(SHUT_WR)=0", "c1 close()=0"} {
			if !strings.Contains(all, want) {
				t.Errorf("the program's calls lack %q: %s", want, all)
			}
		}
		if strings.Contains(all, "SO_LINGER") {
			t.Errorf("the program set SO_LINGER: %s", all)
		}
	} else {
		t.Log("the program's calls are not traced on this machine")
	}

	// The witness: the wire itself.
	wire := readCapture(t, pcap)
	prog := netip.MustParseAddrPort("198.18.1.1:8080")
	var syn, wfin, wrst *capture.WirePacket
	for i := range wire {
		p := &wire[i]
		switch {
		case p.Proto != 6:
		case p.Dst == prog && p.Flags == "S" && syn == nil:
			syn = p
		case p.Src == prog && strings.Contains(p.Flags, "F") && wfin == nil:
			wfin = p
		case p.Src == prog && strings.Contains(p.Flags, "R") && wrst == nil:
			wrst = p
		}
	}
	if syn == nil || wfin == nil || wrst == nil {
		t.Fatalf("on the wire: client SYN %v, program FIN %v, RST %v: want all three", syn != nil, wfin != nil, wrst != nil)
	}
	if wait := wrst.Time.Sub(wfin.Time); wait < 450*time.Millisecond {
		t.Errorf("on the wire the RST came %v after the FIN, want the 500 ms wait", wait)
	}
	// Bytes that reached the program's socket: the RST acknowledges them
	// all. Those it did not read are the reason's count.
	arrived := int(wrst.Ack - syn.Seq - 1)
	if unread >= 0 && arrived-read != unread {
		t.Errorf("the wire's RST acknowledges %d bytes, the program read %d: %d unread, the reason says %d", arrived, read, arrived-read, unread)
	}
	t.Logf("FIN→RST %v on the wire; %d bytes arrived, %d read, %d unread", wrst.Time.Sub(wfin.Time), arrived, read, arrived-read)
	assertNothingLeft(t)
}
