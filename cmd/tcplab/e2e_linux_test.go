package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/tun"
)

// needTUN skips when this process truly cannot build a TUN lab.
func needTUN(t *testing.T) {
	t.Helper()
	if err := tun.Check(); err != nil {
		t.Skipf("skipping: a TUN lab cannot be created here: %v", err)
	}
}

// event is one JSON line of `tcplab run --format json`.
type event struct {
	Host, Kind, Conn, Dir, Flags, Reason string
	Call, Err, Data, From, To            string
	Ret, Len                             int
}

// runJSON runs the CLI in-process and returns its events and exit code.
func runJSON(t *testing.T, args ...string) ([]event, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), append(args, "--format", "json"), cli.Env{NewTUN: newTUN, Stdout: &out, Stderr: &errb})
	var evs []event
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs, errb.String(), code
}

// flagsSent returns the flags host sent, in order.
func flagsSent(evs []event, host string) []string {
	var f []string
	for _, e := range evs {
		if e.Kind == "segment" && e.Host == host && e.Dir == "out" {
			f = append(f, e.Flags)
		}
	}
	return f
}

func calls(evs []event, host, call string) []event {
	var r []event
	for _, e := range evs {
		if e.Kind == "call" && e.Host == host && e.Call == call {
			r = append(r, e)
		}
	}
	return r
}

func lastState(evs []event, host string) string {
	s := ""
	for _, e := range evs {
		if e.Kind == "state" && e.Host == host && e.Conn == "c1" {
			s = e.To
		}
	}
	return s
}

// assertNothingLeft checks the host namespace has no lab devices or named
// namespaces.
func assertNothingLeft(t *testing.T) {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "tcl-") {
			t.Errorf("device %s left in the host namespace", i.Name)
		}
	}
	if ents, _ := os.ReadDir("/run/netns"); len(ents) > 0 {
		t.Errorf("named network namespaces left: %v", ents)
	}
}

// TestIntegrationArticleOverTUN reproduces the article's two experiments
// over real TUN devices and checks every claim of the story.
func TestIntegrationArticleOverTUN(t *testing.T) {
	needTUN(t)
	var wg sync.WaitGroup
	results := map[string][]event{}
	var mu sync.Mutex
	for _, name := range []string{"close", "shutdown"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs, stderr, code := runJSON(t, "run", name)
			if code != 0 {
				t.Errorf("tcplab run %s = exit %d, stderr:\n%s", name, code, stderr)
			}
			if !strings.Contains(stderr, "nsenter --net=/proc/") {
				t.Errorf("run %s did not print how to watch the wire with tcpdump:\n%s", name, stderr)
			}
			mu.Lock()
			results[name] = evs
			mu.Unlock()
		}()
	}
	wg.Wait()

	c := results["close"]
	if got, want := strings.Join(flagsSent(c, "client"), " "), "S . P. F. R."; got != want {
		t.Errorf("close: client sent %q, want %q", got, want)
	}
	if got, want := strings.Join(flagsSent(c, "server"), " "), "S. . . P."; got != want {
		t.Errorf("close: server sent %q, want %q", got, want)
	}
	for _, e := range c {
		if e.Kind == "segment" && e.Dir == "out" && strings.Contains(e.Flags, "R") {
			if e.Host != "client" || !strings.Contains(e.Reason, "after close()") {
				t.Errorf("close: RST from %s with reason %q, want client, data arrived after close()", e.Host, e.Reason)
			}
		}
	}
	if r := calls(c, "server", "read"); len(r) != 2 || r[0].Data != "aaa" || r[1].Err != "EOF" {
		t.Errorf("close: server reads = %+v, want \"aaa\" then EOF", r)
	}
	if s := lastState(c, "client"); s != "CLOSED" {
		t.Errorf("close: client ends in %s, want CLOSED (no TIME-WAIT after RST)", s)
	}

	s := results["shutdown"]
	if got, want := strings.Join(flagsSent(s, "client"), " "), "S . P. F. . ."; got != want {
		t.Errorf("shutdown: client sent %q, want %q", got, want)
	}
	if got, want := strings.Join(flagsSent(s, "server"), " "), "S. . . P. F."; got != want {
		t.Errorf("shutdown: server sent %q, want %q", got, want)
	}
	if r := calls(s, "client", "read"); len(r) != 2 || r[0].Data != "Hi, aaa" || r[1].Err != "EOF" {
		t.Errorf("shutdown: client reads = %+v, want \"Hi, aaa\" then EOF", r)
	}
	if st := lastState(s, "client"); st != "TIME-WAIT" {
		t.Errorf("shutdown: client ends in %s, want TIME-WAIT", st)
	}
	if st := lastState(s, "server"); st != "CLOSED" {
		t.Errorf("shutdown: server ends in %s, want CLOSED", st)
	}
	assertNothingLeft(t)
}

