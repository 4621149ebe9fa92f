package cli

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/scenario"
)

// TestCheckUnderLoss runs the whole catalogue under 5% random loss on the
// memory wire: every scenario passes but those that need exact segments,
// which are skipped with their reason and counted.
func TestCheckUnderLoss(t *testing.T) {
	var o, e bytes.Buffer
	code := Main(context.Background(), []string{"check", "--net", "loss 5%", "--seed", "1", "--wire", "memory"}, Env{Stdout: &o, Stderr: &e})
	if code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, o.String(), e.String())
	}
	exact := 0
	for _, n := range scenario.Names() {
		s, err := scenario.Builtin(n)
		if err != nil {
			t.Fatal(err)
		}
		if s.ExactSegments != "" {
			exact++
			if !strings.Contains(o.String(), "skip "+n+" ") || !strings.Contains(o.String(), s.ExactSegments) {
				t.Errorf("%s needs exact segments but was not skipped with its reason:\n%s", n, o.String())
			}
		} else if !regexp.MustCompile(`(?m)^ok +` + regexp.QuoteMeta(n) + ` `).MatchString(o.String()) {
			t.Errorf("%s did not pass:\n%s", n, o.String())
		}
	}
	if exact == 0 {
		t.Errorf("no scenario declares needs exact-segments")
	}
	want := regexp.MustCompile(`(?m)^(\d+) passed, 0 failed, (\d+) skipped`).FindStringSubmatch(o.String())
	if want == nil || want[2] != itoa(exact) || want[1] != itoa(len(scenario.Names())-exact) {
		t.Errorf("summary: want %d passed, %d skipped:\n%s", len(scenario.Names())-exact, exact, o.String())
	}
	// Without --net nothing is skipped.
	o.Reset()
	if code := Main(context.Background(), []string{"check", "--wire", "memory", "close", "fin-retransmit-random-loss"}, Env{Stdout: &o, Stderr: &e}); code != ExitOK || strings.Contains(o.String(), "skip") {
		t.Errorf("without --net: exit %d\n%s", code, o.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
