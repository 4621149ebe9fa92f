package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

// A long run's summary event shows in every renderer: a line of the text
// timeline with relative sequence numbers, a note on the ladder and the
// SVG.
func TestSummaryInRenderers(t *testing.T) {
	sum := trace.Event{Kind: trace.Summary, T: 2 * time.Second, Host: "client", Conn: "c1", Dir: "out", Src: "a:1", Dst: "b:2",
		Text: "summary: 5 segments sent, 5000 bytes of data",
		Sum:  &trace.Sum{Of: "segments", Count: 5, Bytes: 5000, Since: time.Second, Flags: map[string]int{".": 4, "P.": 1}, Seq: 1101, SeqEnd: 6101, Ack: 1, WinMin: 10, WinMax: 20}}
	events := []trace.Event{
		{Kind: trace.Segment, Host: "client", Conn: "c1", Dir: "out", Src: "a:1", Dst: "b:2", Flags: "S", Seq: 100},
		{Kind: trace.Segment, Host: "server", Conn: "c1", Dir: "out", Src: "b:2", Dst: "a:1", Flags: "S.", Seq: 0, Ack: 101},
		sum,
	}
	var b bytes.Buffer
	tx := NewText(&b, TextOptions{NoTime: true})
	if err := tx.WriteAll(events); err != nil {
		t.Fatal(err)
	}
	if want := "client > server 5 segments [. 4, P. 1], seq 1001:6001, ack 1, win 10..20, 5000 bytes, since 1.000000 (summary of observed segments)"; !strings.Contains(b.String(), want) {
		t.Errorf("text:\n%s\nwant a line with %q", b.String(), want)
	}
	b.Reset()
	if err := Ladder(&b, events, LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "summary: 5 segments") {
		t.Errorf("ladder lacks the summary:\n%s", b.String())
	}
	b.Reset()
	if err := SVG(&b, events, SVGOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "summary: 5 segments") {
		t.Error("SVG lacks the summary")
	}
}
