package render

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/scenario"
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

// TestSVGGeometry lays out the SVG ladder of every built-in scenario and
// checks its geometry: no label or reason of a segment touches its own
// arrow (glyph boxes with their white outline, a 2 px clearance from the
// line's stroke), every text lies within the width of the SVG, and no box
// or note is cut short ("…"): they wrap.
func TestSVGGeometry(t *testing.T) {
	names := scenario.Names()
	if len(names) < 10 {
		t.Fatalf("catalogue has %d scenarios", len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			m := buildModel(simulate(t, name, false), modelOptions{})
			ys, height := svgRows(m)
			inside := func(what string, tx svgText) {
				for _, c := range tx.corners() {
					if c[0] < 0 || c[0] > svgWidth || c[1] < 0 || c[1] > height {
						t.Errorf("%s %q reaches (%.1f, %.1f), outside the %d×%.0f SVG", what, tx.text, c[0], c[1], svgWidth, height)
						return
					}
				}
			}
			reasons := 0
			for i, s := range m.steps {
				y := ys[i]
				switch s.kind {
				case stepSeg:
					a := svgSegGeom(s, y, ys)
					texts := append([]svgText{a.label}, a.reason...)
					for _, tx := range texts {
						inside("segment text", tx)
						if d := polyDist(tx.corners(), a.x1, a.y1, a.x2, a.y2); d < a.stroke/2+2 {
							t.Errorf("%s arrow (%.0f,%.0f)-(%.0f,%.0f): text %q is %.1f px from it", s.flags, a.x1, a.y1, a.x2, a.y2, tx.text, d-a.stroke/2)
						}
					}
					if s.reason != "" {
						reasons++
						if got := strings.Join(lineTexts(a.reason), " "); got != strings.Join(strings.Fields(s.reason), " ") {
							t.Errorf("reason drawn as %q, want all of %q", got, s.reason)
						}
					}
				case stepCall, stepState:
					x, _, wd, _, lines := svgBoxGeom(s.side, y, s.text, "")
					if x < 0 || x+wd > svgWidth {
						t.Errorf("box %q spans x %.1f to %.1f, outside 0 to %d", s.text, x, x+wd, svgWidth)
					}
					for _, tx := range lines {
						inside("box", tx)
						if tx.width() > wd-12+0.01 {
							t.Errorf("box line %q is wider than its box", tx.text)
						}
					}
					if got := strings.Join(lineTexts(lines), " "); got != strings.Join(strings.Fields(s.text), " ") {
						t.Errorf("box drawn as %q, want all of %q", got, s.text)
					}
				case stepNote:
					lines := svgNoteGeom(y, s.text)
					for _, tx := range lines {
						inside("note", tx)
					}
					if got := strings.Join(lineTexts(lines), " "); got != strings.Join(strings.Fields("# "+s.text), " ") {
						t.Errorf("note drawn as %q, want all of %q", got, s.text)
					}
				}
			}
			if strings.HasPrefix(name, "close") && reasons == 0 {
				t.Error("no FIN or RST reason laid out")
			}
		})
	}
}

func lineTexts(ts []svgText) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.text)
	}
	return out
}

// polyDist returns the distance between the convex polygon c and the
// segment (x1,y1)-(x2,y2): 0 when they meet.
func polyDist(c [4][2]float64, x1, y1, x2, y2 float64) float64 {
	p1, p2 := [2]float64{x1, y1}, [2]float64{x2, y2}
	// Either end inside the polygon, or an edge crossing the segment: 0.
	inside := func(p [2]float64) bool {
		sign := 0.0
		for i := range c {
			a, b := c[i], c[(i+1)%4]
			cr := (b[0]-a[0])*(p[1]-a[1]) - (b[1]-a[1])*(p[0]-a[0])
			if sign == 0 {
				sign = cr
			} else if sign*cr < 0 {
				return false
			}
		}
		return true
	}
	if inside(p1) || inside(p2) {
		return 0
	}
	d := math.Inf(1)
	for i := range c {
		a, b := c[i], c[(i+1)%4]
		if segsCross(a, b, p1, p2) {
			return 0
		}
		d = math.Min(d, math.Min(ptSeg(a, p1, p2), ptSeg(p1, a, b)))
		d = math.Min(d, math.Min(ptSeg(b, p1, p2), ptSeg(p2, a, b)))
	}
	return d
}

func segsCross(a, b, c, d [2]float64) bool {
	o := func(p, q, r [2]float64) float64 {
		return (q[0]-p[0])*(r[1]-p[1]) - (q[1]-p[1])*(r[0]-p[0])
	}
	return o(a, b, c)*o(a, b, d) < 0 && o(c, d, a)*o(c, d, b) < 0
}

// ptSeg is the distance from p to the segment a-b.
func ptSeg(p, a, b [2]float64) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	l := dx*dx + dy*dy
	u := 0.0
	if l > 0 {
		u = math.Max(0, math.Min(1, ((p[0]-a[0])*dx+(p[1]-a[1])*dy)/l))
	}
	return math.Hypot(p[0]-a[0]-u*dx, p[1]-a[1]-u*dy)
}

// TestModelDroppedCopyIsLost: when the wire drops a FIN and the stack
// retransmits it, the arrival belongs to the retransmission (the latest
// copy), and the first copy is drawn as lost. Matching the oldest pending
// copy drew the dropped FIN arriving and the retransmission lost.
func TestModelDroppedCopyIsLost(t *testing.T) {
	m := buildModel(simulate(t, "lost-fin", false), modelOptions{})
	var fins []step
	for _, s := range m.steps {
		if s.kind == stepSeg && s.ev.Host == "client" && strings.Contains(s.flags, "F") {
			fins = append(fins, s)
		}
	}
	if len(fins) != 2 {
		t.Fatalf("%d FINs from the client, want 2 (dropped, retransmitted)", len(fins))
	}
	if !fins[0].lost || fins[0].arrive >= 0 {
		t.Errorf("dropped FIN: lost %v, arrival %d; want lost", fins[0].lost, fins[0].arrive)
	}
	if fins[1].lost || fins[1].arrive < 0 {
		t.Errorf("retransmitted FIN: lost %v, arrival %d; want it to arrive", fins[1].lost, fins[1].arrive)
	}
}
