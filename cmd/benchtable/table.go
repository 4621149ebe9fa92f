package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// kernelWire is the wire label of the yardstick rows.
const kernelWire = "kernel-veth"

// row is one benchmark case, averaged over its runs (-count).
type row struct {
	name               string // without the -GOMAXPROCS suffix
	wire, mtu, trace   string // labels from the name; trace is "" for kernel
	calls              string // the calls= label of BenchmarkCallLatency
	runs               int
	iters              int64   // summed over runs
	nsPerOp, mbs, gbps float64 // summed over runs, see mean
	metrics            map[string]float64
}

// mean returns the average of a value summed over r's runs.
func (r *row) mean(sum float64) float64 { return sum / float64(r.runs) }

// mib returns how many MiB one run moved, from MB/s and ns/op (SetBytes);
// 0 when the benchmark set no bytes.
func (r *row) mib() float64 {
	bytesPerOp := r.mean(r.mbs) * r.mean(r.nsPerOp) / 1e3
	return bytesPerOp * float64(r.iters) / float64(r.runs) / (1 << 20)
}

// procsSuffix is the -GOMAXPROCS suffix go test appends to names.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// parse reads go test output from in, copying each line to echo, and
// returns the BenchmarkBulk-style rows (those whose name has a wire=
// label) in order of appearance, the lines that explain skips, and an
// error if the output reports a failure.
func parse(in io.Reader, echo io.Writer) (rows []*row, skips []string, err error) {
	byName := map[string]*row{}
	var failed []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lastSkip string
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(echo, line)
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "--- SKIP:"):
			lastSkip = strings.TrimSpace(strings.TrimPrefix(trimmed, "--- SKIP:"))
			continue
		case lastSkip != "" && strings.HasPrefix(line, "    "):
			// The reason logged under a SKIP line.
			skips = append(skips, lastSkip+": "+trimmed)
			lastSkip = ""
			continue
		case strings.HasPrefix(trimmed, "--- FAIL:"), trimmed == "FAIL",
			strings.HasPrefix(trimmed, "FAIL\t"), strings.HasPrefix(trimmed, "panic:"):
			failed = append(failed, trimmed)
		}
		lastSkip = ""
		r, ok := parseResult(line)
		if !ok || (r.wire == "" && r.calls == "") {
			continue
		}
		if old := byName[r.name]; old != nil {
			old.add(r)
			continue
		}
		byName[r.name] = r
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return rows, skips, fmt.Errorf("read input: %w", err)
	}
	if len(failed) > 0 {
		return rows, skips, fmt.Errorf("the benchmark failed: %s", strings.Join(failed, "; "))
	}
	return rows, skips, nil
}

// add folds another run of the same case into r.
func (r *row) add(o *row) {
	r.runs++
	r.iters += o.iters
	r.nsPerOp += o.nsPerOp
	r.mbs += o.mbs
	r.gbps += o.gbps
	for k, v := range o.metrics {
		r.metrics[k] += v
	}
}

// parseResult parses one result line, e.g.
//
//	BenchmarkBulk/wire=tun/mtu=1500/trace=off-2  1024  7260605 ns/op  144.42 MB/s  1.155 Gbit/s
func parseResult(line string) (*row, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return nil, false
	}
	iters, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return nil, false
	}
	r := &row{name: procsSuffix.ReplaceAllString(f[0], ""), runs: 1, iters: iters, metrics: map[string]float64{}}
	for _, part := range strings.Split(r.name, "/")[1:] {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "wire":
			r.wire = v
		case "mtu":
			r.mtu = v
		case "trace":
			r.trace = v
		case "calls":
			r.calls = v
		}
	}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil, false
		}
		switch unit := f[i+1]; unit {
		case "ns/op":
			r.nsPerOp = v
		case "MB/s":
			r.mbs = v
		case "Gbit/s":
			r.gbps = v
		default:
			r.metrics[unit] = v
		}
	}
	return r, true
}

