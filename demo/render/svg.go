package render

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/tcplab/tcplab/stack/trace"
)

// SVGOptions tune the SVG ladder. The zero value gives a titled diagram
// with times, relative sequence numbers and bulk runs of more than
// DefaultCollapseAfter data segments collapsed.
type SVGOptions struct {
	// Title is written above the diagram; "" means "tcplab: client ⇄ server".
	Title string
	// NoTime leaves out the time column.
	NoTime bool
	// CollapseAfter is as in LadderOptions: 0 means DefaultCollapseAfter,
	// negative never collapses.
	CollapseAfter int
	// Absolute prints absolute sequence numbers instead of relative ones.
	Absolute bool
	// Ports keeps ephemeral ports in call results.
	Ports bool
}

// Layout of the SVG, in pixels. Text is monospace, so widths are counted
// in characters.
const (
	svgCharW    = 7.2  // width of a character at svgFont
	svgSmallW   = 6.0  // width of a character at svgSmall
	svgFont     = 12.0 // font size of labels and boxes
	svgSmall    = 10.0 // font size of times, buffers and reasons
	svgTimeW    = 80   // time column
	svgSideW    = 300  // room for the boxes beside each lane
	svgMidW     = 460  // between the lanes
	svgLaneL    = svgTimeW + svgSideW
	svgLaneR    = svgLaneL + svgMidW
	svgWidth    = svgLaneR + svgSideW + 10
	svgTop      = 96 // first row
	svgBoxChars = 38 // (svgSideW - 24) / svgCharW
	svgMidChars = 61 // (svgMidW - 20) / svgCharW
	svgWhyChars = 34 // a reason's lines, beside the sender's lane under its arrow
	svgRunChars = 62 // (svgMidW - 80) / svgSmallW: a run's detail, clear of the lanes
)

// Colours of arrows, by what a segment does.
var svgColors = []struct{ id, color string }{
	{"rst", "#d32f2f"}, {"fin", "#1565c0"}, {"syn", "#2e7d32"},
	{"data", "#212121"}, {"ack", "#757575"}, {"run", "#8e24aa"},
}

func svgKind(flags string) string {
	switch {
	case strings.Contains(flags, "R"):
		return "rst"
	case strings.Contains(flags, "F"):
		return "fin"
	case strings.Contains(flags, "S"):
		return "syn"
	case strings.Contains(flags, "P"):
		return "data"
	}
	return "ack"
}

func svgColor(kind string) string {
	for _, c := range svgColors {
		if c.id == kind {
			return c.color
		}
	}
	return "#212121"
}

// Geometry of text, for layout: monospace glyphs are svgCharRatio of the
// font size wide; a line of text reaches svgAscent of the size above its
// baseline and svgDescent below.
const (
	svgCharRatio = 0.6
	svgAscent    = 0.8
	svgDescent   = 0.25
	svgLineH     = 15.0 // between the lines of a wrapped box or note
	svgWhyLineH  = 12.0 // between the lines of a reason
	svgWhyGap    = 8.0  // between a reason and the lane it is written beside
	svgClear     = 4.0  // between an arrow and its reason's first line
)

// svgText is one line of text as laid out: baseline at y, anchored at x,
// rotated by angle degrees about (cx, cy).
type svgText struct {
	x, y, size float64
	anchor     string // "start", "middle" or "end"
	text       string
	angle      float64
	cx, cy     float64
	halo       float64 // width of the white outline drawn under the glyphs
	italic     bool
	weight     string
	fill       string
}

// width is the advance of t's text.
func (t svgText) width() float64 {
	return float64(utf8.RuneCountInString(t.text)) * t.size * svgCharRatio
}

