package program

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun"
)

// Process is a program running inside a lab's namespace.
type Process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // cmd.Wait's, valid once done is closed
	started time.Time
	ended   time.Time
	ino     uint64 // the lab namespace's inode
	// leftovers are the processes the program left running in the lab's
	// namespace, killed once it ended; valid once done is closed.
	leftovers []int
}

// Start starts cmd inside lab's network namespace and returns once it runs
// (or failed to start). It sets cmd.SysProcAttr.Pdeathsig to SIGKILL. Call
// Wait (or receive from Done) to reap it. When it has ended, every process
// it left running in the lab's namespace is killed (Leftovers). Cost: one OS thread for the
// program's lifetime, discarded afterwards.
func Start(lab *tun.Lab, cmd *exec.Cmd) (*Process, error) {
	if lab == nil || cmd == nil {
		return nil, errors.New("program: Start needs a lab and a command")
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	ino, err := netnsInode(lab.NetnsPath())
	if err != nil {
		return nil, fmt.Errorf("program: lab namespace: %w", err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), ino: ino}
	started := make(chan error, 1)
	go p.run(lab.NetnsPath(), started)
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// run starts and reaps the program on a thread locked into the namespace.
// The goroutine exits still locked, so the runtime discards the thread. The
// main thread is never used: the runtime would keep it, namespace and all.
func (p *Process) run(nspath string, started chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		inner := make(chan struct{})
		go func() {
			defer close(inner)
			p.run(nspath, started)
		}()
		<-inner
		runtime.UnlockOSThread()
		return
	}
	fd, err := unix.Open(nspath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		started <- fmt.Errorf("program: open lab namespace %s: %w", nspath, err)
		return
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		started <- fmt.Errorf("program: enter lab namespace: %w", err)
		return
	}
	if err := p.cmd.Start(); err != nil {
		started <- fmt.Errorf("program: start %s: %w", p.cmd.Path, err)
		return
	}
	p.started = time.Now()
	started <- nil
	p.err = p.cmd.Wait()
	p.ended = time.Now()
	p.leftovers = killLeftovers(p.ino)
	close(p.done)
}

// Leftovers returns the pids of the processes the program left running in
// the lab's namespace when it ended (its children, a daemon), which were
// killed then; nil before it has ended.
func (p *Process) Leftovers() []int {
	select {
	case <-p.done:
		return p.leftovers
	default:
		return nil
	}
}

// Pid returns the program's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the program has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the program to exit and returns its state and how long
// it ran; err is cmd.Wait's error other than a non-zero exit (an
// *exec.ExitError is not an error here: see the state).
func (p *Process) Wait() (state *os.ProcessState, ran time.Duration, err error) {
	<-p.done
	err = p.err
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil
	}
	return p.cmd.ProcessState, p.ended.Sub(p.started), err
}

// Signal sends sig to the program, unless it has exited.
func (p *Process) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// Stop ends the program: SIGTERM, then SIGKILL after grace, and waits for it.
func (p *Process) Stop(grace time.Duration) {
	p.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// WaitListening waits until a TCP socket listens on port in lab's namespace
// (on any address), polling the namespace's /proc/net/tcp every 20 ms, until
// ctx ends. Cost: a thread created and destroyed per poll.
func WaitListening(ctx context.Context, lab *tun.Lab, port uint16) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		found := false
		err := lab.Do(func() error {
			var err error
			found, err = listening("/proc/thread-self/net/tcp", port)
			return err
		})
		if err != nil {
			return fmt.Errorf("program: wait for a listener on port %d: %w", port, err)
		}
		if found {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// listening reports whether the /proc/net/tcp file at path shows a socket in
// LISTEN (state 0A) on port.
func listening(path string, port uint16) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "  0: 0100007F:1F90 00000000:0000 0A ..."
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || fs[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(fs[1], ":")
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(hexPort, 16, 16); err == nil && uint16(v) == port {
			return true, nil
		}
	}
	return false, sc.Err()
}
