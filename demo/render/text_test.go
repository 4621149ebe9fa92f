package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/stack/trace"
)

// Escape codes in a scenario's note reach the terminal escaped, never raw.
func TestNoteEscapesControlCharacters(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain \"quoted\" text, tab\there, é", "plain \"quoted\" text, tab\there, é"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"two\nlines\r", `two\nlines\r`},
		{"c1 \u0085 and bad \xff byte", `c1 \u0085 and bad \xff byte`},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	line := NewText(nil, TextOptions{}).Line(trace.Event{Host: "client", Kind: trace.Note, Text: "\x1b]0;pwned\x07\x1b[2J"})
	if strings.ContainsAny(line, "\x1b\x07") || !strings.Contains(line, `# \x1b]0;pwned\a\x1b[2J`) {
		t.Errorf("note line = %q", line)
	}
}

// A refused arrival is marked with its verdict, and a refused SYN does not
// rebase the relative sequence numbers; accepted arrivals print as before.
func TestTextRefusedArrival(t *testing.T) {
	const c, s = "198.18.0.1:4000", "198.18.0.2:80"
	seg := func(host, dir, src, dst, flags string, seq, ack uint32, n int) trace.Event {
		return trace.Event{Host: host, Kind: trace.Segment, Conn: "c1", Dir: dir, Src: src, Dst: dst, Flags: flags, Seq: seq, Ack: ack, Len: n, Win: 100}
	}
	events := []trace.Event{
		seg("client", "out", c, s, "S", 1000, 0, 0),
		seg("server", "out", s, c, "S.", 5000, 1001, 0),
		seg("client", "out", c, s, ".", 1001, 5001, 0),
		seg("server", "in", c, s, ".", 1001, 5001, 0),
		seg("server", "in", c, s, "S", 77, 0, 0),
		seg("client", "out", c, s, "P.", 1001, 5001, 3),
	}
	events[3].Verdict = trace.Accepted
	events[4].Verdict, events[4].Why, events[4].Evidence = trace.Refused, trace.WhyChallenge, "SYN on a synchronized connection"
	var b bytes.Buffer
	if err := NewText(&b, TextOptions{Arrivals: true, NoTime: true}).WriteAll(events); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("got %d lines:\n%s", len(lines), b.String())
	}
	if want := "server c1  server < client Flags [.], seq 1, ack 1, win 100, length 0"; lines[3] != want {
		t.Errorf("accepted arrival:\n got %q\nwant %q", lines[3], want)
	}
	if want := "refused: RFC 5961 challenge (inferred: SYN on a synchronized connection)"; !strings.HasSuffix(lines[4], want) {
		t.Errorf("refused arrival %q, want suffix %q", lines[4], want)
	}
	if want := "Flags [P.], seq 1:4, ack 1,"; !strings.Contains(lines[5], want) {
		t.Errorf("data after a refused SYN %q, want %q: relative numbers unchanged", lines[5], want)
	}
}

func TestExplainRefusedArrival(t *testing.T) {
	e := trace.Event{Kind: trace.Segment, Dir: "in", Flags: "R.", Verdict: trace.Refused, Why: trace.WhyChallenge}
	if x := Explain(e); !strings.Contains(x, "dropped") {
		t.Errorf("Explain(refused RST) = %q", x)
	}
	e.Verdict = trace.Accepted
	if x := Explain(e); x != "" {
		t.Errorf("Explain(accepted arrival) = %q, want nothing", x)
	}
}

// With Peers, a relay's segments name the host at their other end, and the
// hosts' segments name the relay; unknown addresses fall back.
func TestTextPeers(t *testing.T) {
	seg := func(host, dir, src, dst string) trace.Event {
		return trace.Event{Host: host, Kind: trace.Segment, Conn: "c1", Dir: dir, Src: src, Dst: dst, Flags: "F.", Win: 100}
	}
	peers := map[string]string{"198.18.1.1": "relay", "198.18.2.1": "relay", "198.18.1.2": "client", "198.18.2.2": "server"}
	tx := NewText(nil, TextOptions{Arrivals: true, NoTime: true, Peers: peers})
	for _, tc := range []struct {
		e    trace.Event
		want string
	}{
		{seg("client", "out", "198.18.1.2:4000", "198.18.1.1:7000"), "client > relay "},
		{seg("relay", "in", "198.18.1.2:4000", "198.18.1.1:7000"), "relay < client "},
		{seg("relay", "out", "198.18.2.1:5000", "198.18.2.2:9000"), "relay > server "},
		{seg("server", "out", "198.18.2.2:9000", "198.18.2.1:5000"), "server > relay "},
		{seg("server", "out", "198.18.2.2:9000", "198.18.9.9:5000"), "server > client "},
	} {
		if line := tx.Line(tc.e); !strings.Contains(line, tc.want) {
			t.Errorf("Line(%s %s %s>%s) = %q, want %q", tc.e.Host, tc.e.Dir, tc.e.Src, tc.e.Dst, line, tc.want)
		}
	}
}
