package render

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/tcplab/tcplab/stack/trace"
)

// LadderOptions tune the terminal ladder. The zero value draws 100 columns
// without colour, with times, relative sequence numbers and bulk runs of
// more than DefaultCollapseAfter data segments collapsed.
type LadderOptions struct {
	// Color adds ANSI colours (see ColorWanted).
	Color bool
	// NoTime leaves out the time column (for golden files of real-time runs).
	NoTime bool
	// CollapseAfter is how many data segments in a row (one direction, one
	// connection) are drawn one by one; a longer run becomes one summary
	// arrow. 0 means DefaultCollapseAfter; negative never collapses.
	CollapseAfter int
	// Absolute prints absolute sequence numbers instead of relative ones.
	Absolute bool
	// Ports keeps ephemeral ports in call results (accept() = "ip:port");
	// by default they are left out, since they change from run to run.
	Ports bool
	// Width is the width of the diagram in columns; 0 means 100. Widths
	// under 60 are taken as 60.
	Width int
}

// ColorWanted tells whether output to f should be coloured: not when the
// NO_COLOR environment variable is set to anything but "" (no-color.org),
// not when TERM is "dumb", and only when f is a terminal. It costs one
// ioctl.
func ColorWanted(f *os.File) bool {
	if f == nil || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return IsTerminal(f)
}

// ANSI SGR styles of the ladder.
const (
	styleNone   = ""
	styleDim    = "2"
	styleBold   = "1"
	styleReason = "2;3"
	styleSyn    = "32"
	styleFin    = "34"
	styleRst    = "1;31"
	styleData   = "1"
	styleAck    = "2"
	styleRun    = "1;35"
	styleCall   = "1"
	styleState  = "36"
	styleNote   = "33"
	styleLost   = "1;31"
)

// segStyle colours an arrow by what the segment does.
func segStyle(flags string) string {
	switch {
	case strings.Contains(flags, "R"):
		return styleRst
	case strings.Contains(flags, "F"):
		return styleFin
	case strings.Contains(flags, "S"):
		return styleSyn
	case strings.Contains(flags, "P"):
		return styleData
	}
	return styleAck
}

// span is a piece of a row with one style.
type span struct {
	text, style string
}

// row is one line of the ladder: a time, the buffer levels of each host
// in the margins, and what is drawn between the two lanes.
type row struct {
	time   string
	margin [2]string
	mid    []span
	// attach tells whether buffer levels may be written in this row's
	// margins.
	attach bool
}

// geometry is the layout of a ladder.
type geometry struct {
	timeW, marginW, gap int
}

// Ladder writes events as a sequence diagram: the client's lane on the
// left, the server's on the right, one arrow per segment sent, and calls,
// state changes and buffer levels on the lane of their host, in trace
// order. It reads the whole trace first (to match sends with arrivals and
// collapse bulk runs), so it costs memory proportional to the trace; its
// output is at most a few lines per event and never wider than
// LadderOptions.Width.
func Ladder(w io.Writer, events []trace.Event, opt LadderOptions) error {
	width := opt.Width
	if width == 0 {
		width = 100
	}
	if width < 60 {
		width = 60
	}
	m := buildModel(events, modelOptions{collapseAfter: opt.CollapseAfter, absolute: opt.Absolute, ports: opt.Ports})
	g := geometry{marginW: 0}
	if !opt.NoTime {
		g.timeW = 10
	}
	if m.buffers {
		g.marginW = 9
	}
	g.gap = width - g.timeW - 2*g.marginW - 4

	var rows []row
	add := func(r row) { rows = append(rows, r) }
	for _, s := range m.steps {
		t := ""
		if !opt.NoTime {
			t = fmt.Sprintf("%.6f", s.ev.T.Seconds())
		}
		switch s.kind {
		case stepSeg:
			add(row{time: t, mid: arrow(g.gap, s.side, s.text, segStyle(s.flags), "─", s.lost), attach: true})
			if s.reason != "" {
				for _, mid := range laneBlock(g.gap, s.side, indent(wrap(s.reason, g.gap-6)), styleReason) {
					add(row{mid: mid, attach: true})
				}
			}
		case stepRun:
			add(row{time: t, mid: arrow(g.gap, s.side, s.text, styleRun, "═", false), attach: true})
			if d := runDetail(s.run); d != "" {
				lt := ""
				if !opt.NoTime {
					lt = fmt.Sprintf("%.6f", s.last.T.Seconds())
				}
				for _, mid := range laneBlock(g.gap, s.side, indent(wrap(d, g.gap-6)), styleReason) {
					add(row{time: lt, mid: mid, attach: true})
					lt = ""
				}
			}
		case stepCall:
			if s.summary {
				t = ""
			}
			for _, mid := range laneBlock(g.gap, s.side, wrap(s.text, g.gap-2), styleCall) {
				add(row{time: t, mid: mid, attach: true})
				t = ""
			}
		case stepState:
			add(row{time: t, mid: laneText(g.gap, s.side, fit(s.text, g.gap-2), styleState), attach: true})
		case stepNote:
			add(row{time: t, mid: centerText(g.gap, fit("# "+s.text, g.gap-2), styleNote)})
		case stepBuffer:
			text := compactBytes(s.ev.SndQueued) + "/" + compactBytes(s.ev.RcvQueued)
			if n := len(rows); n > 0 && rows[n-1].attach && rows[n-1].margin[s.side] == "" {
				rows[n-1].margin[s.side] = text
			} else {
				r := row{time: t, mid: blank(g.gap), attach: true}
				r.margin[s.side] = text
				add(r)
			}
		}
	}

	bw := bufio.NewWriter(w)
	header(bw, g, m, opt.Color)
	for _, r := range rows {
		writeRow(bw, g, r, opt.Color)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("render: write ladder: %w", err)
	}
	return nil
}

