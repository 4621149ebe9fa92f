package crossing

import (
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

const (
	cli   = "198.18.1.2:40000"
	front = "198.18.1.1:7000"
	back  = "198.18.2.1:50000"
	srv   = "198.18.2.2:9000"
)

// seg is a segment event at ms milliseconds.
func seg(ms float64, host, conn, dir, src, dst, flags string) trace.Event {
	return trace.Event{T: time.Duration(ms * float64(time.Millisecond)), Host: host, Conn: conn, Kind: trace.Segment, Dir: dir, Src: src, Dst: dst, Flags: flags}
}

func state(ms float64, conn, to string) trace.Event {
	return trace.Event{T: time.Duration(ms * float64(time.Millisecond)), Host: "relay", Conn: conn, Kind: trace.State, To: to}
}

// handshakes: the client connects to the relay (relay c1), the relay to
// the server (relay c2).
func handshakes() []trace.Event {
	return []trace.Event{
		seg(1, "client", "c1", "out", cli, front, "S"),
		seg(1.1, "relay", "c1", "in", cli, front, "S"),
		seg(1.2, "relay", "c1", "out", front, cli, "S."),
		state(1.3, "c1", "ESTABLISHED"),
		seg(2, "relay", "c2", "out", back, srv, "S"),
		seg(2.1, "server", "c1", "out", srv, back, "S."),
		seg(2.2, "relay", "c2", "in", srv, back, "S."),
		state(2.3, "c2", "ESTABLISHED"),
	}
}

func index(ev []trace.Event) []trace.Event {
	for i := range ev {
		ev[i].Index = i
	}
	return ev
}

func one(t *testing.T, ev []trace.Event, opt Options, n int) []Verdict {
	t.Helper()
	vs := Verdicts(index(ev), "relay", opt)
	if len(vs) != n {
		t.Fatalf("Verdicts = %d verdicts, want %d: %+v", len(vs), n, vs)
	}
	return vs
}

// TestPassedOn: the client's FIN leaves toward the server as a FIN 3 ms
// later; the server's FIN comes back as a FIN.
func TestPassedOn(t *testing.T) {
	ev := append(handshakes(),
		seg(10, "client", "c1", "out", cli, front, "F."),
		seg(10.1, "relay", "c1", "in", cli, front, "F."),
		seg(13.1, "relay", "c2", "out", back, srv, "F."),
		seg(13.2, "relay", "c2", "out", back, srv, "F."), // a retransmission
		seg(20, "relay", "c2", "in", srv, back, "F."),
		seg(20.5, "relay", "c1", "out", front, cli, "F."),
		state(21, "c1", "LAST-ACK"),
	)
	vs := one(t, ev, Options{}, 2)
	if got, want := vs[0].Text, "client's FIN passed on to server after 3.0 ms"; got != want {
		t.Errorf("verdict 1 = %q, want %q", got, want)
	}
	if vs[0].Out == nil || vs[0].Out.T != 13100*time.Microsecond {
		t.Errorf("verdict 1 pairs with %+v, want the relay's FIN at 13.1 ms", vs[0].Out)
	}
	if got, want := vs[1].Text, "server's FIN passed on to client after 0.50 ms"; got != want {
		t.Errorf("verdict 2 = %q, want %q", got, want)
	}
}

// TestTurnedIntoRST: the server's FIN is answered by a RST toward the
// client, with the kernel's reason.
func TestTurnedIntoRST(t *testing.T) {
	rst := seg(520, "relay", "c1", "out", front, cli, "R.")
	rst.Reason = "close() with 5 unread bytes (kernel: TCPAbortOnClose+1)"
	ev := append(handshakes(),
		seg(20, "relay", "c2", "in", srv, back, "F."),
		rst,
	)
	vs := one(t, ev, Options{}, 1)
	want := "server's FIN turned into a RST toward client after 500 ms (the relay's RST: close() with 5 unread bytes (kernel: TCPAbortOnClose+1))"
	if vs[0].Text != want {
		t.Errorf("verdict = %q, want %q", vs[0].Text, want)
	}
	if vs[0].From != "server" || vs[0].To != "client" || vs[0].Flag != "FIN" {
		t.Errorf("verdict %+v: want server's FIN toward client", vs[0])
	}
}

// TestNeverPassedOn: the client's FIN stays with the relay; its connection
// to the server is still established at the end.
func TestNeverPassedOn(t *testing.T) {
	ev := append(handshakes(),
		seg(10.1, "relay", "c1", "in", cli, front, "F."),
		state(10.2, "c1", "CLOSE-WAIT"),
		seg(11, "relay", "c2", "out", back, srv, "P."), // data is no FIN
	)
	vs := one(t, ev, Options{}, 1)
	want := "client's FIN never passed on to server (the relay's connection toward server was still ESTABLISHED when the run ended)"
	if vs[0].Text != want || vs[0].Out != nil {
		t.Errorf("verdict = %q (out %v), want %q", vs[0].Text, vs[0].Out, want)
	}
}

// TestAlreadySent: the server's FIN comes after the relay had given up on
// the client's leg (socat -t): nothing is passed on; a RST to the server
// itself is not a crossing.
func TestAlreadySent(t *testing.T) {
	ev := append(handshakes(),
		seg(10.1, "relay", "c1", "in", cli, front, "F."),
		seg(10.5, "relay", "c2", "out", back, srv, "F."),
		seg(511, "relay", "c1", "out", front, cli, "F."),
		seg(1010, "relay", "c2", "in", srv, back, "FP."),
		seg(1010.2, "relay", "c2", "out", back, srv, "R"),
	)
	ev[len(ev)-1].Reason = "data arrived after close()"
	ev[len(ev)-3].Reason = "close()"
	vs := one(t, ev, Options{}, 3)
	if !strings.HasPrefix(vs[0].Text, "client's FIN passed on to server after 0.40 ms") {
		t.Errorf("verdict 1 = %q", vs[0].Text)
	}
	want := "the relay's own FIN toward client at 0.511s, 501 ms after client's FIN reached it: it passes nothing on (no FIN or RST from the other leg was left to pass) (its reason: close())"
	if vs[1].Text != want || !vs[1].Own {
		t.Errorf("verdict 2 = %q, want %q", vs[1].Text, want)
	}
	want = "server's FIN arrived after the relay had already sent a FIN toward client (499 ms earlier): nothing left to pass on; the relay answered it with a RST toward server after 0.20 ms (data arrived after close())"
	if vs[2].Text != want {
		t.Errorf("verdict 3 = %q, want %q", vs[2].Text, want)
	}
}

// TestOwnRST: the server's answer meets a relay that closed (socat -t): the
// relay's RST toward the server passes nothing on, and says why.
func TestOwnRST(t *testing.T) {
	rst := seg(1010.2, "relay", "c2", "out", back, srv, "R")
	rst.Reason = "data after close()"
	ev := append(handshakes(),
		seg(10.1, "relay", "c1", "in", cli, front, "F."),
		seg(10.5, "relay", "c2", "out", back, srv, "F."),
		seg(511, "relay", "c1", "out", front, cli, "F."),
		seg(1010, "relay", "c2", "in", srv, back, "P."),
		rst,
	)
	vs := one(t, ev, Options{}, 3)
	if got := vs[2]; !got.Own || got.To != "server" || got.Flag != "RST" || !strings.Contains(got.Text, "the relay's own RST toward server at 1.010s, 1.00 s after client's FIN reached it") || !strings.HasSuffix(got.Text, "(its reason: data after close())") {
		t.Errorf("verdict 3 = %+v", got)
	}
}

// TestStoppedAndRSTPassed: a RST crosses as a RST; a FIN sent after tcplab
// stopped the relay says so; refused arrivals do not count.
func TestStoppedAndRSTPassed(t *testing.T) {
	refused := seg(5, "relay", "c1", "in", cli, front, "R")
	refused.Verdict = trace.Refused
	ev := append(handshakes(),
		refused,
		seg(10, "relay", "c2", "in", srv, back, "R."),
		seg(12, "relay", "c1", "out", front, cli, "R."),
		seg(20, "relay", "c1", "in", cli, front, "F."),
	)
	vs := one(t, ev, Options{}, 2)
	if got, want := vs[0].Text, "server's RST passed on to client after 2.0 ms"; got != want {
		t.Errorf("verdict 1 = %q, want %q", got, want)
	}
	if !strings.HasPrefix(vs[1].Text, "client's FIN never passed on to server") {
		t.Errorf("verdict 2 = %q", vs[1].Text)
	}

	ev = append(handshakes(),
		seg(10, "relay", "c1", "in", cli, front, "F."),
		seg(900, "relay", "c2", "out", back, srv, "F."),
	)
	vs = one(t, ev, Options{Stopped: 800 * time.Millisecond}, 1)
	if got, want := vs[0].Text, "client's FIN passed on to server after 890 ms, only once tcplab stopped the relay (SIGTERM at 0.800s)"; got != want {
		t.Errorf("verdict = %q, want %q", got, want)
	}
}

// TestNoOtherLeg: a relay that never connected onward.
func TestNoOtherLeg(t *testing.T) {
	ev := index([]trace.Event{
		seg(1, "client", "c1", "out", cli, front, "S"),
		seg(10, "relay", "c1", "in", cli, front, "F."),
	})
	vs := Verdicts(ev, "relay", Options{})
	if len(vs) != 1 || !strings.Contains(vs[0].Text, "no connection toward another host") {
		t.Fatalf("Verdicts = %+v", vs)
	}
	if vs := Verdicts(nil, "relay", Options{}); len(vs) != 0 {
		t.Errorf("Verdicts(nil) = %+v", vs)
	}
}

// TestFINThenRST: the client's FIN and then its RST, on one leg. The FIN
// crosses as a FIN; the RST is passed on by the relay's RST: a segment that
// passed one arrival on is not paired with another.
func TestFINThenRST(t *testing.T) {
	ev := append(handshakes(),
		seg(10, "relay", "c1", "in", cli, front, "F."),
		seg(11, "relay", "c2", "out", back, srv, "F."),
		seg(20, "relay", "c1", "in", cli, front, "R"),
		seg(25, "relay", "c2", "out", back, srv, "R."),
	)
	vs := one(t, ev, Options{}, 2)
	if got, want := vs[0].Text, "client's FIN passed on to server after 1.0 ms"; got != want {
		t.Errorf("verdict 1 = %q, want %q", got, want)
	}
	if got, want := vs[1].Text, "client's RST passed on to server after 5.0 ms"; got != want {
		t.Errorf("verdict 2 = %q, want %q", got, want)
	}

	// Both arrive before the relay does anything: the FIN pairs with the
	// relay's FIN, the RST with its RST.
	ev = append(handshakes(),
		seg(10, "relay", "c1", "in", cli, front, "F."),
		seg(12, "relay", "c1", "in", cli, front, "R"),
		seg(30, "relay", "c2", "out", back, srv, "F."),
		seg(40, "relay", "c2", "out", back, srv, "R."),
	)
	vs = one(t, ev, Options{}, 2)
	if got, want := vs[0].Text, "client's FIN passed on to server after 20 ms"; got != want {
		t.Errorf("verdict 1 = %q, want %q", got, want)
	}
	if got, want := vs[1].Text, "client's RST passed on to server after 28 ms"; got != want {
		t.Errorf("verdict 2 = %q, want %q", got, want)
	}
}

// TestBeforeThenOut: the relay had ended a direction on its own (FIN) when
// the other host's FIN arrives, and later resets: the verdict says both.
func TestBeforeThenOut(t *testing.T) {
	ev := append(handshakes(),
		seg(10, "relay", "c1", "out", front, cli, "F."),
		seg(20, "relay", "c2", "in", srv, back, "F."),
		seg(50, "relay", "c1", "out", front, cli, "R."),
	)
	vs := one(t, ev, Options{}, 2)
	if !vs[0].Own || vs[0].Out.T != 10*time.Millisecond {
		t.Errorf("verdict 1 = %+v: want the relay's own FIN toward the client", vs[0])
	}
	if got, want := vs[1].Text, "server's FIN turned into a RST toward client after 30 ms (the relay had already sent a FIN toward client 10 ms before it arrived)"; got != want {
		t.Errorf("verdict 2 = %q, want %q", got, want)
	}
}
