package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/diff"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// writeLab writes a scenario file and returns its path.
func writeLab(t *testing.T, name, src string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// What used to be accepted in silence is a usage error (exit 2) naming the
// file:line:col or the flag, and nothing runs.
func TestNonsenseIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	lab := writeLab(t, "ok.lab", "server listen 9527\n")
	for _, tc := range []struct {
		src  string // a scenario, or "" to run the ok one
		args []string
		want string
	}{
		{"", []string{"--step-timeout", "-1s"}, "--step-timeout -1s: want more than 0 and at most 24h"},
		{"", []string{"--step-timeout", "0s"}, "--step-timeout 0s: want more than 0"},
		{"# nothing but a comment\n", nil, ":1:1: no steps"},
		{"server read expect -1 bytes\n", nil, ":1:20: byte count -1 out of range: want 0-1099511627776, 1 TiB"},
		{"expect client sent SSSS\n", nil, `:1:20: bad TCP flags "SSSS": S appears more than once`},
		{"client set linger -5\n", nil, ":1:19: linger off or seconds -5 out of range: want 0-86400"},
		{"client set linger 99999999999\n", nil, ":1:19: linger off or seconds 99999999999 out of range"},
		{"server listen 1 as a\nserver listen 2 as a\n", nil, `:2:20: server already has a socket named "a" (line 1)`},
		{"sleep 3000000h\n", nil, `:1:7: expected how long to sleep (a duration such as 5s or 200ms, from 0 to 24h), found "3000000h"`},
		{"client write 999999999999999999\n", nil, ":1:14: write size 999999999999999999 out of range: want 0-1099511627776, 1 TiB"},
		{"server read 999999999999999999\n", nil, ":1:13: read size 999999999999999999 out of range: want 1-16777216, 16 MiB"},
		{"note \"x\"\n" + strings.Repeat("x", scenario.MaxLine+10) + "\n", nil, ":2:1: line longer than 1048576 bytes (1 MiB, the limit)"},
		{"", []string{"--pcap", lab}, "--pcap " + lab + " is the scenario file itself; it would be overwritten"},
		{"", []string{"--svg", dir}, "--svg " + dir + " is a directory"},
		{"", []string{"--svg", filepath.Join(dir, "no", "such.svg")}, "directory " + filepath.Join(dir, "no") + " does not exist"},
		{"", []string{"--svg", filepath.Join(dir, "same"), "--pcap", filepath.Join(dir, "same")}, "--svg and --pcap name the same file"},
	} {
		f := lab
		if tc.src != "" {
			f = writeLab(t, "bad.lab", tc.src)
		}
		args := append([]string{"run", f, "--wire", "memory"}, tc.args...)
		code, stdout, stderr := run(t, nil, args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("tcplab %s:\nexit %d, stdout %d bytes, stderr %.300q\nwant exit 2 and %q", strings.Join(args, " "), code, len(stdout), stderr, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "same")); err == nil {
		t.Errorf("a rejected run left an output file behind")
	}
	// Flags a command would ignore are refused.
	for _, args := range [][]string{
		{"check", "--wire", "memory", "--svg", filepath.Join(dir, "a.svg")},
		{"check", "--wire", "memory", "--pcap", filepath.Join(dir, "a.pcapng")},
		{"chat", "--wire", "memory", "--pcap", filepath.Join(dir, "a.pcapng")},
		{"diff", "close", "--step-timeout", "-1s"},
	} {
		code, _, stderr := run(t, nil, args...)
		if code != ExitUsage {
			t.Errorf("tcplab %s = exit %d (%q), want 2", strings.Join(args, " "), code, stderr)
		}
	}
}

// A scenario file must be a regular file (a FIFO would block, a device or
// directory is not a scenario); "-" reads standard input.
func TestScenarioFileKinds(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ path, want string }{
		{"/dev/null", "scenario file /dev/null is a device, not a regular file; give a .lab file, or - to read standard input"},
		{dir + "/", "is a directory, not a regular file"},
	} {
		code, _, stderr := run(t, nil, "run", tc.path, "--wire", "memory")
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("run %s = exit %d, %q; want 2 and %q", tc.path, code, stderr, tc.want)
		}
	}
	in, err := os.Open(writeLab(t, "in.lab", "server listen 9527\nclient connect server:9527\nexpect client state ESTABLISHED\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var o, e bytes.Buffer
	code := Main(context.Background(), []string{"run", "-", "--wire", "memory"}, Env{Stdin: in, Stdout: &o, Stderr: &e})
	if code != 0 || !strings.Contains(e.String(), "# stdin: all 1 expectations held") {
		t.Errorf("run - = exit %d, stderr %q", code, e.String())
	}
}

// errWriter fails every write, like a full disk.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A run whose output could not be written does not exit 0.
func TestStdoutWriteFailureFails(t *testing.T) {
	var e bytes.Buffer
	code := Main(context.Background(), []string{"run", "close", "--wire", "memory"}, Env{Stdout: errWriter{}, Stderr: &e})
	if code != ExitFailure || !strings.Contains(e.String(), "tcplab: write standard output: no space left on device") {
		t.Errorf("exit %d, stderr %q", code, e.String())
	}
	code = Main(context.Background(), []string{"list"}, Env{Stdout: errWriter{}, Stderr: &e})
	if code != ExitFailure {
		t.Errorf("list to a failing stdout: exit %d", code)
	}
}

// A panic is a bug: its own exit code (not 2, a usage error) and a message
// that says so; the lab is torn down on the way.
func TestPanicIsReportedAsABug(t *testing.T) {
	t.Setenv("TCPLAB_TEST_PANIC", "after-setup")
	code, _, stderr := run(t, nil, "run", "close", "--wire", "memory")
	if code != ExitBug || !strings.Contains(stderr, "tcplab: internal error: panic: tcplab: TCPLAB_TEST_PANIC=after-setup") ||
		!strings.Contains(stderr, "This is a bug in tcplab") {
		t.Errorf("exit %d, stderr %.400q", code, stderr)
	}
}

// Ctrl-C during a run: "interrupted at file:line", exit 130, and no
// expectation reported as failed.
func TestInterruptedRun(t *testing.T) {
	f := writeLab(t, "slow.lab", "server listen 9527\nclient connect server:9527\nserver accept\nsleep 20s\nexpect client sent S\n")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	var o, e bytes.Buffer
	code := Main(ctx, []string{"run", f, "--wire", "memory", "--realtime"}, Env{Stdout: &o, Stderr: &e})
	if code != ExitInterrupted || !strings.Contains(e.String(), "interrupted at "+f+":4") || strings.Contains(e.String(), "FAIL") ||
		strings.Contains(e.String(), "context canceled") {
		t.Errorf("exit %d, stderr %q", code, e.String())
	}
}

// A call still blocked after the step timeout is reported as such ("still
// blocked after", with its expectation), not as "context deadline
// exceeded", and the script goes on.
func TestStoppedStepWording(t *testing.T) {
	f := writeLab(t, "blocked.lab", "server listen 9527\nclient connect server:9527\nserver accept\nclient read expect EOF\nexpect client sent F\n")
	code, stdout, stderr := run(t, nil, "run", f, "--wire", "memory", "--step-timeout", "300ms")
	for _, want := range []string{"FAIL " + f + ":4:1: client read expect EOF", "client read expect EOF: still blocked after 300ms (the step timeout",
		"want EOF", "FAIL " + f + ":5:1: expect client sent F", "# blocked: 2 of 2 expectations failed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr+stdout, "STOP") || strings.Contains(stderr+stdout, "context deadline exceeded") || code != ExitFailure {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// Escape codes in a note reach the terminal escaped.
func TestNoteEscapedOnTheTerminal(t *testing.T) {
	f := writeLab(t, "esc.lab", "note \"\\x1b[2J\\x1b]0;title\\x07\"\n")
	code, stdout, stderr := run(t, nil, "run", f, "--wire", "memory")
	if code != 0 || strings.ContainsAny(stdout, "\x1b\x07") || !strings.Contains(stdout, `# \x1b[2J\x1b]0;title\a`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// Without root, diff's advice is one that works for diff (it takes no
// --wire memory).
func TestDiffAdviceWithoutRoot(t *testing.T) {
	need := errors.New("tun: needs root / CAP_NET_ADMIN (plus CAP_SYS_ADMIN for the private network namespace) to create the lab's TUN devices; fix: run with sudo, or grant the capabilities: sudo setcap cap_sys_admin,cap_net_admin+ep ./tcplab; or use --wire memory, which needs no privileges")
	var o, e bytes.Buffer
	code := Main(context.Background(), []string{"diff", "close", "--serial"}, Env{
		NewTUN: func(context.Context, WireConfig) (stack.Wire, error) { return nil, need },
		NewKernelPeer: func(stack.Wire, string, *trace.Recorder) (stack.Peer, func() error, error) {
			return nil, nil, errors.New("unreachable")
		},
		Stdout: &o, Stderr: &e,
	})
	msg := e.String()
	if code != ExitFailure || strings.Contains(msg, "or use --wire memory") || !strings.Contains(msg, "needs root") ||
		!strings.Contains(msg, "'tcplab run close --wire memory' shows the gVisor side alone") {
		t.Errorf("exit %d, stderr %q", code, msg)
	}
}

// diff's exit status is documented, and a run whose expectations failed
// makes it 1.
func TestDiffExitStatus(t *testing.T) {
	_, stdout, _ := run(t, nil, "diff", "--help")
	if !strings.Contains(stdout, "Exit status: 0 when every run") {
		t.Errorf("diff --help does not document its exit status:\n%s", stdout)
	}
	s := &scenario.Script{Name: "x"}
	ok := &scenario.Result{Script: s}
	bad := &scenario.Result{Script: s, Failures: []scenario.Failure{{Msg: "no"}}}
	stopped := &scenario.Result{Script: s, Stopped: true, Failures: []scenario.Failure{{Msg: "cannot run"}}}
	// Linux not meeting gVisor's expectations is a difference, not a
	// failure; the baseline failing, or a run stopping, is.
	r := &diff.Report{Script: s, Base: diff.Run{Result: ok}, Variants: []diff.Variant{{Run: diff.Run{Kernel: "client", Result: bad}}, {Run: diff.Run{Kernel: "server", Result: ok}}}}
	if got := failedRuns(r); len(got) != 0 {
		t.Errorf("failedRuns with a kernel variant that differs = %q", got)
	}
	r.Base.Result = bad
	if got := failedRuns(r); len(got) != 1 || got[0] != "x with gVisor on both sides (1 failed)" {
		t.Errorf("failedRuns with the baseline failing = %q", got)
	}
	r.Base.Result = ok
	r.Variants[1].Run.Result = stopped
	if got := failedRuns(r); len(got) != 1 || !strings.HasPrefix(got[0], "x with Linux as server (1 failed, stopped at") {
		t.Errorf("failedRuns with a stopped variant = %q", got)
	}
}

// A panic on one of diff's variant goroutines is reported as a bug too
// (exit 70), not as Go's crash (exit 2).
func TestDiffPanicIsReportedAsABug(t *testing.T) {
	t.Setenv("TCPLAB_TEST_PANIC", "after-setup")
	var o, e bytes.Buffer
	code := Main(context.Background(), []string{"diff", "close"}, Env{
		NewTUN: func(context.Context, WireConfig) (stack.Wire, error) { return memwire.New(memwire.Config{}), nil },
		NewKernelPeer: func(stack.Wire, string, *trace.Recorder) (stack.Peer, func() error, error) {
			return nil, nil, errors.New("unreachable")
		},
		Stdout: &o, Stderr: &e,
	})
	if code != ExitBug || !strings.Contains(e.String(), "This is a bug in tcplab") {
		t.Errorf("exit %d, stderr %.300q", code, e.String())
	}
}

// A panic on the live renderer's goroutine is caught there and raised again
// on the command's goroutine, where Main reports it as a bug.
func TestRendererPanicIsRaisedOnTheCommandGoroutine(t *testing.T) {
	var c catcher
	write := c.catch(func(trace.Event) { panic("boom") })
	done := make(chan struct{})
	go func() {
		defer close(done)
		write(trace.Event{})
		write(trace.Event{}) // dropped: the first panic is kept
	}()
	<-done
	defer func() {
		pe, ok := recover().(panicError)
		if !ok || pe.val != "boom" || !strings.Contains(string(pe.stack), "TestRendererPanicIsRaisedOnTheCommandGoroutine") {
			t.Errorf("raise() = %v, %v", pe, ok)
		}
	}()
	c.raise()
	t.Error("raise did not panic")
}