// header writes the line naming the lanes (and margins).
func header(w *bufio.Writer, g geometry, m model, color bool) {
	var b strings.Builder
	if g.timeW > 0 {
		b.WriteString(padLeft("time", g.timeW-1) + " ")
	}
	if g.marginW > 0 {
		b.WriteString(padLeft("snd/rcv", g.marginW) + " ")
	}
	l, r := "client", "server"
	if a := m.addr["client"]; a != "" && len(a)+8 < g.gap/2 {
		l += " " + a
	}
	if a := m.addr["server"]; a != "" && len(a)+8 < g.gap/2 {
		r = a + " " + r
	}
	// "client" starts on the left lane; "server" ends on the right one.
	inner := g.gap + 2
	b.WriteString(l + strings.Repeat(" ", max(1, inner-utf8.RuneCountInString(l)-utf8.RuneCountInString(r))) + r)
	if g.marginW > 0 {
		b.WriteString(" snd/rcv")
	}
	line := strings.TrimRight(b.String(), " ")
	if color {
		line = sgr(styleBold, line)
	}
	w.WriteString(line + "\n")
}

// writeRow writes one row, lanes included.
func writeRow(w *bufio.Writer, g geometry, r row, color bool) {
	style := func(st, s string) string {
		if color && st != "" && strings.TrimSpace(s) != "" {
			return sgr(st, s)
		}
		return s
	}
	var b strings.Builder
	if g.timeW > 0 {
		b.WriteString(style(styleDim, padLeft(r.time, g.timeW-1)) + " ")
	}
	if g.marginW > 0 {
		b.WriteString(style(styleDim, padLeft(fit(r.margin[left], g.marginW), g.marginW)) + " ")
	}
	b.WriteString(style(styleDim, "│"))
	for _, sp := range r.mid {
		b.WriteString(style(sp.style, sp.text))
	}
	b.WriteString(style(styleDim, "│"))
	if g.marginW > 0 && r.margin[right] != "" {
		b.WriteString(" " + style(styleDim, fit(r.margin[right], g.marginW)))
	}
	w.WriteString(strings.TrimRight(b.String(), " ") + "\n")
}

// sgr wraps s in an ANSI style.
func sgr(style, s string) string {
	return "\x1b[" + style + "m" + s + "\x1b[0m"
}

// arrow draws a segment (or run) from the lane of from to the other lane,
// labelled near its sender, exactly gap columns wide.
func arrow(gap int, from side, label, style, line string, lost bool) []span {
	label = fit(label, gap-7)
	n := utf8.RuneCountInString(label)
	fill := gap - n - 5 // "── " + label + " " + fill + "▶"
	head := "▶"
	if from == right {
		head = "◀"
	}
	tail := ""
	if lost {
		// Stop the arrow two thirds of the way across, with a cross.
		short := max(2, fill-gap/3)
		tail = strings.Repeat(" ", fill-short)
		fill = short
		head = "✕"
	}
	body := strings.Repeat(line, fill)
	lead := strings.Repeat(line, 2) + " "
	if from == left {
		sp := []span{{lead, style}, {label, style}, {" " + body, style}, {head, headStyle(style, lost)}}
		if tail != "" {
			sp = append(sp, span{tail, styleNone})
		}
		return sp
	}
	sp := []span{}
	if tail != "" {
		sp = append(sp, span{tail, styleNone})
	}
	return append(sp, span{head, headStyle(style, lost)}, span{body + " ", style}, span{label, style}, span{" " + strings.Repeat(line, 2), style})
}

func headStyle(style string, lost bool) string {
	if lost {
		return styleLost
	}
	return style
}

// laneText writes text against the lane of s: left-aligned after the left
// lane, right-aligned before the right one.
func laneText(gap int, s side, text, style string) []span {
	text = fit(text, gap-2)
	pad := strings.Repeat(" ", gap-2-utf8.RuneCountInString(text))
	if s == left {
		return []span{{" " + text, style}, {pad + " ", styleNone}}
	}
	return []span{{" " + pad, styleNone}, {text + " ", style}}
}

// laneBlock writes lines against the lane of s, as a block whose lines
// start in the same column.
func laneBlock(gap int, s side, lines []string, style string) [][]span {
	w := 0
	for i, l := range lines {
		lines[i] = fit(l, gap-2)
		w = max(w, utf8.RuneCountInString(lines[i]))
	}
	out := make([][]span, len(lines))
	for i, l := range lines {
		if s == right {
			l += strings.Repeat(" ", w-utf8.RuneCountInString(l))
		}
		out[i] = laneText(gap, s, l, style)
	}
	return out
}

// indent marks the lines of a note under an arrow: "↳ " before the first,
// spaces before the others.
func indent(lines []string) []string {
	for i := range lines {
		if i == 0 {
			lines[i] = "  ↳ " + lines[i]
		} else {
			lines[i] = "    " + lines[i]
		}
	}
	return lines
}

// centerText writes text in the middle between the lanes.
func centerText(gap int, text, style string) []span {
	n := utf8.RuneCountInString(text)
	l := (gap - n) / 2
	return []span{{strings.Repeat(" ", l), styleNone}, {text, style}, {strings.Repeat(" ", gap-n-l), styleNone}}
}

func blank(gap int) []span {
	return []span{{strings.Repeat(" ", gap), styleNone}}
}

func padLeft(s string, n int) string {
	if k := n - utf8.RuneCountInString(s); k > 0 {
		return strings.Repeat(" ", k) + s
	}
	return s
}