// corners returns the corners of the box t's glyphs and outline cover,
// rotated as drawn, in order around the box.
func (t svgText) corners() [4][2]float64 {
	w := t.width()
	x0 := t.x
	switch t.anchor {
	case "middle":
		x0 -= w / 2
	case "end":
		x0 -= w
	}
	h := t.halo / 2
	top, bot := t.y-t.size*svgAscent-h, t.y+t.size*svgDescent+h
	c := [4][2]float64{{x0 - h, top}, {x0 + w + h, top}, {x0 + w + h, bot}, {x0 - h, bot}}
	if t.angle != 0 {
		sin, cos := math.Sincos(t.angle * math.Pi / 180)
		for i := range c {
			dx, dy := c[i][0]-t.cx, c[i][1]-t.cy
			c[i] = [2]float64{t.cx + dx*cos - dy*sin, t.cy + dx*sin + dy*cos}
		}
	}
	return c
}

// write draws t.
func (t svgText) write(w *bufio.Writer) {
	if t.angle != 0 {
		fmt.Fprintf(w, `<g transform="rotate(%.2f %.1f %.1f)">`, t.angle, t.cx, t.cy)
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f"`, t.x, t.y)
	if t.anchor != "start" && t.anchor != "" {
		fmt.Fprintf(w, ` text-anchor="%s"`, t.anchor)
	}
	if t.size != svgFont {
		fmt.Fprintf(w, ` font-size="%g"`, t.size)
	}
	if t.italic {
		w.WriteString(` font-style="italic"`)
	}
	if t.weight != "" {
		fmt.Fprintf(w, ` font-weight="%s"`, t.weight)
	}
	fmt.Fprintf(w, ` fill="%s"`, t.fill)
	if t.halo > 0 {
		fmt.Fprintf(w, ` paint-order="stroke" stroke="#ffffff" stroke-width="%g" stroke-linejoin="round"`, t.halo)
	}
	fmt.Fprintf(w, ">%s</text>", esc(t.text))
	if t.angle != 0 {
		w.WriteString("</g>")
	}
	w.WriteString("\n")
}

// svgArrow is a segment's arrow as laid out.
type svgArrow struct {
	x1, y1, x2, y2 float64
	stroke         float64 // line width
	label          svgText
	reason         []svgText
}

// whyWidth is how far a reason reaches from the sender's lane: its
// longest possible line plus the gap.
const whyWidth = svgWhyGap + svgWhyChars*svgSmall*svgCharRatio

// segDX is the horizontal length of the arrow of s.
func segDX(s step) float64 {
	if s.lost {
		return svgMidW * 0.7
	}
	return svgMidW
}

// segRows is the height a segment's row takes: room for its reason below
// its arrow, beside the sender's lane, when the arrow ends at the end of
// that row (an arrival right after the send, the usual case) or is drawn
// without an arrival (svgNoArrival down).
func segRows(s step) float64 {
	n := len(wrap(s.reason, svgWhyChars))
	if n == 0 {
		return 30
	}
	// The reason starts where the arrow has passed its far corner: at
	// depth k*whyWidth + clearance for an arrow of slope k, and must end
	// above what the next row draws (up to svgNextRow above that row).
	text := svgClear + svgSmall*svgAscent + 1.5 + float64(n-1)*svgWhyLineH + svgSmall*svgDescent + 1.5
	if s.lost || s.arrive < 0 {
		k := svgNoArrival / segDX(s)
		return math.Ceil(math.Max(30, k*whyWidth+text+svgNextRow))
	}
	return math.Ceil(math.Max(30, (text+svgNextRow)/(1-whyWidth/segDX(s))))
}

// svgNoArrival is how far down an arrow goes that has no arrival to end
// at (a lost segment, or a trace without arrivals); svgNextRow is how far
// above its row the tallest thing a row draws reaches (a box).
const (
	svgNoArrival = 24.0
	svgNextRow   = 12.0
)

// svgSegGeom lays out the arrow of segment s sent at y: from its sender's
// lane to its receiver's at its arrival row (or a short one, 70% of the
// way, when it was lost), its label above it along the line, and its
// reason below it, horizontal, beside the sender's lane, low enough that
// the arrow has passed above the reason's longest line.
func svgSegGeom(s step, y float64, ys []float64) svgArrow {
	x1, x2 := laneX(s.side)
	y2 := y + svgNoArrival
	if s.arrive >= 0 && !s.lost {
		y2 = max(ys[s.arrive], y+svgNoArrival)
	}
	if s.lost {
		x2 = x1 + (x2-x1)*0.7
	}
	kind := svgKind(s.flags)
	a := svgArrow{x1: x1, y1: y, x2: x2, y2: y2, stroke: 1.5}
	if kind == "rst" || kind == "fin" {
		a.stroke = 2
	}
	color := svgColor(kind)
	mx, my := (x1+x2)/2, (y+y2)/2
	a.label = svgText{x: mx, y: my - a.stroke/2 - svgFont*svgDescent - 5, size: svgFont, anchor: "middle",
		text: fit(s.text, svgMidChars), angle: textAngle(x1, y, x2, y2), cx: mx, cy: my, halo: 4, fill: color}
	lines := wrap(s.reason, svgWhyChars)
	if len(lines) == 0 {
		return a
	}
	dx := math.Abs(x2 - x1)
	k := (y2 - y) / dx
	reach := math.Min(whyWidth, dx)
	x, anchor := x1+svgWhyGap, "start"
	if x2 < x1 {
		x, anchor = x1-svgWhyGap, "end"
	}
	base := y + k*reach + a.stroke/2 + svgClear + svgSmall*svgAscent + 1.5
	for i, line := range lines {
		a.reason = append(a.reason, svgText{x: x, y: base + float64(i)*svgWhyLineH, size: svgSmall, anchor: anchor,
			text: line, halo: 3, italic: true, fill: color})
	}
	return a
}

// boxLines is the text of a call or state box, wrapped to the room beside
// a lane.
func boxLines(text string) []string {
	lines := wrap(text, svgBoxChars)
	if len(lines) == 0 {
		lines = []string{""}
	}
	return lines
}

// svgBoxGeom lays out a call or state box beside the lane of s at y: its
// rectangle (x, top, width, height) and its lines.
func svgBoxGeom(s side, y float64, text, weight string) (x, top, wd, ht float64, lines []svgText) {
	ls := boxLines(text)
	longest := 0
	for _, l := range ls {
		longest = max(longest, utf8.RuneCountInString(l))
	}
	wd = float64(longest)*svgCharW + 12
	x = float64(svgLaneL) - 10 - wd
	if s == right {
		x = svgLaneR + 10
	}
	ht = 18 + float64(len(ls)-1)*svgLineH
	for i, l := range ls {
		lines = append(lines, svgText{x: x + 6, y: y + 4 + float64(i)*svgLineH, size: svgFont, anchor: "start",
			text: l, weight: weight, fill: "#263238"})
	}
	return x, y - 9, wd, ht, lines
}

// svgNoteGeom lays out a note in the middle of the diagram at y.
func svgNoteGeom(y float64, text string) []svgText {
	var out []svgText
	for i, l := range wrap("# "+text, svgMidChars) {
		out = append(out, svgText{x: (svgLaneL + svgLaneR) / 2, y: y + 4 + float64(i)*svgLineH, size: svgFont,
			anchor: "middle", text: l, italic: true, fill: "#6d4c41"})
	}
	return out
}

// svgTitleChars is how much of the title fits across the diagram.
const svgTitleChars = (svgWidth - 24) * 10 / 96 // at 16 px, 9.6 px a character

// svgRows returns the vertical position of every step of m and the height
// of the diagram.
func svgRows(m model) (ys []float64, height float64) {
	ys = make([]float64, len(m.steps))
	cursor := float64(svgTop)
	for i, s := range m.steps {
		ys[i] = cursor
		switch s.kind {
		case stepSeg:
			cursor += segRows(s)
		case stepArrive:
			if s.of >= 0 {
				cursor += 6
			}
		case stepRun:
			cursor += 50
			if runDetail(s.run) != "" {
				cursor += 14
			}
		case stepCall, stepState:
			cursor += 24 + float64(len(boxLines(s.text))-1)*svgLineH
		case stepNote:
			cursor += 24 + float64(len(wrap("# "+s.text, svgMidChars))-1)*svgLineH
		case stepBuffer:
			cursor += 15
		}
	}
	return ys, cursor + 24
}

// SVG writes events as a self-contained SVG sequence diagram: two
// vertical lanes, time flowing down, one slanted arrow per segment from
// its sender's lane at the send to its receiver's lane at the arrival,
// with the reason of a FIN or RST beside its sender's lane under the
// arrow, and calls and states as boxes beside their host's lane (wrapped,
// never cut). Rows follow the order of events, not their times (which are
// printed in the left margin), so that bursts stay legible. Each arrow is
// an element with class="seg" and a data-flags attribute. Like Ladder it
// reads the whole trace first; the output is a few elements per event.
func SVG(w io.Writer, events []trace.Event, opt SVGOptions) error {
	m := buildModel(events, modelOptions{collapseAfter: opt.CollapseAfter, absolute: opt.Absolute, ports: opt.Ports})
	ys, height := svgRows(m)

	bw := bufio.NewWriter(w)
	title := opt.Title
	if title == "" {
		title = "tcplab: client ⇄ server"
	}
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace" font-size="%g">`+"\n",
		svgWidth, height, svgWidth, height, svgFont)
	fmt.Fprintf(bw, "<title>%s</title>\n<defs>\n", esc(title))
	for _, c := range svgColors {
		fmt.Fprintf(bw, `<marker id="ah-%s" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,1 L10,5 L0,9 z" fill="%s"/></marker>`+"\n", c.id, c.color)
	}
	bw.WriteString("</defs>\n")
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(bw, `<text x="%d" y="26" font-size="16" font-weight="bold" fill="#263238">%s</text>`+"\n", 12, esc(fit(title, svgTitleChars)))

	// Lanes and their hosts.
	for _, lane := range []struct {
		x    int
		name string
	}{{svgLaneL, "client"}, {svgLaneR, "server"}} {
		label := lane.name
		if a := m.addr[lane.name]; a != "" {
			label += " " + a
		}
		wd := float64(utf8.RuneCountInString(label))*svgCharW + 20
		fmt.Fprintf(bw, `<line x1="%d" y1="64" x2="%d" y2="%.0f" stroke="#b0bec5" stroke-width="2"/>`+"\n", lane.x, lane.x, height-12)
		fmt.Fprintf(bw, `<rect x="%.1f" y="42" width="%.1f" height="24" rx="4" fill="#263238"/>`+"\n", float64(lane.x)-wd/2, wd)
		fmt.Fprintf(bw, `<text x="%d" y="58" text-anchor="middle" fill="#ffffff" font-weight="bold">%s</text>`+"\n", lane.x, esc(label))
	}
	if !opt.NoTime {
		fmt.Fprintf(bw, `<text x="8" y="58" font-size="%g" fill="#78909c">time (s)</text>`+"\n", svgSmall)
	}

	for i, s := range m.steps {
		y := ys[i]
		if !opt.NoTime && s.kind != stepArrive && s.kind != stepBuffer && !s.summary {
			fmt.Fprintf(bw, `<text x="8" y="%.1f" font-size="%g" fill="#90a4ae">%.6f</text>`+"\n", y+4, svgSmall, s.ev.T.Seconds())
		}
		switch s.kind {
		case stepSeg:
			svgSegment(bw, s, svgSegGeom(s, y, ys))
		case stepRun:
			svgRun(bw, s, y)
		case stepCall:
			svgBox(bw, s.side, y, s.text, "#fafafa", "#b0bec5", "normal")
		case stepState:
			svgBox(bw, s.side, y, s.text, "#e3f2fd", "#90caf9", "bold")
		case stepBuffer:
			text := fmt.Sprintf("snd %s · rcv %s", humanBytes(s.ev.SndQueued), humanBytes(s.ev.RcvQueued))
			x, anchor := svgLaneL-10, "end"
			if s.side == right {
				x, anchor = svgLaneR+10, "start"
			}
			fmt.Fprintf(bw, `<text x="%d" y="%.1f" font-size="%g" text-anchor="%s" fill="#78909c">%s</text>`+"\n", x, y+4, svgSmall, anchor, esc(text))
		case stepNote:
			for _, t := range svgNoteGeom(y, s.text) {
				t.write(bw)
			}
		}
	}
	bw.WriteString("</svg>\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("render: write svg: %w", err)
	}
	return nil
}

