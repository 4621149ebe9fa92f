package diff

import (
	"strings"
	"testing"

	"github.com/tcplab/tcplab/stack/trace"
)

func TestLines(t *testing.T) {
	a := []string{"## wire", "x", "y", "z"}
	b := []string{"## wire", "x", "Y", "z", "w"}
	var got []string
	for _, l := range Lines(a, b) {
		got = append(got, string(l.Op)+l.Text)
	}
	want := " ## wire| x|-y|+Y| z|+w"
	if g := strings.Join(got, "|"); g != want {
		t.Errorf("Lines = %q, want %q", g, want)
	}
	if d := Lines(a, a); !same(d) {
		t.Errorf("Lines(a, a) has differences: %v", d)
	}
}

// seg builds a segment event.
func seg(host, dir, src, dst, flags string, seq, ack uint32, n int, reason string) trace.Event {
	return trace.Event{Host: host, Kind: trace.Segment, Dir: dir, Src: src, Dst: dst, Flags: flags, Seq: seq, Ack: ack, Len: n, Reason: reason}
}

// TestNormalizeKernelSent checks that a segment is listed once, at its
// first sighting, with relative sequence numbers and the sender's reason
// even when the sender's own event comes second (the kernel's, mirrored).
func TestNormalizeKernelSent(t *testing.T) {
	c, s := "198.18.2.1:4000", "198.18.2.2:9527"
	events := []trace.Event{
		seg("client", "out", c, s, "S", 1000, 0, 0, ""),
		seg("server", "in", c, s, "S", 1000, 0, 0, ""),
		seg("server", "out", s, c, "S.", 5000, 1001, 0, ""),
		seg("client", "in", s, c, "S.", 5000, 1001, 0, ""),
		{Host: "client", Kind: trace.Call, Conn: "c1", Call: "connect", Arg: "198.18.2.2:9527"},
		{Host: "client", Kind: trace.State, Conn: "c1", From: "SYN-SENT", To: "ESTABLISHED"},
		// The gVisor server sees the kernel's RST before the kernel's own
		// (mirrored) event with the reason.
		seg("server", "in", c, s, "R", 1001, 0, 0, ""),
		seg("client", "out", c, s, "R", 1001, 0, 0, "data arrived in FIN-WAIT-2 after close(): ...; kernel: no TCPAbort* counter moved"),
		{Host: "server", Kind: trace.Call, Conn: "c1", Call: "read", Arg: "65536", Err: "ECONNRESET", Ret: -1},
		{Host: "server", Kind: trace.Buffer, Conn: "c1", SndQueued: 1},
	}
	lines, reasons := Normalize(events, Options{})
	want := []string{
		"## wire",
		"client > server [S] seq 0 len 0",
		"server > client [S.] seq 0 ack 1 len 0",
		"client > server [R] seq 1 len 0 (data after close())",
		"## calls",
		"client c1 connect(server:9527) = 0",
		"server c1 read(65536) = ECONNRESET",
		"## states",
		"client c1 SYN-SENT -> ESTABLISHED",
	}
	if got := strings.Join(lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("Normalize:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(reasons) != 1 || !strings.HasPrefix(reasons[0], "client [R] data arrived") {
		t.Errorf("reasons = %q", reasons)
	}
	lines, _ = Normalize(events, Options{Buffers: true})
	if last := lines[len(lines)-1]; last != "server c1 snd 1 rcv 0" {
		t.Errorf("with buffers, last line %q", last)
	}
}

func TestReasonClass(t *testing.T) {
	for reason, want := range map[string]string{
		"close(): the application is done with the socket":                                 "close()",
		"shutdown(SHUT_WR): half-close":                                                    "SHUT_WR",
		"close() with 3 unread bytes in receive buffer: they would be lost":                "unread data",
		"close() with SO_LINGER 0: abortive close":                                         "SO_LINGER 0",
		"data arrived in FIN-WAIT-2 after close(): no socket owns the connection any more": "data after close()",
		"retransmitted FIN (close()): the first was not acknowledged in time":              "retransmitted FIN",
		"segment for no connection: nothing listens on port 9999":                          "no connection",
		"keepalive timeout: the peer answered none of the keepalive probes, so the kernel gave up on the connection (kernel: TCP_KEEPALIVE_TIMEOUT)": "keepalive timeout",
		"": "no reason",
	} {
		if got := ReasonClass(reason); got != want {
			t.Errorf("ReasonClass(%q) = %q, want %q", reason, got, want)
		}
	}
}

func TestFirst(t *testing.T) {
	v := Variant{Diff: Lines([]string{"## wire", "a [R.]", "## calls"}, []string{"## wire", "a [R]", "## calls"})}
	if got, want := v.First(), "wire: -a [R.] | +a [R]"; got != want {
		t.Errorf("First = %q, want %q", got, want)
	}
}
