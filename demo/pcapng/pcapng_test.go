package pcapng

import (
	"bytes"
	"context"
	"errors"
	"github.com/tcplab/tcplab/demo/scenario"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcplab/tcplab/stack/trace"
)

// closeTrace runs the built-in close experiment on the memory wire in
// virtual time (scenario.Simulate); keep keeps the packets' bytes.
func closeTrace(t testing.TB, keep bool) []trace.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, events, err := scenario.SimulateBuiltin(ctx, "close", scenario.SimConfig{KeepPackets: keep, QuietWindow: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failures {
		t.Errorf("%v", f)
	}
	return events
}

// withPacket counts the segment events that carry packet bytes.
func withPacket(events []trace.Event) int {
	n := 0
	for _, e := range events {
		if e.Kind == trace.Segment && len(e.Packet) > 0 {
			n++
		}
	}
	return n
}

func TestWriteReadBack(t *testing.T) {
	events := closeTrace(t, true)
	want := withPacket(events)
	if want == 0 {
		t.Fatal("trace has no packet bytes")
	}
	var b bytes.Buffer
	n, err := Write(&b, events, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("Write = %d packets, want %d", n, want)
	}

	r, err := pcapgo.NewNgReader(bytes.NewReader(b.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var comments []string
	perIntf := map[int]int{}
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 40 || data[0]>>4 != 4 {
			t.Errorf("packet %d is not an IPv4 packet: % x", len(comments), data[:min(len(data), 20)])
		}
		if ci.Timestamp.Year() != 1970 {
			t.Errorf("packet time %v, want near the Unix epoch", ci.Timestamp)
		}
		perIntf[ci.InterfaceIndex]++
		if len(opts.Comments) != 1 || opts.Comments[0] == "" {
			t.Errorf("packet %d has comments %q, want one", len(comments), opts.Comments)
		}
		comments = append(comments, strings.Join(opts.Comments, "|"))
	}
	if len(comments) != want {
		t.Fatalf("read back %d packets, want %d", len(comments), want)
	}
	if r.NInterfaces() != 2 {
		t.Fatalf("%d interfaces, want 2", r.NInterfaces())
	}
	for i, name := range []string{"client", "server"} {
		intf, err := r.Interface(i)
		if err != nil {
			t.Fatal(err)
		}
		if intf.Name != name || intf.LinkType != layers.LinkTypeRaw {
			t.Errorf("interface %d = %q link type %v, want %q raw", i, intf.Name, intf.LinkType, name)
		}
		if perIntf[i] != want/2 {
			t.Errorf("interface %s has %d packets, want %d (every segment once per host)", name, perIntf[i], want/2)
		}
	}

	all := strings.Join(comments, "\n")
	t.Logf("comments:\n%s", all)
	for _, w := range []string{
		"client out [F.] state FIN-WAIT-1; reason: close()",
		"server in [F.] state ESTABLISHED -> CLOSE-WAIT; reason: close()",
		"client in [P.] state FIN-WAIT-2\n",
		"client out [R.] state FIN-WAIT-2 -> CLOSED; reason: data arrived in FIN-WAIT-2",
		"server out [.] state CLOSE-WAIT",
		"server in [R.] state CLOSE-WAIT -> CLOSED; reason: data arrived",
		"server in [S] state LISTEN -> SYN-RECEIVED",
		"client in [S.] state SYN-SENT -> ESTABLISHED",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("no comment contains %q", w)
		}
	}

	// The same trace gives the same bytes.
	var again bytes.Buffer
	if _, err := Write(&again, events, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), b.Bytes()) {
		t.Error("two writes of one trace differ")
	}

	t.Run("tshark", func(t *testing.T) {
		tshark, err := exec.LookPath("tshark")
		if err != nil {
			t.Skip("tshark is not installed (apt-get install tshark); skipping the Wireshark read-back")
		}
		path := filepath.Join(t.TempDir(), "close.pcapng")
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		// Wireshark 3.6 renamed pkt_comment to frame.comment.
		field := "frame.comment"
		if fields, err := exec.Command(tshark, "-G", "fields").Output(); err == nil &&
			!bytes.Contains(fields, []byte("\tframe.comment\t")) && bytes.Contains(fields, []byte("\tpkt_comment\t")) {
			field = "pkt_comment"
		}
		cmd := exec.Command(tshark, "-r", path, "-T", "fields", "-E", "separator=|", "-e", "frame.interface_name", "-e", "tcp.flags.str", "-e", field)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		if len(lines) != want {
			t.Fatalf("tshark read %d packets, want %d:\n%s", len(lines), want, out)
		}
		sawFin, sawRst := false, false
		for _, line := range lines {
			f := strings.SplitN(line, "|", 3)
			if len(f) != 3 || f[1] == "" || f[2] == "" {
				t.Errorf("tshark line %q lacks flags or comment", line)
				continue
			}
			if f[0] != "client" && f[0] != "server" {
				t.Errorf("tshark line %q: interface %q", line, f[0])
			}
			if !strings.HasPrefix(f[2], f[0]+" ") {
				t.Errorf("tshark line %q: comment not of host %s", line, f[0])
			}
			sawFin = sawFin || strings.Contains(f[1], "F") && strings.Contains(f[2], "reason: close()")
			sawRst = sawRst || strings.Contains(f[1], "R") && strings.Contains(f[2], "reason: data arrived")
		}
		if !sawFin || !sawRst {
			t.Errorf("tshark output lacks the FIN or RST with its reason:\n%s", out)
		}
	})
}

