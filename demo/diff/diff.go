// Package diff compares how gVisor's netstack and the Linux kernel tell the
// same scenario. It runs a script three times over the TUN wire — gVisor on
// both sides (the baseline), the kernel as client, the kernel as server —
// turns each trace into comparable lines and shows, for each kernel
// variant, where its lines differ from the baseline's.
//
// # Normal form
//
// A trace becomes three sections of lines, with everything that differs
// between two runs of the same behaviour left out (times, ports, addresses,
// windows, options, absolute sequence numbers, connection-internal event
// order between hosts):
//
//   - wire: every segment once, in the order the lab first saw it, as
//     "client > server [F.] seq 4 ack 1 len 0" with sequence numbers
//     relative to each direction's SYN, and for FINs and RSTs the kind of
//     reason in parentheses ("close()", "data after close()", ...);
//   - calls: every socket call with its result, "server c1 read(65536) = 0
//     EOF", addresses replaced by host names;
//   - states: the transitions of each connection, grouped by connection.
//
// Buffer levels are left out unless Options.Buffers is set. The reasons'
// full wording is not compared (gVisor's and the kernel's explanations
// differ in evidence, not in cause): Report.Write lists them apart.
//
// # Cost
//
// Three lab runs per scenario, in parallel unless Options.Serial; the
// normal form and the diff are linear and quadratic in the number of
// lines, which stays in the hundreds.
package diff

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack/trace"
)

// Run is one run of a script.
type Run struct {
	// Kernel is the side the Linux kernel played: "" (gVisor on both
	// sides), "client" or "server".
	Kernel string
	// Events is the run's trace.
	Events []trace.Event
	// Result holds the expectations that failed.
	Result *scenario.Result
	// Elapsed is how long the run took.
	Elapsed time.Duration
}

// RunFunc runs s with the kernel on side kernel ("" for none) and returns
// the run. It must ignore the script's own "config kernel" setting.
type RunFunc func(ctx context.Context, s *scenario.Script, kernel string) (Run, error)

// Kernels returns the kernel variants a diff compares with the baseline:
// "client" and "server".
func Kernels() []string { return []string{"client", "server"} }

// Options tune a comparison. The zero value compares wire, calls and states
// and runs the three variants in parallel.
type Options struct {
	// Buffers adds the buffer levels of each connection to the compared
	// lines.
	Buffers bool
	// Serial runs the variants one after the other instead of at once
	// (each run has its own lab namespace either way).
	Serial bool
}

// Line is one line of a difference: Op is ' ' (in both), '-' (only in the
// baseline) or '+' (only in the kernel variant).
type Line struct {
	Op   byte
	Text string
}

// Variant is one kernel variant compared with the baseline.
type Variant struct {
	Run     Run
	Lines   []string // the normal form
	Reasons []string // the full FIN/RST reasons, not compared
	Diff    []Line   // baseline vs this variant
	Same    bool     // no '-' or '+' line in Diff
}

// Report is the comparison of one script.
type Report struct {
	Script      *scenario.Script
	Base        Run
	BaseLines   []string
	BaseReasons []string
	Variants    []Variant // in the order of Kernels()
}

// Compare runs s as the baseline and with the kernel as client and as
// server, and compares each kernel variant with the baseline. Cost: three
// lab runs (see Options.Serial).
func Compare(ctx context.Context, s *scenario.Script, run RunFunc, opt Options) (*Report, error) {
	kernels := append([]string{""}, Kernels()...)
	runs := make([]Run, len(kernels))
	errs := make([]error, len(kernels))
	if opt.Serial {
		for i, k := range kernels {
			runs[i], errs[i] = run(ctx, s, k)
		}
	} else {
		var wg sync.WaitGroup
		for i, k := range kernels {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runs[i], errs[i] = run(ctx, s, k)
			}()
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("diff: %s: %s: %w", s.Name, variantName(kernels[i]), err)
		}
	}
	r := &Report{Script: s, Base: runs[0]}
	r.BaseLines, r.BaseReasons = Normalize(runs[0].Events, opt)
	for _, v := range runs[1:] {
		lines, reasons := Normalize(v.Events, opt)
		d := Lines(r.BaseLines, lines)
		r.Variants = append(r.Variants, Variant{Run: v, Lines: lines, Reasons: reasons, Diff: d, Same: same(d)})
	}
	return r, nil
}