// laneX returns the x of the lane of s, and of the other lane.
func laneX(s side) (from, to float64) {
	if s == left {
		return svgLaneL, svgLaneR
	}
	return svgLaneR, svgLaneL
}

// svgSegment draws one segment as laid out by svgSegGeom: a slanted arrow
// to its arrival (or a short one ending in a cross when it was lost), its
// label and its reason.
func svgSegment(w *bufio.Writer, s step, a svgArrow) {
	kind := svgKind(s.flags)
	color := svgColor(kind)
	dir := "→"
	if s.side == right {
		dir = "←"
	}
	tip := fmt.Sprintf("%s %s %s [%s] seq %d ack %d win %d len %d", s.ev.Host, dir, peer(s.ev.Host), s.ev.Flags, s.ev.Seq, s.ev.Ack, s.ev.Win, s.ev.Len)
	if s.lost {
		tip += " (never arrived)"
	}
	if s.reason != "" {
		tip += "\nreason: " + s.reason
	}
	fmt.Fprintf(w, "<g>\n<title>%s</title>\n", esc(tip))
	marker := ` marker-end="url(#ah-` + kind + `)"`
	if s.lost {
		marker = ""
	}
	fmt.Fprintf(w, `<line class="seg" data-flags="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>`+"\n",
		esc(s.flags), a.x1, a.y1, a.x2, a.y2, color, a.stroke, marker)
	if s.lost {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="16" font-weight="bold" fill="#d32f2f">✕</text>`+"\n", a.x2, a.y2+5)
	}
	a.label.write(w)
	for _, t := range a.reason {
		t.write(w)
	}
	w.WriteString("</g>\n")
}

// textAngle is the rotation, in degrees, that lays text along the line
// from (x1,y1) to (x2,y2), kept upright.
func textAngle(x1, y1, x2, y2 float64) float64 {
	a := math.Atan2(y2-y1, x2-x1) * 180 / math.Pi
	if a > 90 {
		a -= 180
	} else if a < -90 {
		a += 180
	}
	return a
}

// svgRun draws a collapsed bulk run as one thick arrow with its summary.
func svgRun(w *bufio.Writer, s step, y float64) {
	color := svgColor("run")
	x1, x2 := laneX(s.side)
	y2 := y + 30
	fmt.Fprintf(w, "<g>\n<title>%s</title>\n", esc(s.text))
	fmt.Fprintf(w, `<path class="seg" data-flags="%s" data-count="%d" d="M%.1f,%.1f L%.1f,%.1f" fill="none" stroke="%s" stroke-width="4" marker-end="url(#ah-run)"/>`+"\n",
		esc(s.flags), s.run.segs, x1, y, x2, y2, color)
	mx, my := (x1+x2)/2, (y+y2)/2
	fmt.Fprintf(w, `<g transform="rotate(%.2f %.1f %.1f)">`+"\n", textAngle(x1, y, x2, y2), mx, my)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="bold" fill="%s" paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round">%s</text>`+"\n",
		mx, my-7, color, esc(fit(s.text, svgMidChars)))
	if d := runDetail(s.run); d != "" {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="%g" font-style="italic" fill="%s" paint-order="stroke" stroke="#ffffff" stroke-width="3" stroke-linejoin="round">%s</text>`+"\n",
			mx, my+15, svgSmall, color, esc(fit(d, svgRunChars)))
	}
	w.WriteString("</g>\n</g>\n")
}

// svgBox draws a call or state as a text box beside the lane of s, its
// text wrapped to the room there.
func svgBox(w *bufio.Writer, s side, y float64, text, fill, stroke, weight string) {
	x, top, wd, ht, lines := svgBoxGeom(s, y, text, weight)
	fmt.Fprintf(w, "<g>\n<title>%s</title>\n", esc(text))
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" rx="3" fill="%s" stroke="%s"/>`+"\n", x, top, wd, ht, fill, stroke)
	for _, t := range lines {
		t.write(w)
	}
	w.WriteString("</g>\n")
}

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
