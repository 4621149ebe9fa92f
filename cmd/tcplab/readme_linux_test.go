package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestIntegrationREADMECommands runs every `bin/tcplab` command of the
// README's command blocks as shown (as root) and checks that it succeeds.
// chat is interactive (TestChatInATerminal drives it), and diff --all
// takes 30 s: TestREADMESamples holds its sample to the catalogue.
func TestIntegrationREADMECommands(t *testing.T) {
	needTUN(t)
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the README's command lines")
	}
	bin := buildTcplab(t)
	readme := repoFile(t, "README.md")
	var cmds []string
	for _, b := range codeBlocks(readme) {
		for _, l := range strings.Split(b, "\n") {
			if !strings.HasPrefix(l, "bin/tcplab ") {
				continue
			}
			l, _, _ = strings.Cut(l, " #")
			l = strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(l, "bin/tcplab chat"), l == "bin/tcplab diff --all":
				continue
			case strings.HasPrefix(l, "bin/tcplab run my.lab"), strings.HasPrefix(l, "bin/tcplab run clsoe"):
				continue // error samples: TestREADMESamples
			case strings.HasPrefix(l, "bin/tcplab view"):
				continue // serves until Ctrl-C: TestREADMEView
			}
			cmds = append(cmds, l)
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("found %d commands in the README", len(cmds))
	}
	dir := t.TempDir()
	binDir := filepath.Join(dir, "bin")
	os.Mkdir(binDir, 0o755)
	if err := os.Symlink(bin, filepath.Join(binDir, "tcplab")); err != nil {
		t.Fatal(err)
	}
	// The README builds examples/nohttpbody into bin/ first (a line that
	// is not a bin/tcplab command): so does the test.
	for _, c := range cmds {
		if strings.Contains(c, "bin/nohttpbody") {
			if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "nohttpbody"), "../../examples/nohttpbody").CombinedOutput(); err != nil {
				t.Fatalf("go build examples/nohttpbody: %v\n%s", err, out)
			}
			break
		}
	}
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(examples, filepath.Join(dir, "examples")); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		t.Run(c, func(t *testing.T) {
			t.Parallel() // most of the time goes to the scenarios' sleeps
			if strings.Contains(c, "socat") {
				needSocat(t)
			}
			cmd := exec.Command("sh", "-c", c)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "NO_COLOR=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", c, err, out)
			}
			if strings.Contains(c, "--kernel client") && !strings.Contains(string(out), "client 198.18.2.1 [Linux kernel]") {
				t.Errorf("%s: the header does not name the kernel client's address 198.18.2.1:\n%s", c, out)
			}
		})
	}
	t.Cleanup(func() { assertNothingLeft(t) })
}
