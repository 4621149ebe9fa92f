package scenario_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/scenario"
)

// TestVirtualTimeNeverStalls runs the scenarios in testdata/vtime, each with
// a blocking call that only a TCP timer can complete (a retransmission, a
// persist probe), on the memory wire in virtual time: the clock must move
// to the timer while the call waits, and every expectation must hold.
func TestVirtualTimeNeverStalls(t *testing.T) {
	files, err := filepath.Glob("testdata/vtime/*.lab")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in testdata/vtime: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".lab"), func(t *testing.T) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s, err := scenario.Parse(file, f)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, _, err := scenario.Simulate(ctx, s, scenario.SimConfig{QuietWindow: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range res.Failures {
				t.Errorf("%v", f)
			}
			if res.Checked == 0 {
				t.Errorf("checked no expectation")
			}
		})
	}
}