func same(d []Line) bool {
	for _, l := range d {
		if l.Op != ' ' {
			return false
		}
	}
	return true
}

// variantName names a run for people.
func variantName(kernel string) string {
	if kernel == "" {
		return "gVisor on both sides"
	}
	return "Linux kernel as " + kernel
}

// Normalize turns a trace into its normal form (see the package
// documentation): the compared lines, with section headers "## wire",
// "## calls", "## states" (and "## buffers"), and apart from them the FIN
// and RST reasons in full, one line per segment. It costs one pass over
// the events.
func Normalize(events []trace.Event, opt Options) (lines, reasons []string) {
	wire, reasons := wireLines(events)
	lines = append(lines, "## wire")
	lines = append(lines, wire...)
	lines = append(lines, "## calls")
	lines = append(lines, callLines(events)...)
	lines = append(lines, "## states")
	lines = append(lines, grouped(events, trace.State, func(e trace.Event) string {
		return fmt.Sprintf("%s -> %s", e.From, e.To)
	})...)
	if opt.Buffers {
		lines = append(lines, "## buffers")
		lines = append(lines, grouped(events, trace.Buffer, func(e trace.Event) string {
			return fmt.Sprintf("snd %d rcv %d", e.SndQueued, e.RcvQueued)
		})...)
	}
	return lines, reasons
}

// peer names the other host.
func peer(host string) string {
	if host == "client" {
		return "server"
	}
	return "client"
}

