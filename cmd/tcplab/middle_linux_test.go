package main

import (
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

// The lab's addresses, as tcplab exec --side middle uses them.
var (
	mClient   = netip.MustParseAddr("198.18.1.2")
	mRelayCli = netip.MustParseAddr("198.18.1.1") // the relay on the client's link
	mRelaySrv = netip.MustParseAddr("198.18.2.1") // the relay on the server's link
	mServer   = netip.MustParseAddr("198.18.2.2")
)

// execMiddle runs examples/relay.lab with socat as the relay (socatArgs
// before its addresses), the trace as JSON and a capture of the wire; it
// returns the events, the capture's TCP packets and tcplab's stderr.
func execMiddle(t *testing.T, bin, socatArgs string) ([]event, []capture.WirePacket, string) {
	t.Helper()
	dir := t.TempDir()
	out, capFile := filepath.Join(dir, "trace.json"), filepath.Join(dir, "wire.pcapng")
	relay := "exec socat " + socatArgs + " TCP-LISTEN:7000,reuseaddr TCP:$TCPLAB_PEER"
	stdout, stderr, code := tcplab(t, "../..", bin, "exec", "--format", "json", "--out", out, "--capture", capFile,
		"--side", "middle", "examples/relay.lab", "--", "sh", "-c", relay)
	if code != 0 {
		t.Fatalf("exit %d, want 0 (the relay's and the scenario's)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	evs := jsonLines(t, b)
	pkts := readCapture(t, capFile)
	var tcp []capture.WirePacket
	for _, p := range pkts {
		if p.Proto == 6 {
			tcp = append(tcp, p)
		}
	}
	for _, want := range []string{"TCPLAB_LISTEN=198.18.1.1:7000 TCPLAB_PEER=198.18.2.2:9000", "# program sh exited with status 0", "# relay verdict: client's FIN passed on to server after "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	return evs, tcp, stderr
}

// relaySent returns the relay's segments toward to whose flags contain flag.
func relaySent(evs []event, to netip.Addr, flag string) []event {
	var m []event
	for _, e := range evs {
		if e.Kind == "segment" && e.Host == "relay" && e.Dir == "out" && strings.HasPrefix(e.Dst, to.String()+":") && strings.Contains(e.Flags, flag) {
			m = append(m, e)
		}
	}
	return m
}

// relayReceived returns the relay's arrivals from from.
func relayReceived(evs []event, from netip.Addr) []event {
	var m []event
	for _, e := range evs {
		if e.Kind == "segment" && e.Host == "relay" && e.Dir == "in" && strings.HasPrefix(e.Src, from.String()+":") {
			m = append(m, e)
		}
	}
	return m
}

// verdicts returns the texts of the relay's verdict notes.
func verdicts(t *testing.T, evs []event) []string {
	t.Helper()
	var v []string
	for _, e := range evs {
		if e.Kind == "note" && e.Host == "relay" && strings.HasPrefix(e.Text, "verdict: ") {
			if !strings.HasSuffix(e.Text, "[inferred: observed segments of the relay, paired by time]") {
				t.Errorf("verdict %q is not marked inferred", e.Text)
			}
			v = append(v, strings.TrimPrefix(e.Text, "verdict: "))
		}
	}
	return v
}

// firstWire returns the first captured packet from src to dst whose flags
// contain flag (any, for ""), with payload when data.
func firstWire(pkts []capture.WirePacket, src, dst netip.Addr, flag string, data bool) (capture.WirePacket, bool) {
	for _, p := range pkts {
		if p.Src.Addr() == src && p.Dst.Addr() == dst && strings.Contains(p.Flags, flag) && (!data || p.Len > 0) {
			return p, true
		}
	}
	return capture.WirePacket{}, false
}

// needSocat skips when socat is not installed (.ci/run installs it).
func needSocat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("skipping: socat is not installed (apt-get install socat; .ci/run installs it)")
	}
}

// bothLegs checks that the relay's two connections are in the trace: it
// received from and sent to the client and the server.
func bothLegs(t *testing.T, evs []event) {
	t.Helper()
	for _, a := range []netip.Addr{mClient, mServer} {
		if len(relayReceived(evs, a)) == 0 || len(relaySent(evs, a, "")) == 0 {
			t.Errorf("the relay's leg to %v is missing: received %d, sent %d segments", a, len(relayReceived(evs, a)), len(relaySent(evs, a, "")))
		}
	}
	conns := map[string]bool{}
	for _, e := range evs {
		if e.Host == "relay" && e.Kind == "segment" {
			peer := e.Dst
			if e.Dir == "in" {
				peer = e.Src
			}
			conns[e.Conn+" "+strings.Split(peer, ":")[0]] = true
		}
	}
	if len(conns) != 2 || !conns["c1 198.18.1.2"] || !conns["c2 198.18.2.2"] {
		t.Errorf("the relay's connections %v, want two: c1 with the client, c2 with the server", conns)
	}
	// Each of the relay's calls is recorded once, by the leg it was made
	// on (two observers see every call of the program).
	calls := map[string]int{}
	for _, e := range evs {
		if e.Kind == "call" && e.Host == "relay" {
			calls[e.Call+" "+e.Conn]++
			if e.Conn == "" {
				t.Errorf("a relay call on no connection: %+v", e)
			}
		}
	}
	if len(calls) == 0 {
		t.Log("the relay's calls are not traced on this machine")
	} else if calls["accept c1"]+calls["accept4 c1"] != 1 || calls["connect c2"] != 1 {
		t.Errorf("the relay's calls %v: want one accept on c1, one connect on c2", calls)
	}
}

var verdictMS = regexp.MustCompile(`after ([0-9.]+) (ms|s)\b`)

// TestExecMiddleSocatHalfClose: socat -t 5 relays examples/relay.lab. Both
// legs are traced; the client's FIN crosses as a FIN (socat's shutdown
// SHUT_WR on the server's leg), the verdict says so with the delay the
// capture shows between the two FINs; the answer, 2 s later, crosses back,
// then the server's FIN; no RST anywhere on the wire.
func TestExecMiddleSocatHalfClose(t *testing.T) {
	needTUN(t)
	needSocat(t)
	bin := buildTcplab(t)
	evs, wire, stderr := execMiddle(t, bin, "-t 5")
	bothLegs(t, evs)
	fins := relaySent(evs, mServer, "F")
	if len(fins) == 0 {
		t.Fatalf("the relay sent no FIN to the server:\n%s", stderr)
	}
	traced := false
	for _, e := range evs {
		traced = traced || (e.Kind == "call" && e.Host == "relay" && strings.Contains(e.Text, "observed with syscall tracepoints"))
	}
	if !traced {
		t.Log("the relay's calls are not traced on this machine: its FINs' causes are inferred")
	} else if !strings.Contains(fins[0].Reason, "shutdown(SHUT_WR)") {
		t.Errorf("the relay's FIN to the server: reason %q, want socat's shutdown(SHUT_WR)", fins[0].Reason)
	}
	// On a loaded machine a FIN may be retransmitted before its ACK
	// arrives (RTO 200 ms), and the late duplicate then finds the
	// connection gone and gets a RST: TCP, not a fault of the relay.
	retransmitted := 0
	for _, e := range evs {
		if e.Kind == "segment" && e.Dir == "out" && strings.HasPrefix(e.Reason, "retransmitted") {
			retransmitted++
		}
	}
	vs := verdicts(t, evs)
	if len(vs) < 2 || !strings.HasPrefix(vs[0], "client's FIN passed on to server after ") || !strings.HasPrefix(vs[1], "server's FIN passed on to client after ") {
		t.Fatalf("verdicts %q: want the client's FIN passed on to the server, then the server's to the client", vs)
	}
	if len(vs) > 2 && retransmitted == 0 {
		t.Errorf("verdicts %q: want only the two FINs", vs)
	}
	// The witness: the client's FIN on tcl-client, then the relay's on
	// tcl-server, as far apart as the verdict says.
	cf, ok1 := firstWire(wire, mClient, mRelayCli, "F", false)
	rf, ok2 := firstWire(wire, mRelaySrv, mServer, "F", false)
	if !ok1 || !ok2 || rf.Time.Before(cf.Time) {
		t.Fatalf("capture: client's FIN %v (%v), relay's FIN to the server %v (%v): want both, in that order", cf, ok1, rf, ok2)
	}
	m := verdictMS.FindStringSubmatch(vs[0])
	if m == nil {
		t.Fatalf("verdict %q has no delay", vs[0])
	}
	d, _ := strconv.ParseFloat(m[1], 64)
	said := time.Duration(d * float64(time.Millisecond))
	if m[2] == "s" {
		said = time.Duration(d * float64(time.Second))
	}
	if seen := rf.Time.Sub(cf.Time); (said - seen).Abs() > 20*time.Millisecond {
		t.Errorf("the verdict says the FIN crossed in %v, the capture %v", said, seen)
	}
	if _, ok := firstWire(wire, mRelayCli, mClient, "P", true); !ok {
		t.Errorf("capture: the answer never reached the client")
	}
	for _, p := range wire {
		if strings.Contains(p.Flags, "R") && retransmitted == 0 {
			t.Errorf("capture: a RST on the wire: %v", p)
		} else if strings.Contains(p.Flags, "R") {
			t.Logf("%d retransmissions; a RST answering a late one: %v", retransmitted, p)
		}
	}
	assertNothingLeft(t)
}

// TestExecMiddleSocatTimeout: socat -t 0.5 with the server answering 2 s
// after the client's half-close. The client's FIN still crosses as a FIN;
// 0.5 s later socat gives up: its own FIN toward the client (the client
// reads EOF, never the answer), and the answer meets the relay's closed
// socket, which the kernel resets. The verdicts name both, and the capture
// shows the same order: the relay's FIN to the client before the answer,
// the relay's RST to the server after it, no answer toward the client.
func TestExecMiddleSocatTimeout(t *testing.T) {
	needTUN(t)
	needSocat(t)
	bin := buildTcplab(t)
	evs, wire, _ := execMiddle(t, bin, "-t 0.5")
	bothLegs(t, evs)
	vs := verdicts(t, evs)
	if len(vs) < 3 || !strings.HasPrefix(vs[0], "client's FIN passed on to server after ") ||
		!strings.HasPrefix(vs[1], "the relay's own FIN toward client at ") || !strings.Contains(vs[1], "after client's FIN reached it") ||
		!strings.HasPrefix(vs[2], "the relay's own RST toward server at ") {
		t.Fatalf("verdicts %q: want the client's FIN passed on, the relay's own FIN toward the client, its own RST toward the server", vs)
	}
	if r := relaySent(evs, mServer, "R"); len(r) == 0 || r[0].Reason == "" {
		t.Errorf("the relay's RST to the server %+v: want one, with the kernel's reason", r)
	}
	for _, e := range evs {
		if e.Kind == "call" && e.Host == "client" && e.Call == "read" && e.Data != "" {
			t.Errorf("the client read %q: the answer should never reach it", e.Data)
		}
	}
	// The witness.
	ans, ok1 := firstWire(wire, mServer, mRelaySrv, "P", true)
	fc, ok2 := firstWire(wire, mRelayCli, mClient, "F", false)
	rst, ok3 := firstWire(wire, mRelaySrv, mServer, "R", false)
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("capture: answer %v, relay's FIN to the client %v, relay's RST to the server %v: want all three", ok1, ok2, ok3)
	}
	if !fc.Time.Before(ans.Time) || rst.Time.Before(ans.Time) {
		t.Errorf("capture order: relay's FIN to the client %v, answer %v, RST %v: want FIN, answer, RST", fc.Time, ans.Time, rst.Time)
	}
	if p, ok := firstWire(wire, mRelayCli, mClient, "", true); ok {
		t.Errorf("capture: data reached the client: %v", p)
	}
	assertNothingLeft(t)
}
