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
	svgWhyChars = 62 // (svgMidW - 80) / svgSmallW: clear of the lanes
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

// SVG writes events as a self-contained SVG sequence diagram: two
// vertical lanes, time flowing down, one slanted arrow per segment from
// its sender's lane at the send to its receiver's lane at the arrival,
// calls and states as boxes beside their host's lane. Rows follow the
// order of events, not their times (which are printed in the left
// margin), so that bursts stay legible. Each arrow is an element with
// class="seg" and a data-flags attribute. Like Ladder it reads the whole
// trace first; the output is a few elements per event.
func SVG(w io.Writer, events []trace.Event, opt SVGOptions) error {
	m := buildModel(events, modelOptions{collapseAfter: opt.CollapseAfter, absolute: opt.Absolute, ports: opt.Ports})

	// First pass: the vertical position of every step.
	ys := make([]float64, len(m.steps))
	cursor := float64(svgTop)
	for i, s := range m.steps {
		ys[i] = cursor
		switch s.kind {
		case stepSeg:
			cursor += 30 + 20*float64(len(wrap(s.reason, svgWhyChars)))
		case stepArrive:
			if s.of >= 0 {
				cursor += 6
			}
		case stepRun:
			cursor += 50
			if runDetail(s.run) != "" {
				cursor += 14
			}
		case stepCall, stepState, stepNote:
			cursor += 24
		case stepBuffer:
			cursor += 15
		}
	}
	height := cursor + 24

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
	fmt.Fprintf(bw, `<text x="%d" y="26" font-size="16" font-weight="bold" fill="#263238">%s</text>`+"\n", 12, esc(title))

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
			svgSegment(bw, s, y, ys)
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
			fmt.Fprintf(bw, `<text x="%d" y="%.1f" text-anchor="middle" font-style="italic" fill="#6d4c41">%s</text>`+"\n",
				(svgLaneL+svgLaneR)/2, y+4, esc(fit("# "+s.text, svgMidChars)))
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

// svgSegment draws one segment: a slanted arrow to its arrival (or a short
// one ending in a cross when it was lost), its label and its reason.
func svgSegment(w *bufio.Writer, s step, y float64, ys []float64) {
	kind := svgKind(s.flags)
	color := svgColor(kind)
	x1, x2 := laneX(s.side)
	y2 := y + 24
	if s.arrive >= 0 && ys[s.arrive] > y {
		y2 = ys[s.arrive]
	}
	if s.lost {
		x2 = x1 + (x2-x1)*0.7
	}
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
	width := "1.5"
	if kind == "rst" || kind == "fin" {
		width = "2"
	}
	fmt.Fprintf(w, "<g>\n<title>%s</title>\n", esc(tip))
	marker := ` marker-end="url(#ah-` + kind + `)"`
	if s.lost {
		marker = ""
	}
	fmt.Fprintf(w, `<line class="seg" data-flags="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%s"%s/>`+"\n",
		esc(s.flags), x1, y, x2, y2, color, width, marker)
	if s.lost {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="16" font-weight="bold" fill="#d32f2f">✕</text>`+"\n", x2, y2+5)
	}
	mx, my := (x1+x2)/2, (y+y2)/2
	fmt.Fprintf(w, `<g transform="rotate(%.2f %.1f %.1f)">`+"\n", textAngle(x1, y, x2, y2), mx, my)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round">%s</text>`+"\n",
		mx, my-5, color, esc(fit(s.text, svgMidChars)))
	for i, line := range wrap(s.reason, svgWhyChars) {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="%g" font-style="italic" fill="%s" paint-order="stroke" stroke="#ffffff" stroke-width="3" stroke-linejoin="round">%s</text>`+"\n",
			mx, my+13+float64(i)*12, svgSmall, color, esc(line))
	}
	w.WriteString("</g>\n</g>\n")
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
			mx, my+15, svgSmall, color, esc(fit(d, svgWhyChars)))
	}
	w.WriteString("</g>\n</g>\n")
}

// svgBox draws a call or state as a text box beside the lane of s.
func svgBox(w *bufio.Writer, s side, y float64, text, fill, stroke, weight string) {
	shown := fit(text, svgBoxChars)
	wd := float64(utf8.RuneCountInString(shown))*svgCharW + 12
	x := float64(svgLaneL) - 10 - wd
	if s == right {
		x = svgLaneR + 10
	}
	fmt.Fprintf(w, "<g>\n<title>%s</title>\n", esc(text))
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="18" rx="3" fill="%s" stroke="%s"/>`+"\n", x, y-9, wd, fill, stroke)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-weight="%s" fill="#263238">%s</text>`+"\n", x+6, y+4, weight, esc(shown))
	w.WriteString("</g>\n")
}

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
