package render

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/stack/trace"
)

// svgSeg is an element of class "seg" in an SVG ladder.
type svgSeg struct {
	name, flags, stroke string
	count               int // data-count, 0 when absent
}

// parseSVG checks that doc is well-formed XML with an <svg> root and
// returns its arrows and all its text.
func parseSVG(t *testing.T, doc []byte) (segs []svgSeg, text string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	var b strings.Builder
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			s := svgSeg{name: el.Name.Local}
			isSeg := false
			for _, a := range el.Attr {
				switch a.Name.Local {
				case "class":
					isSeg = a.Value == "seg"
				case "data-flags":
					s.flags = a.Value
				case "stroke":
					s.stroke = a.Value
				case "data-count":
					s.count, _ = strconv.Atoi(a.Value)
				}
			}
			if isSeg {
				segs = append(segs, s)
			}
		case xml.CharData:
			b.Write(el)
		}
	}
	if root != "svg" {
		t.Fatalf("root element is %q, want svg", root)
	}
	return segs, b.String()
}

func TestSVGClose(t *testing.T) {
	events := closeTrace(t)
	var b bytes.Buffer
	if err := SVG(&b, events, SVGOptions{Title: `close <experiment> & "reset"`}); err != nil {
		t.Fatal(err)
	}
	segs, text := parseSVG(t, b.Bytes())
	var want []string
	for _, e := range events {
		if e.Kind == trace.Segment && e.Dir == "out" {
			want = append(want, e.Flags)
		}
	}
	if len(segs) != len(want) {
		t.Fatalf("SVG has %d arrows, want %d (one per segment sent)", len(segs), len(want))
	}
	for i, s := range segs {
		if s.flags != want[i] {
			t.Errorf("arrow %d has data-flags %q, want %q", i, s.flags, want[i])
		}
		switch {
		case strings.Contains(s.flags, "R") && s.stroke != svgColor("rst"):
			t.Errorf("RST arrow %d is %s, want red", i, s.stroke)
		case strings.Contains(s.flags, "F") && s.stroke != svgColor("fin"):
			t.Errorf("FIN arrow %d is %s, want blue", i, s.stroke)
		}
	}
	for _, w := range []string{`close <experiment> & "reset"`, "listen(9527) = 0", "[CLOSE-WAIT]", "data arrived in FIN-WAIT-2", `P. seq 1:4 ack 1 len 3 "aaa"`} {
		if !strings.Contains(text, w) {
			t.Errorf("SVG text lacks %q", w)
		}
	}
}

func TestSVGBulkCollapses(t *testing.T) {
	events := bulkTrace(t, 2<<20)
	var b bytes.Buffer
	if err := SVG(&b, events, SVGOptions{NoTime: true}); err != nil {
		t.Fatal(err)
	}
	segs, text := parseSVG(t, b.Bytes())
	m := buildModel(events, modelOptions{})
	arrows, runs := 0, 0
	for _, s := range m.steps {
		switch s.kind {
		case stepSeg:
			arrows++
		case stepRun:
			runs++
		}
	}
	if runs == 0 {
		t.Fatal("no bulk run collapsed")
	}
	if len(segs) != arrows+runs {
		t.Errorf("SVG has %d arrows, want %d segments and %d runs", len(segs), arrows, runs)
	}
	if len(segs) > 40 {
		t.Errorf("SVG has %d arrows for a 2 MiB transfer; the bulk did not collapse", len(segs))
	}
	counted := 0
	for _, s := range segs {
		counted += s.count
	}
	if counted <= DefaultCollapseAfter {
		t.Errorf("runs stand for %d segments, want more than %d", counted, DefaultCollapseAfter)
	}
	if !strings.Contains(text, "(2.0 MiB)") {
		t.Error("SVG lacks the size of the run")
	}
}

func TestSVGEscapes(t *testing.T) {
	events := []trace.Event{
		{Kind: trace.Call, Host: "client", Conn: "c1", Call: "write", Arg: "5", Ret: 5, Data: "<a&b>"},
		{Kind: trace.Note, Text: "]]> & <!-- -->"},
		{Kind: trace.State, Host: "server", Conn: "c1", From: "LISTEN", To: "SYN-RECEIVED", Text: `"quoted" <text>`},
	}
	var b bytes.Buffer
	if err := SVG(&b, events, SVGOptions{}); err != nil {
		t.Fatal(err)
	}
	_, text := parseSVG(t, b.Bytes())
	for _, w := range []string{`"<a&b>"`, "]]> & <!-- -->", `"quoted" <text>`} {
		if !strings.Contains(text, w) {
			t.Errorf("SVG text lacks %q", w)
		}
	}
}

func TestSVGCloseGolden(t *testing.T) {
	events := closeFixture(t)
	var b bytes.Buffer
	if err := SVG(&b, events, SVGOptions{Title: "close: the client closes, the server answers, RST"}); err != nil {
		t.Fatal(err)
	}
	segs, _ := parseSVG(t, b.Bytes())
	if want := countOut(events); len(segs) != want {
		t.Errorf("SVG has %d arrows, want %d", len(segs), want)
	}
	golden(t, "close.svg.golden", b.Bytes())
}
