package scenario_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/demo/scenario"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// runVirtual runs a built-in scenario on the memory wire in virtual time and
// returns its text timeline.
func runVirtual(t *testing.T, name string) (*scenario.Result, string) {
	res, text, _ := runVirtualLadder(t, name)
	return res, text
}

// runVirtualLadder is runVirtual that also draws the terminal ladder.
func runVirtualLadder(t *testing.T, name string) (*scenario.Result, string, string) {
	t.Helper()
	s, err := scenario.Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// -race slows the stacks down: give them a longer quiet window.
	res, events, err := scenario.Simulate(ctx, s, scenario.SimConfig{QuietWindow: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var b, l bytes.Buffer
	render.NewText(&b, render.TextOptions{}).WriteAll(events)
	if err := render.Ladder(&l, events, render.LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	return res, b.String(), l.String()
}

// TestCatalogueVirtual runs every built-in scenario on the memory wire in
// virtual time: every expectation must hold, and the trace must match its
// golden file byte for byte (go test -update rewrites them).
func TestCatalogueVirtual(t *testing.T) {
	for _, name := range scenario.Names() {
		t.Run(name, func(t *testing.T) {
			res, text, ladder := runVirtualLadder(t, name)
			for _, f := range res.Failures {
				t.Errorf("%v", f)
			}
			if res.Checked == 0 {
				t.Errorf("%s checked no expectation", name)
			}
			for _, g := range []struct{ file, got string }{
				{name + ".golden", text},
				{name + ".ladder.golden", ladder},
			} {
				golden := filepath.Join("testdata", g.file)
				if *update {
					if err := os.WriteFile(golden, []byte(g.got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./demo/scenario -update to create it)", err)
				}
				if g.got != string(want) {
					t.Errorf("output differs from %s (-want +got):\n%s", golden, lineDiff(string(want), g.got))
				}
			}
		})
	}
}

// TestVirtualRunsRepeat runs the article's experiments twice: same seed,
// same bytes.
func TestVirtualRunsRepeat(t *testing.T) {
	for _, name := range []string{"close", "shutdown"} {
		_, a := runVirtual(t, name)
		_, b := runVirtual(t, name)
		if a != b {
			t.Errorf("%s: two runs differ (-first +second):\n%s", name, lineDiff(a, b))
		}
		if !strings.Contains(a, "  5.001") {
			t.Errorf("%s: the 5 s of work did not pass in virtual time:\n%s", name, a)
		}
	}
}

// lineDiff is a small line-by-line difference, enough to read a failure.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("-" + wl + "\n+" + gl + "\n")
		}
	}
	return b.String()
}