// outline is what two wires must agree on: per host, the flags and reasons
// of what it sent, and its call results.
func outline(evs []event, host string) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Host != host {
			continue
		}
		switch {
		case e.Kind == "segment" && e.Dir == "out" && e.Flags != ".":
			fmt.Fprintf(&b, "%s %q\n", e.Flags, e.Reason)
		case e.Kind == "call" && e.Call == "accept":
			fmt.Fprintf(&b, "accept=%d %s\n", e.Ret, e.Err) // the peer's address differs by wire
		case e.Kind == "call":
			fmt.Fprintf(&b, "%s=%d %s %q\n", e.Call, e.Ret, e.Err, e.Data)
		}
	}
	return b.String()
}

// TestIntegrationCatalogueOverTUN runs the whole catalogue over TUN, and
// checks that the TUN and the memory wire tell the same story: the same
// non-ACK segments with the same reasons, and the same call results.
func TestIntegrationCatalogueOverTUN(t *testing.T) {
	needTUN(t)
	for _, name := range scenario.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tunEv, stderr, code := runJSON(t, "run", name, "--wire", "tun")
			if code != 0 {
				t.Fatalf("over TUN: exit %d\n%s", code, stderr)
			}
			memEv, stderr, code := runJSON(t, "run", name, "--wire", "memory")
			if code != 0 {
				t.Fatalf("over memory: exit %d\n%s", code, stderr)
			}
			for _, h := range []string{"client", "server"} {
				if a, b := outline(memEv, h), outline(tunEv, h); a != b {
					t.Errorf("%s: the wires disagree (memory / tun):\n%s\n---\n%s", h, a, b)
				}
			}
		})
	}
	t.Cleanup(func() { assertNothingLeft(t) })
}

// TestIntegrationNothingLeftBehind kills a running `tcplab run close` in
// three ways (SIGKILL, Ctrl-C, a panic) and checks that its lab namespace
// and devices are gone.
func TestIntegrationNothingLeftBehind(t *testing.T) {
	needTUN(t)
	bin := filepath.Join(t.TempDir(), "tcplab")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		env  string
		sig  os.Signal
		code int
	}{
		{"SIGKILL", "", syscall.SIGKILL, -1},
		{"Ctrl-C", "", syscall.SIGINT, 1},
		{"panic", "TCPLAB_TEST_PANIC=after-setup", nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, "run", "close")
			cmd.Env = append(os.Environ(), tc.env)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout = nil
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait for the lab, and learn its namespace's identity.
			re := regexp.MustCompile(`--net=(/proc/\d+/fd/\d+)`)
			var nsID string
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					nsID, _ = os.Readlink(m[1])
					break
				}
			}
			if tc.sig != nil {
				if nsID == "" {
					t.Fatalf("never saw the lab namespace line")
				}
				time.Sleep(200 * time.Millisecond) // mid-run: the server is "working"
				cmd.Process.Signal(tc.sig)
			}
			go func() {
				for sc.Scan() {
				}
			}()
			err = cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if tc.code >= 0 && code != tc.code {
				t.Errorf("exit code = %d (%v), want %d", code, err, tc.code)
			}
			if tc.sig == nil {
				return // the panic came before the namespace line; checked below
			}
			if !strings.HasPrefix(nsID, "net:[") {
				t.Fatalf("namespace id = %q", nsID)
			}
			// Nothing may refer to the lab's namespace any more.
			refs, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/ns/net")
			fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
			for _, p := range append(refs, fds...) {
				if l, _ := os.Readlink(p); l == nsID {
					t.Errorf("%s still refers to the lab namespace %s", p, nsID)
				}
			}
		})
	}
	assertNothingLeft(t)
}

// TestIntegrationPrivilegeAndDeviceErrors runs the binary without root and
// without /dev/net/tun, and checks that each says what is wrong and how to
// fix it.
func TestIntegrationPrivilegeAndDeviceErrors(t *testing.T) {
	needTUN(t)
	for _, tool := range []string{"setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s (util-linux) not installed", tool)
		}
	}
	bin := filepath.Join(t.TempDir(), "tcplab")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	for _, tc := range []struct {
		name string
		cmd  []string
		want string
	}{
		{"not root", []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "run", "close"}, "tun: needs root / CAP_NET_ADMIN"},
		{"no /dev/net/tun", []string{"unshare", "-m", "sh", "-c", "mount -t tmpfs none /dev/net && exec " + bin + " run close"}, "tun: /dev/net/tun is missing"},
	} {
		out, err := exec.Command(tc.cmd[0], tc.cmd[1:]...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: err %v, output %q; want exit 1 and %q", tc.name, err, out, tc.want)
		}
	}
}