// run parses in (echoing it to echo) and writes the table to out.
func run(in io.Reader, out, echo io.Writer) error {
	all, skips, err := parse(in, echo)
	rows, calls := splitCalls(all)
	if len(rows) > 0 {
		fmt.Fprintln(out)
		render(out, rows, skips)
	}
	if len(calls) > 0 {
		fmt.Fprintln(out)
		renderCalls(out, calls)
	}
	if err == nil && len(rows) == 0 {
		err = errors.New("no BenchmarkBulk results in the input")
		if len(skips) > 0 {
			err = fmt.Errorf("%w (skipped: %s)", err, strings.Join(skips, "; "))
		}
	}
	return err
}

// render writes rows as a Markdown table, grouped by MTU (the kernel first
// within each MTU), followed by footnotes.
func render(w io.Writer, rows []*row, skips []string) {
	rows = slices.Clone(rows)
	mtuNum := func(r *row) int { n, _ := strconv.Atoi(r.mtu); return n }
	slices.SortStableFunc(rows, func(a, b *row) int {
		if c := cmp.Compare(mtuNum(a), mtuNum(b)); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(b.wire == kernelWire), boolInt(a.wire == kernelWire))
	})
	kernel := map[string]float64{}
	for _, r := range rows {
		if r.wire == kernelWire {
			kernel[r.mtu] = r.mean(r.gbps)
		}
	}

	table := [][]string{{"wire", "MTU", "trace", "Gbit/s", "vs kernel", "ns/op", "MiB moved"}}
	var notes []string
	mibs := map[string]bool{}
	for _, r := range rows {
		trace, ratio := r.trace, "n/a"
		if r.wire == kernelWire {
			trace = "–"
		}
		if k := kernel[r.mtu]; k > 0 {
			ratio = fmt.Sprintf("%.3f", r.mean(r.gbps)/k)
		}
		moved := fmt.Sprintf("%.0f", r.mib())
		mibs[moved] = true
		table = append(table, []string{
			r.wire, r.mtu, trace,
			fmt.Sprintf("%.3f", r.mean(r.gbps)),
			ratio,
			fmt.Sprintf("%.0f", r.mean(r.nsPerOp)),
			moved,
		})
		if ev, ok := r.metrics["events/MiB"]; ok {
			note := fmt.Sprintf("%s, MTU %s, trace on: %.0f trace events per MiB moved", r.wire, r.mtu, r.mean(ev))
			if heap, ok := r.metrics["heap-MiB"]; ok {
				note += fmt.Sprintf(", heap %.0f MiB after %.0f MiB", r.mean(heap), r.mib())
			}
			notes = append(notes, note)
		}
	}
	writeTable(w, table)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Gbit/s: payload bits per second until the receiver has read the last byte (mean of the runs).")
	fmt.Fprintln(w, "vs kernel: Gbit/s divided by kernel-veth Gbit/s at the same MTU.")
	fmt.Fprintln(w, "ns/op: one op moves 1 MiB (one write of 1 MiB).")
	if len(mibs) > 1 {
		fmt.Fprintln(w, "Note: the cases moved different amounts of data (MiB moved): compare with care.")
	}
	for _, n := range notes {
		fmt.Fprintln(w, n+".")
	}
	for _, s := range skips {
		fmt.Fprintln(w, "Skipped:", s)
	}
}

// writeTable writes cells as a Markdown table with padded columns.
func writeTable(w io.Writer, cells [][]string) {
	width := make([]int, len(cells[0]))
	for _, line := range cells {
		for i, c := range line {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len([]rune(s))) }
	for i, line := range cells {
		var b strings.Builder
		b.WriteString("|")
		for j, c := range line {
			b.WriteString(" " + pad(c, width[j]) + " |")
		}
		fmt.Fprintln(w, b.String())
		if i == 0 {
			b.Reset()
			b.WriteString("|")
			for j := range line {
				b.WriteString(strings.Repeat("-", width[j]+2) + "|")
			}
			fmt.Fprintln(w, b.String())
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
