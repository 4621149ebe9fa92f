package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `tcplab explain --format ladder --svg FILE`: the terminal ladder on
// stdout, the SVG in the file, both with the inferred reasons.
func TestExplainLadderCommand(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "close.pcapng")
	if code, _, stderr := run(t, nil, "run", "close", "--wire", "memory", "--format", "json", "--pcap", p); code != 0 {
		t.Fatalf("run close: exit %d: %s", code, stderr)
	}
	svg := filepath.Join(dir, "close.svg")
	code, stdout, stderr := run(t, nil, "explain", p, "--format", "ladder", "--svg", svg)
	if code != 0 || !strings.Contains(stdout, "inferred [high]: data arrived in FIN-WAIT-2 after close()") {
		t.Fatalf("explain --format ladder: exit %d: %s\n%s", code, stderr, stdout)
	}
	b, err := os.ReadFile(svg)
	if err != nil || !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "data arrived in FIN-WAIT-2") {
		t.Errorf("--svg: %v\n%.400s", err, b)
	}
	if code, _, stderr := run(t, nil, "explain", p, "--summary", "--svg", svg); code != 2 || !strings.Contains(stderr, "--summary leaves them out") {
		t.Errorf("--summary --svg: exit %d: %s", code, stderr)
	}
}
