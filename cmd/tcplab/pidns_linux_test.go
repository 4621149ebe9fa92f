package main

import (
	"bufio"
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

	"github.com/tcplab/tcplab/tun/tuntest"
)

// nsRefs returns what still refers to the network namespace id
// ("net:[…]"): a task's namespace or an open descriptor.
func nsRefs(id string) []string {
	refs, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/ns/net")
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	var left []string
	for _, p := range append(refs, fds...) {
		if l, _ := os.Readlink(p); l == id {
			left = append(left, p)
		}
	}
	return left
}

// TestExecKilledTakesAll: tcplab exec with a program that starts a daemon
// (a new session, a double fork) or nests as go run does (a parent that
// ignores SIGTERM and waits for its child). SIGKILL (or Ctrl-C) of tcplab
// ends every process of the program within seconds, and leaves no lab
// namespace, no TUN device and no eBPF program of the run.
func TestExecKilledTakesAll(t *testing.T) {
	needTUN(t)
	bin := buildTcplab(t)
	for _, tc := range []struct {
		name    string
		sig     syscall.Signal
		markers []string
		argv    []string
	}{
		{"setsid/SIGKILL", syscall.SIGKILL, []string{"311.25", "312.25"},
			[]string{"sh", "-c", "setsid sleep 311.25 & exec sleep 312.25"}},
		{"setsid/Ctrl-C", syscall.SIGINT, []string{"311.5", "312.5"},
			[]string{"sh", "-c", "setsid sleep 311.5 & exec sleep 312.5"}},
		// As go run: a parent that ignores signals and waits for the
		// program it built, which double-forks a daemon.
		{"nested/SIGKILL", syscall.SIGKILL, []string{"313.25", "314.25"},
			[]string{"python3", "-c", `import signal, subprocess; signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGINT, signal.SIG_IGN); subprocess.run(["sh", "-c", "(setsid sh -c 'sleep 313.25 & exec sleep 313.25' &); exec sleep 314.25"])`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "trace.json")
			cmd := exec.Command(bin, append([]string{"exec", "--format", "json", "--out", out, "sink", "--"}, tc.argv...)...)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			defer func() {
				if !killed {
					cmd.Process.Kill()
					cmd.Wait()
				}
				for _, m := range tc.markers {
					for _, pid := range tuntest.PidsWithArg(m) {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}()
			pid := 0
			sc := bufio.NewScanner(stderr)
			re := regexp.MustCompile(`# program .* \(pid (\d+)\) runs in the lab namespace`)
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					pid, _ = strconv.Atoi(m[1])
					break
				}
			}
			if pid == 0 {
				t.Fatal("tcplab did not say the program's pid")
			}
			go func() {
				for sc.Scan() {
				}
			}()
			// The pid said is the program's in the host's namespace; it
			// has another in its own (its init is 1 there).
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); !regexp.MustCompile(`(?m)^NSpid:\s+` + strconv.Itoa(pid) + `\s+\d+$`).Match(b) {
				t.Errorf("pid %d is not a program in a PID namespace of its own:\n%s", pid, b)
			}
			nsID, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
			if !strings.HasPrefix(nsID, "net:[") {
				t.Fatalf("the program's namespace: %q", nsID)
			}
			// Wait until every process runs and the call tracer is loaded.
			var progs []ebpf.ProgramID
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				all := true
				for _, m := range tc.markers {
					all = all && len(tuntest.PidsWithArg(m)) > 0
				}
				progs = programsOf(t, cmd.Process.Pid)
				if all && len(progs) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the program's processes never all ran (or no eBPF program was loaded: %v)", progs)
				}
			}
			cmd.Process.Signal(tc.sig)
			err = cmd.Wait()
			killed = true
			want := -1
			if tc.sig == syscall.SIGINT {
				want = 130
			}
			if code := cmd.ProcessState.ExitCode(); code != want {
				t.Errorf("tcplab exit %d (%v), want %d", code, err, want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for _, m := range tc.markers {
				for len(tuntest.PidsWithArg(m)) > 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if left := tuntest.PidsWithArg(m); len(left) > 0 {
					t.Errorf("processes of the program (%s) outlived tcplab: %v", m, left)
				}
			}
			for len(nsRefs(nsID)) > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if left := nsRefs(nsID); len(left) > 0 {
				t.Errorf("the lab namespace %s is still held: %v", nsID, left)
			}
			assertProgramsGone(t, progs, deadline)
			if out, _ := exec.Command("ip", "-o", "link", "show", "type", "tun").Output(); strings.Contains(string(out), "tcl-") {
				t.Errorf("TUN devices left: %s", out)
			}
			assertNothingLeft(t)
		})
	}
}

// TestExecSignalStatus: a program killed by a signal is reported as such
// (its own status, through its init) and tcplab exits 128+signal.
func TestExecSignalStatus(t *testing.T) {
	needTUN(t)
	bin := buildTcplab(t)
	_, _, stderr, code := execJSON(t, bin, "sink", "--", "sh", "-c", "kill -TERM $$")
	if code != 128+15 || !strings.Contains(stderr, "# program sh was killed by signal 15 (terminated)") {
		t.Errorf("exit %d, want 143 and the signal said\n%s", code, stderr)
	}
	assertNothingLeft(t)
}

// TestExecCannotRun: a program that exists but cannot be run (not an
// executable format: its init reports the exec failure) gets 127 and a
// clear message, as one that does not exist.
func TestExecCannotRun(t *testing.T) {
	needTUN(t)
	bin := buildTcplab(t)
	bad := filepath.Join(t.TempDir(), "notaprogram")
	if err := os.WriteFile(bad, []byte{0, 1, 2, 3}, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, stderr, code := execJSON(t, bin, "sink", "--", bad)
	if want := `tcplab: exec: cannot run "` + bad + `": exec format error`; code != 127 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, want 127 and %q\n%s", code, want, stderr)
	}
	assertNothingLeft(t)
}