// wireLines lists every segment once, at its first sighting (the sender's
// "out" or, when the kernel sent it, the receiver's "in"), and the reasons
// the senders gave for FINs and RSTs.
func wireLines(events []trace.Event) (lines, reasons []string) {
	type key struct {
		from, flags string
		seq, ack    uint32
		n           int
	}
	type wireLine struct{ text, from, flags, reason string }
	isn := map[string]uint32{} // by "src:port>dst:port": per connection and direction
	pending := map[key][]int{} // segments seen once: their indexes in ws
	var ws []wireLine
	for _, e := range events {
		if e.Kind != trace.Segment {
			continue
		}
		from := e.Host
		if e.Dir == "in" {
			from = peer(e.Host)
		}
		to := peer(from)
		k := key{from, e.Flags, e.Seq, e.Ack, e.Len}
		if idx := pending[k]; len(idx) > 0 {
			// The second sighting of a segment: the sender's view brings
			// the reason.
			pending[k] = idx[1:]
			if e.Dir == "out" && e.Reason != "" {
				ws[idx[0]].reason = e.Reason
			}
			continue
		}
		dir := e.Src + ">" + e.Dst
		if strings.Contains(e.Flags, "S") && !e.Refused() {
			isn[dir] = e.Seq
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s > %s [%s] seq %d", from, to, e.Flags, e.Seq-isn[dir])
		if strings.Contains(e.Flags, ".") {
			fmt.Fprintf(&b, " ack %d", e.Ack-isn[e.Dst+">"+e.Src])
		}
		fmt.Fprintf(&b, " len %d", e.Len)
		pending[k] = append(pending[k], len(ws))
		w := wireLine{text: b.String(), from: from, flags: e.Flags}
		if e.Dir == "out" {
			w.reason = e.Reason
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		if strings.ContainsAny(w.flags, "FR") {
			w.text += " (" + ReasonClass(w.reason) + ")"
			reasons = append(reasons, fmt.Sprintf("%s [%s] %s", w.from, w.flags, orUnknown(w.reason)))
		}
		lines = append(lines, w.text)
	}
	return lines, reasons
}

func orUnknown(r string) string {
	if r == "" {
		return "(no reason recorded)"
	}
	return r
}

// ReasonClass reduces a FIN or RST reason, gVisor's or the kernel's, to the
// cause it names, so that the two can be compared: "close()", "SHUT_WR",
// "SHUT_RDWR", "retransmitted FIN", "simultaneous close", "SO_LINGER 0",
// "unread data", "listener closed", "data after close()", "data after
// SHUT_RD", "already reset", "connection gone", "no connection", "SYN",
// "timeout", "keepalive timeout", or "other". It costs a few substring
// searches.
func ReasonClass(reason string) string {
	for _, c := range []struct{ sub, class string }{
		{"simultaneous close", "simultaneous close"},
		{"retransmitted FIN", "retransmitted FIN"},
		{"SO_LINGER 0", "SO_LINGER 0"},
		{"unread bytes", "unread data"},
		{"listener closed", "listener closed"},
		{"after close()", "data after close()"},
		{"after shutdown(SHUT_RD)", "data after SHUT_RD"},
		{"already reset", "already reset"},
		{"no longer exists", "connection gone"},
		{"segment for no connection", "no connection"},
		{"SYN arrived", "SYN"},
		{"keepalive timeout", "keepalive timeout"},
		{"timed out", "timeout"},
		{"ran out", "timeout"},
		{"shutdown(SHUT_WR)", "SHUT_WR"},
		{"shutdown(SHUT_RDWR)", "SHUT_RDWR"},
		{"close()", "close()"},
	} {
		if strings.Contains(reason, c.sub) {
			return c.class
		}
	}
	if reason == "" {
		return "no reason"
	}
	return "other"
}

// callLines lists the calls of both hosts in trace order (the runner makes
// them one at a time).
func callLines(events []trace.Event) []string {
	addrs := map[string]string{} // address → host name, from the segments
	for _, e := range events {
		if e.Kind == trace.Segment {
			src, dst := e.Host, peer(e.Host)
			if e.Dir == "in" {
				src, dst = dst, src
			}
			addrs[hostOf(e.Src)] = src
			addrs[hostOf(e.Dst)] = dst
		}
	}
	var lines []string
	for _, e := range events {
		if e.Kind != trace.Call {
			continue
		}
		arg := e.Arg
		if e.Call == "connect" || e.Call == "bind" {
			h, port, ok := strings.Cut(arg, ":")
			switch {
			case addrs[h] != "" && ok:
				arg = addrs[h] + ":" + port
			case ok && e.Call == "bind":
				arg = e.Host + ":" + port // its own address
			case ok:
				arg = peer(e.Host) + ":" + port
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %s(%s) =", e.Host, orDash(e.Conn), e.Call, arg)
		switch {
		case e.Err != "" && e.Err != "EOF":
			b.WriteString(" " + e.Err)
		default:
			fmt.Fprintf(&b, " %d", e.Ret)
			if e.Err != "" {
				b.WriteString(" " + e.Err)
			}
		}
		if e.Data != "" && e.Call != "accept" {
			fmt.Fprintf(&b, " %q", e.Data)
		}
		lines = append(lines, b.String())
	}
	return lines
}

func hostOf(addrPort string) string {
	h, _, _ := strings.Cut(addrPort, ":")
	return h
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// grouped lists the events of one kind per host and connection, in the
// order each connection first appears, transitions in order.
func grouped(events []trace.Event, kind trace.Kind, text func(trace.Event) string) []string {
	var order []string
	by := map[string][]string{}
	for _, e := range events {
		if e.Kind != kind {
			continue
		}
		k := e.Host + " " + orDash(e.Conn)
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], k+" "+text(e))
	}
	// Hosts apart, each host's connections in order of appearance: the
	// order between the two hosts' first events is a race.
	sort.SliceStable(order, func(i, j int) bool {
		return strings.Fields(order[i])[0] < strings.Fields(order[j])[0]
	})
	var lines []string
	for _, k := range order {
		lines = append(lines, by[k]...)
	}
	return lines
}

// Lines returns the line difference between a and b, shortest edit script
// first by longest common subsequence: ' ' lines are in both, '-' only in
// a, '+' only in b. Cost: O(len(a)·len(b)).
func Lines(a, b []string) []Line {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []Line
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			out = append(out, Line{' ', a[i]})
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, Line{'-', a[i]})
			i++
		default:
			out = append(out, Line{'+', b[j]})
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, Line{'-', a[i]})
	}
	for ; j < m; j++ {
		out = append(out, Line{'+', b[j]})
	}
	return out
}

