package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The README must be true to the letter. These tests hold it to what the
// code produces wherever that is deterministic (the memory wire runs in
// virtual time, seeded): the figures, the scenario sample, the error
// samples, the catalogue's names. readme_linux_test.go runs its commands.

// buildTcplab builds the command into a temporary directory.
func buildTcplab(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tcplab")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// repoFile reads a file of the repository.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tcplab runs bin with args in dir and returns its standard output, its
// standard error and its exit code.
func tcplab(t *testing.T, dir, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// codeBlocks returns the fenced code blocks of a Markdown text.
func codeBlocks(md string) []string {
	var blocks []string
	parts := strings.Split(md, "```")
	for i := 1; i < len(parts); i += 2 {
		b := parts[i]
		if nl := strings.IndexByte(b, '\n'); nl >= 0 {
			b = b[nl+1:] // drop the info string
		}
		blocks = append(blocks, b)
	}
	return blocks
}

// TestREADMEFiguresUpToDate redraws the figures in demo/figures with the
// commands of `make figures` (taken from the Makefile) and compares them
// with the committed files that the README shows.
func TestREADMEFiguresUpToDate(t *testing.T) {
	bin := buildTcplab(t)
	readme := repoFile(t, "README.md")
	mk := repoFile(t, "Makefile")
	recipe := regexp.MustCompile(`(?m)^\t\./\$\(BIN\) (run .*--svg (demo/figures/[a-z-]+\.svg).*?)(?: >/dev/null)?$`)
	found := recipe.FindAllStringSubmatch(mk, -1)
	if len(found) < 2 {
		t.Fatalf("the Makefile's figures recipe draws %d figures, want the README's 2", len(found))
	}
	root := filepath.Join("..", "..")
	for _, m := range found {
		fig := m[2]
		if !strings.Contains(readme, "]("+fig+")") {
			t.Errorf("README does not show %s", fig)
		}
		tmp := filepath.Join(t.TempDir(), filepath.Base(fig))
		args := strings.Fields(strings.Replace(m[1], fig, tmp, 1))
		if _, stderr, code := tcplab(t, root, bin, args...); code != 0 {
			t.Fatalf("tcplab %s: exit %d\n%s", m[1], code, stderr)
		}
		want, err := os.ReadFile(tmp)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, fig))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what `make figures` draws now: run make figures and commit it", fig)
		}
	}
}

// TestREADMESamples checks the README's deterministic samples against the
// code: the scenario shown is the built-in one, the errors shown are the
// errors printed, the diff --all table and the catalogue count name every
// scenario.
func TestREADMESamples(t *testing.T) {
	bin := buildTcplab(t)
	readme := repoFile(t, "README.md")
	dir := t.TempDir()
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }

	list, _, code := tcplab(t, dir, bin, "list")
	if code != 0 {
		t.Fatalf("tcplab list: exit %d", code)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
		names = append(names, strings.Fields(l)[0])
	}

	t.Run("scenario", func(t *testing.T) {
		shown, _, _ := tcplab(t, dir, bin, "show", "close")
		lines := map[string]bool{}
		for _, l := range strings.Split(shown, "\n") {
			lines[norm(l)] = true
			if i := strings.Index(l, "#"); i > 0 {
				lines[norm(l[:i])] = true
			}
		}
		var block string
		for _, b := range codeBlocks(readme) {
			if strings.HasPrefix(b, "# close: ") {
				block = b
			}
		}
		if block == "" {
			t.Fatal("README shows no close scenario")
		}
		for _, l := range strings.Split(block, "\n") {
			l, _, _ = strings.Cut(l, "<-") // the README's annotations
			stmt := l
			if i := strings.Index(l, "#"); i >= 0 {
				stmt = l[:i]
			}
			if norm(stmt) == "" {
				continue
			}
			if !lines[norm(stmt)] {
				t.Errorf("README's close scenario has %q; tcplab show close has no such line:\n%s", norm(stmt), shown)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		// The README elides the list of names with "...".
		_, stderr, code := tcplab(t, dir, bin, "run", "clsoe", "--wire", "memory")
		want := regexp.MustCompile(`(?m)^\$ bin/tcplab run clsoe --wire memory\n(.*)$`).FindStringSubmatch(readme)
		if want == nil {
			t.Fatal("README lacks the clsoe sample")
		}
		head, tail, _ := strings.Cut(want[1], "...")
		if got := strings.TrimSpace(stderr); code != 2 || !strings.HasPrefix(got, head) || !strings.HasSuffix(got, tail) {
			t.Errorf("run clsoe: exit %d, prints\n%s\nREADME shows\n%s", code, got, want[1])
		}

		lab := filepath.Join(dir, "my.lab")
		os.WriteFile(lab, []byte("server listen 9527\nclient conect server:9527\n"), 0o644)
		_, stderr, code = tcplab(t, dir, bin, "run", "my.lab")
		want = regexp.MustCompile(`(?m)^\$ bin/tcplab run my.lab\n(.*)$`).FindStringSubmatch(readme)
		if want == nil {
			t.Fatal("README lacks the my.lab sample")
		}
		if got := strings.TrimSpace(stderr); code != 2 || got != want[1] {
			t.Errorf("run my.lab: exit %d, prints\n%s\nREADME shows\n%s", code, got, want[1])
		}
	})

	t.Run("catalogue", func(t *testing.T) {
		var table []string
		for _, b := range codeBlocks(readme) {
			if strings.HasPrefix(b, "scenario ") && strings.Contains(b, "| kernel client |") {
				for _, l := range strings.Split(strings.TrimSpace(b), "\n")[1:] {
					table = append(table, strings.TrimSpace(strings.SplitN(l, "|", 2)[0]))
				}
			}
		}
		if strings.Join(table, " ") != strings.Join(names, " ") {
			t.Errorf("README's diff --all sample lists\n%v\ntcplab list has\n%v", table, names)
		}
		n := regexp.MustCompile(`whole catalogue \((\d+) scenarios\)`).FindStringSubmatch(readme)
		if n == nil || n[1] != strconv.Itoa(len(names)) {
			t.Errorf("README counts %v scenarios in the catalogue; tcplab list has %d", n, len(names))
		}
		for _, name := range names {
			if !strings.Contains(readme, "| "+name+" |") {
				t.Errorf("README's catalogue table lacks %s", name)
			}
		}
	})
}
