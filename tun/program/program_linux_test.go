package program

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/tuntest"
)

func newLab(t *testing.T) *tun.Lab {
	t.Helper()
	if err := tun.Check(); err != nil {
		if errors.Is(err, tun.ErrNeedRoot) || errors.Is(err, tun.ErrNoTUN) {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("tun.Check: %v", err)
	}
	lab, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	return lab
}

// TestStartInNamespace: the program sees the lab's devices and namespace,
// not the host's, and its exit status comes back.
func TestStartInNamespace(t *testing.T) {
	lab := newLab(t)
	var out bytes.Buffer
	cmd := exec.Command("sh", "-c", "readlink /proc/self/ns/net; cat /proc/net/dev; readlink /proc/self/ns/pid; exit 3")
	cmd.Stdout = &out
	p, err := Start(lab, cmd)
	if err != nil {
		t.Fatal(err)
	}
	st, ran, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exited() || st.ExitStatus() != 3 {
		t.Errorf("status %v, want exit code 3", st)
	}
	if ran <= 0 {
		t.Errorf("ran %v", ran)
	}
	want, err := os.Readlink(lab.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Readlink("/proc/self/ns/net")
	first, _, _ := strings.Cut(out.String(), "\n")
	if first != want || first == host {
		t.Errorf("program's namespace %q, want the lab's %q (host %q)", first, want, host)
	}
	if !strings.Contains(out.String(), "tcl-client") {
		t.Errorf("the program does not see the lab's devices:\n%s", out.String())
	}
	// It has a PID namespace of its own.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	hostPid, _ := os.Readlink("/proc/self/ns/pid")
	if pidns := lines[len(lines)-1]; !strings.HasPrefix(pidns, "pid:[") || pidns == hostPid {
		t.Errorf("program's PID namespace %q, want its own (not %q)", pidns, hostPid)
	}
	// The goroutine that started it is not in the namespace.
	if now, _ := os.Readlink("/proc/thread-self/ns/net"); now != host {
		t.Errorf("this thread is in %q after Start, want the host's %q", now, host)
	}
}

// TestStartMissing: a program that does not exist fails to start.
func TestStartMissing(t *testing.T) {
	lab := newLab(t)
	_, err := Start(lab, exec.Command("/nonexistent/tcplab-no-such-program"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start = %v, want a not-exist error", err)
	}
}

// TestWaitListening: found once the program listens, ctx's error before.
func TestWaitListening(t *testing.T) {
	lab := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := WaitListening(ctx, lab, 8080); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitListening with nothing listening = %v", err)
	}
	cmd := exec.Command("python3", "-c", "import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',8080))\ns.listen()\ntime.sleep(30)")
	p, err := Start(lab, cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitListening(ctx, lab, 8080); err != nil {
		t.Fatalf("WaitListening: %v", err)
	}
	p.Stop(time.Second)
	st, _, _ := p.Wait()
	if !st.Signaled() || st.Signal() != syscall.SIGTERM {
		t.Errorf("program's status %#x, want killed by SIGTERM (passed on by its init)", uint32(st))
	}
}

// TestLeftoversKilled: what the program leaves running in the lab's
// namespace when it ends (a background job) is killed and reported; a
// process of another group in the namespace is left alone.
func TestLeftoversKilled(t *testing.T) {
	lab := newLab(t)
	// Another group's process in the namespace (as a tcpdump started
	// with nsenter from another shell): not the program's.
	foreign := exec.Command("sleep", "30")
	foreign.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fp, err := Start(lab, foreign)
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Stop(time.Second)

	p, err := Start(lab, exec.Command("sh", "-c", "sleep 60 & exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := p.Wait()
	if err != nil || st.ExitStatus() != 0 {
		t.Fatalf("program: %v %v", st, err)
	}
	left := p.Leftovers()
	if len(left) != 1 {
		t.Fatalf("Leftovers() = %v, want the one background sleep", left)
	}
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(left[0]) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			break // gone or a zombie: killed
		}
		if time.Now().After(end) {
			t.Fatalf("the leftover %d still runs: %s", left[0], b)
		}
	}
	select {
	case <-fp.Done():
		t.Error("the other group's process in the namespace was killed")
	default:
	}
}

// waitGone waits up to 5 s until no process has arg on its command line.
func waitGone(t *testing.T, arg string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left := tuntest.PidsWithArg(arg)
		if len(left) == 0 {
			return
		}
		if time.Now().After(end) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes with %q still run: %v", arg, left)
		}
	}
}

// TestInitKilledTakesAll: when the program's init dies (as it does, by
// Pdeathsig, when tcplab is killed), every process of its namespace dies:
// the program and a daemon that left its session and group.
func TestInitKilledTakesAll(t *testing.T) {
	lab := newLab(t)
	daemon, prog := "301.25", "302.25" // sleep's arguments mark the processes
	p, err := Start(lab, exec.Command("sh", "-c", "setsid sleep "+daemon+" & exec sleep "+prog))
	if err != nil {
		t.Fatal(err)
	}
	// Pid is the program's host pid.
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/cmdline"); !strings.Contains(string(b), "sh") && !strings.Contains(string(b), prog) {
		t.Errorf("Pid() = %d is %q, not the program", p.Pid(), b)
	}
	for end := time.Now().Add(5 * time.Second); len(tuntest.PidsWithArg(daemon)) == 0 || len(tuntest.PidsWithArg(prog)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the daemon and the program never ran")
		}
	}
	if got := tuntest.PidsWithArg(prog); len(got) != 1 || got[0] != p.Pid() {
		t.Errorf("the program runs as %v, Pid() = %d", got, p.Pid())
	}
	p.shim.Process.Signal(syscall.SIGKILL)
	st, _, err := p.Wait()
	if err != nil || !st.Signaled() || st.Signal() != syscall.SIGKILL {
		t.Errorf("Wait = %#x, %v; want killed by SIGKILL", uint32(st), err)
	}
	waitGone(t, daemon)
	waitGone(t, prog)
}

