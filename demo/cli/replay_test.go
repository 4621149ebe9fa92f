package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `tcplab replay` on the close experiment's capture: it writes a scenario
// that parses and runs, and says the gVisor run reproduces the teardown;
// -o writes the file; bad command lines are usage errors.
func TestReplayCommand(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "close.pcapng")
	if code, _, stderr := run(t, nil, "run", "close", "--wire", "memory", "--format", "json", "--pcap", p); code != 0 {
		t.Fatalf("run close: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := run(t, nil, "replay", p, "--conn", "1", "--no-kernel")
	if code != 0 {
		t.Fatalf("replay: exit %d: %s\n%s", code, stderr, stdout)
	}
	for _, want := range []string{
		"client close               # #11 FIN: close() [medium]",
		"server sleep 5s",
		"# gVisor on both sides (memory wire): reproduces: client FIN, then client RST",
		"skipped: --no-kernel",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("replay output lacks %q:\n%s", want, stdout)
		}
	}
	lab := filepath.Join(dir, "c.lab")
	code, stdout, stderr = run(t, nil, "replay", p, "--conn", "198.18.0.2:9527-198.18.0.1:35375", "-o", lab, "--write-only")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "wrote the replay of connection 1 to "+lab) {
		t.Fatalf("replay -o --write-only: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	b, err := os.ReadFile(lab)
	if err != nil || !strings.HasPrefix(string(b), "# replay-conn1: connection 1 of close.pcapng, replayed.") {
		t.Fatalf("the .lab written: %v\n%s", err, b)
	}
	// The file written runs as any scenario, its expectations holding.
	if code, out, stderr := run(t, nil, "run", lab, "--wire", "memory"); code != 0 {
		t.Errorf("run %s: exit %d: %s\n%s", lab, code, stderr, out)
	}
	// Without --conn, the capture's only connection; a capture of two
	// asks which.
	if code, out, stderr := run(t, nil, "replay", p, "--write-only"); code != 0 || !strings.HasPrefix(out, "# replay-conn1: ") {
		t.Errorf("replay without --conn: exit %d: %s\n%s", code, stderr, out)
	}
	p2 := filepath.Join(dir, "relay.pcapng")
	if code, _, stderr := run(t, nil, "run", "half-close-relay", "--wire", "memory", "--format", "json", "--pcap", p2); code != 0 {
		t.Fatalf("run half-close-relay: exit %d: %s", code, stderr)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay", p2}, 2, "has 2 connections: choose one with --conn"},
		{[]string{"replay", p, "--conn", "x"}, 2, `--conn "x": want a connection number`},
		{[]string{"replay", p, "--conn", "4"}, 1, "no connection 4 (the capture has 1)"},
		{[]string{"replay", p, "--conn", "1", "--wire", "veth"}, 2, `--wire "veth": want memory or tun`},
	} {
		code, _, stderr := run(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("tcplab %s = exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}