func TestWriteOnly(t *testing.T) {
	events := closeTrace(t, true)
	var b bytes.Buffer
	n, err := Write(&b, events, Options{Only: "server"})
	if err != nil {
		t.Fatal(err)
	}
	if want := withPacket(events) / 2; n != want {
		t.Errorf("Write(Only server) = %d packets, want %d", n, want)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ci.InterfaceIndex != 0 || !strings.HasPrefix(opts.Comments[0], "server ") {
			t.Errorf("packet on interface %d with comment %q, want the server's", ci.InterfaceIndex, opts.Comments)
		}
	}
	if intf, err := r.Interface(0); err != nil || intf.Name != "server" || r.NInterfaces() != 1 {
		t.Errorf("interfaces: %d, first %q %v; want server alone", r.NInterfaces(), intf.Name, err)
	}
}

func TestWriteWithoutPackets(t *testing.T) {
	events := closeTrace(t, false)
	var b bytes.Buffer
	n, err := Write(&b, events, Options{NoComments: true})
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("Write = %d packets for a trace without packet bytes, want 0", n)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("empty capture is not readable: %v", err)
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("empty capture: ReadPacketData = %v, want EOF", err)
	}
}

func TestWriteBaseAndNoComments(t *testing.T) {
	events := closeTrace(t, true)
	base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	if _, err := Write(&b, events, Options{Base: base, NoComments: true}); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, e := range events {
		if e.Kind != trace.Segment {
			continue
		}
		_, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatal(err)
		}
		if want := base.Add(e.T); !ci.Timestamp.Equal(want) {
			t.Errorf("packet %d at %v, want %v", i, ci.Timestamp, want)
		}
		if len(opts.Comments) != 0 {
			t.Errorf("packet %d has comments with NoComments", i)
		}
		i++
	}
}

// A refused arrival's comment gives its verdict and claims no state
// change: the stack dropped it.
func TestCommentsRefusedArrival(t *testing.T) {
	events := []trace.Event{
		{Kind: trace.State, Host: "server", Conn: "c1", From: "SYN-RECEIVED", To: "ESTABLISHED"},
		{Kind: trace.Segment, Host: "server", Conn: "c1", Dir: "in", Flags: "R.", Seq: 9,
			Verdict: trace.Refused, Why: trace.WhyChallenge, Evidence: "seq 9 is not RCV.NXT 5"},
		{Kind: trace.State, Host: "server", Conn: "c1", From: "ESTABLISHED", To: "CLOSE-WAIT"},
	}
	got := Comments(events)[1]
	if want := "server in [R.] state ESTABLISHED; refused: RFC 5961 challenge (inferred: seq 9 is not RCV.NXT 5)"; got != want {
		t.Errorf("comment:\n got %q\nwant %q", got, want)
	}
}

// TestCommentsStateInPacketOrder reads the pcapng of every built-in
// scenario back and checks that, per host and connection, the states the
// comments name never go back: once a packet's comment says a host left a
// state (A -> B) or was in a later one, no later packet of that host is
// described in that state. In the close scenario the server's ACK of the
// client's FIN used to say ESTABLISHED right after the FIN's own comment
// had taken the server to CLOSE-WAIT.
func TestCommentsStateInPacketOrder(t *testing.T) {
	for _, name := range scenario.Names() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, events, err := scenario.SimulateBuiltin(ctx, name, scenario.SimConfig{KeepPackets: true, QuietWindow: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			comments := readComments(t, events)
			checkStateOrder(t, comments)
			// The FIN that arrives is the retransmission: its reason is that.
			if name == "lost-fin" && !slices.ContainsFunc(comments, func(c string) bool {
				return strings.HasPrefix(c, "server in [F.]") && strings.Contains(c, "reason: retransmitted FIN")
			}) {
				t.Errorf("the server's FIN arrival does not carry the retransmission's reason:\n%s", strings.Join(comments, "\n"))
			}
			if name == "close" && !slices.ContainsFunc(comments, func(c string) bool { return strings.HasPrefix(c, "server out [.] state CLOSE-WAIT") }) {
				t.Error("no comment describes the server's ACK of the client's FIN in CLOSE-WAIT")
			}
		})
	}
}

// readComments writes events as pcapng and reads the packets' comments
// back with gopacket's reader, in file order.
func readComments(t *testing.T, events []trace.Event) []string {
	t.Helper()
	var b bytes.Buffer
	if _, err := Write(&b, events, Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		_, _, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(opts.Comments) != 1 {
			t.Fatalf("frame %d: comments %q", len(out)+1, opts.Comments)
		}
		out = append(out, opts.Comments[0])
	}
}

// checkStateOrder fails when a comment describes a host's connection in a
// state an earlier frame had it leave.
func checkStateOrder(t *testing.T, comments []string) {
	t.Helper()
	cur := map[string]string{}          // host/conn -> state as of its latest packet
	left := map[string]map[string]int{} // host/conn -> states it left -> frame
	for i, c := range comments {
		frame := i + 1
		f := strings.Fields(c)
		who := f[0]
		if len(f) > 1 && strings.HasPrefix(f[1], "c") && f[1] != "c" {
			who += "/" + f[1] // comments name connections when a host has several
		}
		if left[who] == nil {
			left[who] = map[string]int{}
		}
		_, st, ok := strings.Cut(c, " state ")
		if !ok {
			continue
		}
		st, _, _ = strings.Cut(st, ";")
		from, to, arrow := strings.Cut(st, " -> ")
		if !arrow {
			to = from
		}
		for _, s := range []string{from, to} {
			if f, ok := left[who][s]; ok && s != "CLOSED" {
				t.Errorf("frame %d (%q): %s is described in %s, which frame %d already had it leave", frame, c, who, s, f)
			}
		}
		if p := cur[who]; p != "" && p != to {
			left[who][p] = frame
		}
		if arrow {
			left[who][from] = frame
		}
		cur[who] = to
	}
}