// TestStartPassesThrough: the program gets its environment, directory,
// standard input and output, and none of its init's pipes.
func TestStartPassesThrough(t *testing.T) {
	lab := newLab(t)
	dir := t.TempDir()
	var out bytes.Buffer
	cmd := exec.Command("sh", "-c", `read x; echo "$x $Y $(pwd)"; ls -l /proc/self/fd`)
	cmd.Env = []string{"Y=why", "PATH=" + os.Getenv("PATH")}
	cmd.Dir = dir
	in, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd.Stdin = in
	cmd.Stdout = &out
	p, err := Start(lab, cmd)
	if err != nil {
		t.Fatal(err)
	}
	// The program waits for its input: the init's pipes are still open.
	var pipes []string
	for _, f := range []*os.File{p.rfile, p.life} {
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		pipes = append(pipes, "pipe:["+strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10)+"]")
	}
	w.Write([]byte("hi\n"))
	w.Close()
	if st, _, err := p.Wait(); err != nil || st.ExitStatus() != 0 {
		t.Fatalf("Wait = %v, %v", st, err)
	}
	first, fds, _ := strings.Cut(out.String(), "\n")
	if want := "hi why " + dir; first != want {
		t.Errorf("program said %q, want %q", first, want)
	}
	for _, pipe := range pipes {
		if strings.Contains(fds, pipe) {
			t.Errorf("the program holds its init's %s:\n%s", pipe, fds)
		}
	}
	if !strings.Contains(fds, " 0 -> pipe:[") {
		t.Errorf("the program's descriptors:\n%s", fds)
	}
}

