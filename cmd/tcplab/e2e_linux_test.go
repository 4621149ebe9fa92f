package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

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

// assertNothingLeft checks the host namespace has no lab devices or named
// namespaces.
func assertNothingLeft(t *testing.T) {
	t.Helper()
	left, err := tun.Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		t.Errorf("left behind: %s", l)
	}
}

// TestIntegrationArticleOverTUN reproduces the article's two experiments
// over real TUN devices and checks every claim of the story.
func TestIntegrationArticleOverTUN(t *testing.T) {
	needTUN(t)
	checkArticle(t, "tun")
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

// collapseRepeats writes runs of identical lines of an outline once.
func collapseRepeats(o string) string {
	var b strings.Builder
	prev := ""
	for _, l := range strings.SplitAfter(o, "\n") {
		if l != prev {
			b.WriteString(l)
		}
		prev = l
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
			s, _ := scenario.Builtin(name)
			for _, h := range []string{"client", "server"} {
				a, b := outline(memEv, h), outline(tunEv, h)
				if s.UsesNet() {
					// Random losses: netem's draws are not the memory
					// wire's, so a retransmission repeats a different
					// number of times; the story is the same.
					a, b = collapseRepeats(a), collapseRepeats(b)
				}
				if a != b {
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
		{"Ctrl-C", "", syscall.SIGINT, 130},
		{"panic", "TCPLAB_TEST_PANIC=after-setup", nil, 70},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// With the kernel as client, the eBPF observer is loaded
			// too: it must go with the process.
			cmd := exec.Command(bin, "run", "close", "--kernel", "client")
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
			var progs []ebpf.ProgramID
			if tc.sig != nil {
				if nsID == "" {
					t.Fatalf("never saw the lab namespace line")
				}
				// Mid-run: the server is "working" for 5 s. Wait until the
				// observer's programs are loaded (slow on a loaded machine);
				// a run that never loads them fails below.
				for deadline := time.Now().Add(4 * time.Second); len(progs) == 0 && time.Now().Before(deadline); {
					time.Sleep(50 * time.Millisecond)
					progs = programsOf(t, cmd.Process.Pid)
				}
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
			// The eBPF observer's programs go with the process.
			if _, err := os.Stat("/sys/kernel/btf/vmlinux"); len(progs) == 0 && err == nil {
				t.Errorf("the run held no eBPF program: the kernel observer should have been loaded (root, BTF)")
			}
			t.Logf("the run held %d eBPF programs", len(progs))
			assertProgramsGone(t, progs, time.Now().Add(3*time.Second))
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

// assertProgramsGone fails for each eBPF program of progs still loaded at
// deadline (a dead run's programs go when its last descriptor closes).
func assertProgramsGone(t *testing.T, progs []ebpf.ProgramID, deadline time.Time) {
	t.Helper()
	for _, id := range progs {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break // gone
			}
			p.Close()
			if time.Now().After(deadline) {
				t.Errorf("eBPF program %d of the dead run is still loaded", id)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// programsOf returns the IDs of the eBPF programs process pid holds, as
// its file descriptors' fdinfo shows them (programs and the links that
// attach them).
func programsOf(t *testing.T, pid int) []ebpf.ProgramID {
	t.Helper()
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	seen := map[ebpf.ProgramID]bool{}
	var ids []ebpf.ProgramID
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && !seen[ebpf.ProgramID(n)] {
					seen[ebpf.ProgramID(n)] = true
					ids = append(ids, ebpf.ProgramID(n))
				}
			}
		}
	}
	return ids
}
