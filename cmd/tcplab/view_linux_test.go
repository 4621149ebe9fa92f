package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEView runs the README's `tcplab view` lines as shown: the trace
// is written, the page is served on 127.0.0.1 at the URL printed, its data
// holds the RST with its reason, and Ctrl-C (SIGINT) stops it with status 0.
// A --addr other than 127.0.0.1 is refused as a usage error.
func TestREADMEView(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the README's command lines")
	}
	bin := buildTcplab(t)
	var lines []string
	for _, b := range codeBlocks(repoFile(t, "README.md")) {
		if !strings.Contains(b, "bin/tcplab view") {
			continue
		}
		for _, l := range strings.Split(b, "\n") {
			if strings.HasPrefix(l, "bin/tcplab ") {
				l, _, _ = strings.Cut(l, " #")
				lines = append(lines, strings.TrimSpace(l))
			}
		}
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[len(lines)-1], "bin/tcplab view ") {
		t.Fatalf("the README's view block: %q; want a run line, then the view line", lines)
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bin"), 0o755)
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "tcplab")); err != nil {
		t.Fatal(err)
	}
	for _, l := range lines[:len(lines)-1] {
		cmd := exec.Command("sh", "-c", l)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", l, err, out)
		}
	}
	args := strings.Fields(lines[len(lines)-1])
	cmd := exec.Command(bin, args[1:]...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := regexp.MustCompile(`http://\S+`).FindString(sc.Text()); m != "" {
				urls <- m
			}
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-exited:
		t.Fatalf("%s exited before printing its URL: %v", lines[len(lines)-1], err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s printed no URL in 30 s", lines[len(lines)-1])
	}
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*/$`).MatchString(url) {
		t.Errorf("URL %q: want http://127.0.0.1:PORT/", url)
	}
	get := func(path string) []byte {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return b
	}
	if page := get(""); !strings.Contains(string(page), "view.js") {
		t.Errorf("GET /: not the page:\n%s", page)
	}
	var data struct {
		Items []struct {
			Flags, Reason string
		}
	}
	if err := json.Unmarshal(get("data.json"), &data); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range data.Items {
		found = found || (strings.Contains(it.Flags, "R") && strings.Contains(it.Reason, "FIN-WAIT-2"))
	}
	if !found {
		t.Error("/data.json has no RST with its reason")
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after Ctrl-C: %v, want exit status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still serving 10 s after Ctrl-C")
	}

	_, stderr, code := tcplab(t, dir, bin, "view", "--addr", "0.0.0.0:8080", "close.jsonl")
	if code != 2 || !strings.Contains(stderr, "127.0.0.1 only") {
		t.Errorf("view --addr 0.0.0.0:8080: exit %d, %q; want 2 and a message saying 127.0.0.1 only", code, stderr)
	}
}