// TestLeftoverDaemonKilled: a daemon that left the program's session is
// killed when the program ends, and reported.
func TestLeftoverDaemonKilled(t *testing.T) {
	lab := newLab(t)
	daemon := "303.25"
	p, err := Start(lab, exec.Command("sh", "-c", "setsid sh -c 'sleep "+daemon+" & exec sleep "+daemon+"' & sleep 0.2; exit 4"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := p.Wait()
	if err != nil || st.ExitStatus() != 4 {
		t.Fatalf("Wait = %v, %v; want exit 4", st, err)
	}
	if left := p.Leftovers(); len(left) != 2 {
		t.Errorf("Leftovers() = %v, want the two sleeps", left)
	}
	waitGone(t, daemon)
}

// BenchmarkStartTrue: starting and reaping /bin/true in the lab, its init
// (this binary re-executed in a new PID namespace) included.
func BenchmarkStartTrue(b *testing.B) {
	if err := tun.Check(); err != nil {
		b.Skipf("skipping: %v", err)
	}
	lab, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer lab.Close()
	for b.Loop() {
		p, err := Start(lab, exec.Command("true"))
		if err != nil {
			b.Fatal(err)
		}
		if st, _, err := p.Wait(); err != nil || st.ExitStatus() != 0 {
			b.Fatalf("Wait = %v, %v", st, err)
		}
	}
}

// sigintCounter is a program that counts the SIGINTs it gets within
// 300 ms of the first, then says how many.
const sigintCounter = `import signal, sys, time
n = 0
def on(s, f):
    global n
    n += 1
signal.signal(signal.SIGINT, on)
print("ready", flush=True)
while n == 0:
    time.sleep(0.01)
end = time.time() + 0.3
while time.time() < end:
    time.sleep(0.01)
print("sigints", n, "end", flush=True)
`

// readUntil reads r until its text contains want (or 10 s pass).
func readUntil(t *testing.T, r *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 512)
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(string(got), want) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read %q so far, waiting for %q: %v", got, want, err)
		}
	}
	return string(got)
}

// TestSignalOnce: a SIGINT sent to the program (Signal, as tcplab does)
// reaches it through its init once; a Ctrl-C on its terminal, which
// reaches the program and its init both, reaches it once too: the init
// does not pass that one on.
func TestSignalOnce(t *testing.T) {
	lab := newLab(t)
	// By pid, no terminal: passed on.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command("python3", "-c", sigintCounter)
	cmd.Stdout = w
	p, err := Start(lab, cmd)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, r, "ready")
	p.Signal(syscall.SIGINT)
	if out := readUntil(t, r, " end"); !strings.Contains(out, "sigints 1 end") {
		t.Errorf("Signal(SIGINT): %q, want one SIGINT", out)
	}
	p.Wait()

	// On a terminal: the program and its init are its foreground group.
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("skipping: no pseudo-terminal: %v", err)
	}
	defer ptm.Close()
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("python3", "-c", sigintCounter)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	p, err = Start(lab, cmd)
	pts.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	readUntil(t, ptm, "ready")
	ptm.Write([]byte{3}) // Ctrl-C
	if out := readUntil(t, ptm, " end"); !strings.Contains(out, "sigints 1 end") {
		t.Errorf("on a terminal, Ctrl-C: %q, want one SIGINT", out)
	}
}

// TestLifeline: when the lifeline's write end closes (the parent died
// before its init could set Pdeathsig) the init kills every process of its
// namespace and exits.
func TestLifeline(t *testing.T) {
	lab := newLab(t)
	daemon, prog := "305.25", "306.25"
	p, err := Start(lab, exec.Command("sh", "-c", "setsid sleep "+daemon+" & exec sleep "+prog))
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); len(tuntest.PidsWithArg(daemon)) == 0 || len(tuntest.PidsWithArg(prog)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the daemon and the program never ran")
		}
	}
	p.closeLifeline()
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.Stop(0)
		t.Fatal("the init did not end when its lifeline closed")
	}
	waitGone(t, daemon)
	waitGone(t, prog)
}
