package main

import (
	"fmt"
	"io"
)

// splitCalls separates the rows of BenchmarkCallLatency (a calls= label)
// from BenchmarkBulk's.
func splitCalls(all []*row) (bulk, calls []*row) {
	for _, r := range all {
		if r.calls != "" {
			calls = append(calls, r)
		} else {
			bulk = append(bulk, r)
		}
	}
	return bulk, calls
}

// renderCalls writes the latency of a program's socket calls with the call
// tracer off and on as a Markdown table: ns per call, the extra ns per call
// over trace=off for the same calls, and for trace=on the calls traced and
// lost per call.
func renderCalls(w io.Writer, rows []*row) {
	off := map[string]float64{}
	for _, r := range rows {
		if r.trace == "off" {
			off[r.calls] = r.mean(r.metrics["ns/call"])
		}
	}
	table := [][]string{{"calls", "call trace", "ns/call", "extra ns/call", "traced/call", "lost/call"}}
	for _, r := range rows {
		ns := r.mean(r.metrics["ns/call"])
		extra, traced, lost := "–", "–", "–"
		if base, ok := off[r.calls]; ok && r.trace != "off" {
			extra = fmt.Sprintf("%+.0f", ns-base)
		}
		if v, ok := r.metrics["events/call"]; ok {
			traced = fmt.Sprintf("%.3f", r.mean(v))
		}
		if v, ok := r.metrics["lost/call"]; ok {
			lost = fmt.Sprintf("%.3f", r.mean(v))
		}
		table = append(table, []string{r.calls, r.trace, fmt.Sprintf("%.0f", ns), extra, traced, lost})
	}
	writeTable(w, table)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ns/call: one 1-byte write or read on loopback TCP in the lab namespace, by a thread traced as a program (mean of the runs).")
	fmt.Fprintln(w, "traced/call: calls delivered by the tracer per call made; lost/call: calls its ring buffer had no room for.")
}
