package diff_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/diff"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/kernelpeer"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// runner runs a script on a fresh TUN lab, with the kernel on the given
// side, as 'tcplab diff' does.
func runner(ctx context.Context, s *scenario.Script, kernel string) (diff.Run, error) {
	w, err := tun.New(ctx, tun.Config{})
	if err != nil {
		return diff.Run{}, err
	}
	lab, err := stack.NewLab(w, stack.Config{TimeWait: s.TimeWait, FinWait2Timeout: s.FinWait2}, false)
	if err != nil {
		return diff.Run{}, err
	}
	defer lab.Close()
	sl := scenario.Lab{Client: lab.Client.Peer(), Server: lab.Server.Peer(), Trace: lab.Trace, Faults: lab}
	if kernel != "" {
		p, err := kernelpeer.New(w, kernel, lab.Trace)
		if err != nil {
			return diff.Run{}, err
		}
		defer p.Close()
		if kernel == "client" {
			sl.Client = p
		} else {
			sl.Server = p
		}
	}
	start := time.Now()
	res := scenario.Run(ctx, s, sl, scenario.Options{})
	return diff.Run{Kernel: kernel, Events: lab.Trace.Events(), Result: res, Elapsed: time.Since(start)}, nil
}

// TestGolden compares gVisor with the kernel on the article's scenarios
// (their 5 s sleeps cut to 1 s in testdata) and checks the reports against
// testdata/NAME.golden; -update rewrites them. The reports hold no times,
// ports, windows or kernel version, so they change only when behaviour
// does.
func TestGolden(t *testing.T) {
	if err := tun.Check(); err != nil {
		if errors.Is(err, tun.ErrNeedRoot) || errors.Is(err, tun.ErrNoTUN) {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("tun.Check: %v", err)
	}
	for _, name := range []string{"close", "shutdown", "shutdown-rd"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, err := os.Open(filepath.Join("testdata", name+".lab"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := scenario.Parse(name+".lab", f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r, err := diff.Compare(context.Background(), s, runner, diff.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: three runs in %.2fs", name, time.Since(start).Seconds())
			var b bytes.Buffer
			if err := r.Write(&b); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				var d bytes.Buffer
				for _, l := range diff.Lines(lines(want), lines(b.Bytes())) {
					if l.Op != ' ' {
						d.WriteString(string(l.Op) + " " + l.Text + "\n")
					}
				}
				t.Errorf("%s differs from %s (-want +got):\n%s", name, golden, d.String())
			}
		})
	}
}

func lines(b []byte) []string {
	var out []string
	for _, l := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		out = append(out, string(l))
	}
	return out
}