// First returns the variant's first difference in one line, "wire: -X | +Y"
// (X only in the baseline, Y only in the variant),
// or "" when it is the same as the baseline.
func (v *Variant) First() string {
	section := ""
	var minus, plus string
	for i, l := range v.Diff {
		if l.Op == ' ' && strings.HasPrefix(l.Text, "## ") {
			section = strings.TrimPrefix(l.Text, "## ")
		}
		if l.Op == ' ' {
			continue
		}
		if l.Op == '-' {
			minus = l.Text
			if i+1 < len(v.Diff) && v.Diff[i+1].Op == '+' {
				plus = v.Diff[i+1].Text
			}
		} else {
			plus = l.Text
		}
		break
	}
	if minus == "" && plus == "" {
		return ""
	}
	s := section + ":"
	if minus != "" {
		s += " -" + minus
	}
	if plus != "" {
		if minus != "" {
			s += " |"
		}
		s += " +" + plus
	}
	return s
}

// Write writes the report for people: for each kernel variant, the
// baseline's lines with the variant's differences marked '-' and '+', the
// FIN/RST reasons of both, the expectations that failed, and a verdict.
func (r *Report) Write(w io.Writer) error {
	ew := &errWriter{w: w}
	for _, v := range r.Variants {
		ew.printf("# %s: %s vs %s\n", r.Script.Name, variantName(""), variantName(v.Run.Kernel))
		for _, l := range v.Diff {
			if strings.HasPrefix(l.Text, "## ") && l.Op == ' ' {
				ew.printf("%s\n", l.Text)
				continue
			}
			ew.printf("%c %s\n", l.Op, l.Text)
		}
		ew.printf("## reasons (not compared)\n")
		for _, x := range r.BaseReasons {
			ew.printf("  baseline  %s\n", labelHost(x, ""))
		}
		for _, x := range v.Reasons {
			ew.printf("  variant   %s\n", labelHost(x, v.Run.Kernel))
		}
		for _, run := range []Run{r.Base, v.Run} {
			if run.Result == nil {
				continue
			}
			for _, f := range run.Result.Failures {
				ew.printf("## %s: expectation failed: %s: %s\n", variantName(run.Kernel), f.Step, f.Msg)
			}
		}
		verdict := "same"
		if !v.Same {
			verdict = "differs"
		}
		ew.printf("# %s: Linux as %s: %s\n\n", r.Script.Name, v.Run.Kernel, verdict)
	}
	return ew.err
}

// labelHost tags the host a reason line starts with by the implementation
// that played it: "client(Linux) [R] ...".
func labelHost(line, kernel string) string {
	host, rest, _ := strings.Cut(line, " ")
	impl := "gVisor"
	if host == kernel {
		impl = "Linux"
	}
	return host + "(" + impl + ") " + rest
}

// WriteTable writes one row per report: scenario | kernel client | kernel
// server | first difference.
func WriteTable(w io.Writer, reports []*Report) error {
	ew := &errWriter{w: w}
	width := len("scenario")
	for _, r := range reports {
		width = max(width, len(r.Script.Name))
	}
	ew.printf("%-*s | %-13s | %-13s | %s\n", width, "scenario", "kernel client", "kernel server", "first difference")
	for _, r := range reports {
		cells := []string{r.Script.Name}
		first := ""
		for _, v := range r.Variants {
			verdict := "same"
			if !v.Same {
				verdict = "differs"
				if first == "" {
					first = v.Run.Kernel + " " + v.First()
				}
			}
			cells = append(cells, verdict)
		}
		for len(cells) < 3 {
			cells = append(cells, "-")
		}
		ew.printf("%-*s | %-13s | %-13s | %s\n", width, cells[0], cells[1], cells[2], first)
	}
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
