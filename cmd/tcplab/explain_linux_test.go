package main

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/diff"
	"github.com/tcplab/tcplab/demo/explain"
	"github.com/tcplab/tcplab/stack/trace"
)

// explainFloorPercent is the share of the catalogue's FINs and RSTs (all
// three arrangements) whose cause `tcplab explain` must read from the
// capture alone the way the lab observed it. Measured on this machine with
// 26 scenarios: 109 of 121 (90%) and 116 of 128 (91%), the same 12
// disagreements in both runs; the total moves with the FINs that
// fin-retransmit-random-loss's random loss makes retransmit, so the floor
// stays one point below the 90% target. The table is in the README
// ("Explain a capture").
const explainFloorPercent = 89

// runCaptured runs the built-in scenario name over a fresh TUN lab with
// the kernel on side kernel ("" for none) and a capture of the wire, as
// `tcplab run --capture` does (see runWitnessed), and returns the trace
// and the capture file's bytes.
func runCaptured(t *testing.T, name, kernel string) ([]trace.Event, []byte) {
	t.Helper()
	w := runWitnessed(t, name, arrangement{name: "explain", kernel: kernel})
	return w.events, w.file
}

// explained is one FIN or RST: what explain read from the capture and
// what the lab observed.
type explained struct {
	run   string
	f     *explain.Finding
	truth string // the trace's reason
}

// matchFindings pairs each finding with the trace's segment event for the
// same packet (sender, flags, seq, ack, length). Where several events
// share those (a FIN and its retransmission), they pair from the last
// backwards: a copy fault injection dropped before the wire is an early one.
func matchFindings(run string, events []trace.Event, fs []*explain.Finding) (out []explained, unmatched []string) {
	type key struct {
		src, dst, flags string
		seq, ack        uint32
		len             int
	}
	keyOf := func(src, dst, flags string, seq, ack uint32, n int) key {
		if !strings.Contains(flags, ".") {
			ack = 0
		}
		return key{src, dst, flags, seq, ack, n}
	}
	byKey := map[key][]trace.Event{}
	for _, e := range events {
		if e.Kind == trace.Segment && e.Dir == "out" && strings.ContainsAny(e.Flags, "FR") {
			k := keyOf(e.Src, e.Dst, e.Flags, e.Seq, e.Ack, e.Len)
			byKey[k] = append(byKey[k], e)
		}
	}
	// Segments the scenario injected (an "inject: … absolute seq N" note)
	// were sent by no stack: they have no reason to compare.
	injected := map[uint32]bool{}
	for _, e := range events {
		if e.Kind == trace.Note && strings.HasPrefix(e.Text, "inject: ") {
			var seq, ack uint32
			if i := strings.Index(e.Text, "absolute seq "); i >= 0 {
				fmt.Sscanf(e.Text[i:], "absolute seq %d ack %d", &seq, &ack)
				injected[seq] = true
			}
		}
	}
	seen := map[key]int{}
	for i := len(fs) - 1; i >= 0; i-- {
		f := fs[i]
		k := keyOf(f.Src, f.Dst, f.Flags, f.Seq, f.Ack, f.Len)
		es := byKey[k]
		j := len(es) - 1 - seen[k]
		seen[k]++
		if j < 0 && injected[f.Seq] {
			continue // crafted by the lab, not sent by a stack
		}
		if j < 0 {
			unmatched = append(unmatched, fmt.Sprintf("%s: packet #%d %s > %s [%s] seq %d: no segment of the trace", run, f.Packet, f.Src, f.Dst, f.Flags, f.Seq))
			continue
		}
		out = append(out, explained{run: run, f: f, truth: es[j].Reason})
	}
	return out, unmatched
}

// explainRun hands explain only the capture of one run and pairs each of
// its findings with the FIN or RST the lab observed (TestIntegrationWitness
// runs it on every catalogue scenario, so the catalogue runs over TUN once
// for both checks). A confident wrong answer fails the test; the other
// disagreements are logged and counted in the accuracy table.
func explainRun(t *testing.T, label string, events []trace.Event, file []byte) []explained {
	t.Helper()
	var fs []*explain.Finding
	_, err := explain.Analyze(label+".pcapng", bytes.NewReader(file), false, func(c *explain.Conn) {
		fs = append(fs, c.Findings...)
	})
	if err != nil {
		t.Fatalf("explain.Analyze: %v", err)
	}
	got, unmatched := matchFindings(label, events, fs)
	for _, u := range unmatched {
		t.Errorf("%s", u)
	}
	for _, x := range got {
		want := diff.ReasonClass(x.truth)
		if x.f.Class != want {
			t.Logf("#%d %s [%s]: explain %q (%s, %s: %s), the lab %q (%s)", x.f.Packet, x.f.From, x.f.Flags, x.f.Class, x.f.Confidence, x.f.Reason, x.f.Why, want, x.truth)
			if x.f.Confidence == explain.High {
				t.Errorf("confident wrong answer: #%d %s [%s]: explain says %q with high confidence (%s), the lab observed %q (%s)",
					x.f.Packet, x.f.From, x.f.Flags, x.f.Class, x.f.Why, want, x.truth)
			}
		}
	}
	return got
}

// checkAccuracy logs the accuracy table of explain over all runs and fails
// when agreement is below explainFloorPercent.
func checkAccuracy(t *testing.T, all []explained) {
	table, agreed, total := accuracyTable(all)
	t.Logf("explain vs the lab, by the lab's cause class:\n%s", table)
	if total == 0 {
		t.Fatalf("no FIN or RST explained")
	}
	if agreed*100 < explainFloorPercent*total {
		t.Errorf("explain agrees on %d of %d FINs and RSTs (%d%%), below the floor of %d%%", agreed, total, agreed*100/total, explainFloorPercent)
	}
}

// accuracyTable counts agreed / disagreed (by confidence) / unknown per
// class of the lab's reason, as a Markdown table.
func accuracyTable(xs []explained) (string, int, int) {
	type row struct{ agreed, high, medium, low, unknown int }
	rows := map[string]*row{}
	var total row
	for _, x := range xs {
		class := diff.ReasonClass(x.truth)
		r := rows[class]
		if r == nil {
			r = &row{}
			rows[class] = r
		}
		for _, r := range []*row{r, &total} {
			switch {
			case x.f.Class == class:
				r.agreed++
			case x.f.Class == explain.ClassUnknown:
				r.unknown++
			case x.f.Confidence == explain.High:
				r.high++
			case x.f.Confidence == explain.Medium:
				r.medium++
			default:
				r.low++
			}
		}
	}
	var classes []string
	for c := range rows {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var b strings.Builder
	b.WriteString("| the lab's cause | FINs and RSTs | agreed | disagreed (high / medium / low) | unknown |\n|---|---|---|---|---|\n")
	line := func(name string, r *row) {
		n := r.agreed + r.high + r.medium + r.low + r.unknown
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d / %d / %d) | %d |\n", name, n, r.agreed, r.high+r.medium+r.low, r.high, r.medium, r.low, r.unknown)
	}
	for _, c := range classes {
		line(c, rows[c])
	}
	line("**all**", &total)
	n := total.agreed + total.high + total.medium + total.low + total.unknown
	fmt.Fprintf(&b, "agreed: %d of %d (%.0f%%)\n", total.agreed, n, 100*float64(total.agreed)/float64(max(n, 1)))
	return b.String(), total.agreed, n
}
