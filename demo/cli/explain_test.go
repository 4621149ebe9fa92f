package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `tcplab explain` on the pcapng a memory-wire run wrote (both hosts'
// copies of each packet, one interface per host): the copies count once
// and the close experiment's RST has its reason.
func TestExplainCommand(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "close.pcapng")
	if code, _, stderr := run(t, nil, "run", "close", "--wire", "memory", "--format", "json", "--pcap", p); code != 0 {
		t.Fatalf("run close: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := run(t, nil, "explain", p)
	if code != 0 {
		t.Fatalf("explain: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"reason: data arrived in FIN-WAIT-2 after close(): no socket owns the connection any more, nobody can read it [high]",
		"# teardown: half-close then reset (Zeek RSTO)",
		"9 second copies left out",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("explain output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = run(t, nil, "explain", p, "--format", "json", "--only", "resets")
	if code != 0 || strings.Count(stdout, `"type":"finding"`) != 1 || !strings.Contains(stdout, `"class":"data after close()"`) {
		t.Errorf("--format json --only resets: exit %d:\n%s", code, stdout)
	}
	code, stdout, _ = run(t, nil, "explain", "--help")
	if code != 0 || !strings.Contains(stdout, "tcplab explain trace.pcap --conn 3") {
		t.Errorf("explain --help: exit %d:\n%s", code, stdout)
	}

	junk := filepath.Join(dir, "notes.txt")
	os.WriteFile(junk, []byte("not a capture at all\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"explain", junk}, 1, "explain: " + junk + ": not a capture"},
		{[]string{"explain", filepath.Join(dir, "missing.pcap")}, 1, "no such file or directory"},
		{[]string{"explain", p, "--format", "xml"}, 2, `--format "xml": want text, json or ladder`},
		{[]string{"explain", p, "--conn", "a-b"}, 2, `--conn "a-b": want a connection number or ADDR:PORT-ADDR:PORT`},
		{[]string{"explain", p, "--only", "fins"}, 2, `--only "fins": want resets`},
		{[]string{"explain", p, "--conn", "7"}, 1, "no connection 7 (the capture has 1)"},
		{[]string{"explain"}, 2, "accepts 1 arg(s), received 0"},
	} {
		code, _, stderr := run(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("tcplab %s = exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

// `tcplab explain -` reads the capture from standard input.
func TestExplainStdin(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "close.pcapng")
	if code, _, stderr := run(t, nil, "run", "close", "--wire", "memory", "--format", "json", "--pcap", p); code != 0 {
		t.Fatalf("run close: exit %d: %s", code, stderr)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var o, e bytes.Buffer
	code := Main(context.Background(), []string{"explain", "-", "--summary"}, Env{Stdin: f, Stdout: &o, Stderr: &e})
	if code != 0 || !strings.Contains(o.String(), "# summary of standard input: 18 packets") || !strings.Contains(o.String(), "data after close()") {
		t.Errorf("explain -: exit %d, stdout:\n%s\nstderr:\n%s", code, o.String(), e.String())
	}
}
