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

	"github.com/tcplab/tcplab/tun"
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
	cmd := exec.Command("sh", "-c", "readlink /proc/self/ns/net; cat /proc/net/dev; exit 3")
	cmd.Stdout = &out
	p, err := Start(lab, cmd)
	if err != nil {
		t.Fatal(err)
	}
	st, ran, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode() != 3 {
		t.Errorf("exit code %d, want 3", st.ExitCode())
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
	if st.Exited() {
		t.Errorf("program exited by itself (%v), want stopped by SIGTERM", st)
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
	if err != nil || !st.Success() {
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
