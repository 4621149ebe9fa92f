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
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun"
)

// Process is a program running inside a lab's namespace, as the only
// child of its shim: the init of a PID namespace of its own.
type Process struct {
	path    string
	shim    *exec.Cmd
	report  *bufio.Reader // the shim's report pipe
	rfile   *os.File
	life    *os.File // the lifeline's write end: the shim's EOF when closed
	lifeMu  sync.Once
	pid     int // the program's, in the host's namespace
	done    chan struct{}
	err     error              // valid once done is closed
	status  syscall.WaitStatus // the program's, valid once done is closed
	started time.Time
	ended   time.Time
	// leftovers are the processes the program left running in its PID
	// namespace, killed once it ended; valid once done is closed.
	leftovers []int
}

// Start starts cmd (its Path, Args, Env, Dir, standard files and
// ExtraFiles; its SysProcAttr applies to the shim, with Pdeathsig SIGKILL
// and CLONE_NEWPID added) inside lab's network namespace, as the only
// child of a shim, and returns once it runs or failed to start (an error
// wrapping the errno, e.g. os.ErrNotExist). The shim is this binary
// re-executed (see this package's init): pid 1 of a new PID namespace. It
// passes on SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2, reaps,
// and when the program has ended kills what it left running (Leftovers);
// when tcplab dies, by any means, the shim dies and the kernel kills every
// process of the namespace: daemons that left the session too. cmd itself
// is not started (cmd.Process stays nil). Call Wait (or receive from Done)
// to reap it. Cost: one OS thread for the program's lifetime, discarded
// afterwards; the shim (a few MiB of memory) and the exec of this binary,
// a few milliseconds, and a readdir of /proc at start and at the end.
func Start(lab *tun.Lab, cmd *exec.Cmd) (*Process, error) {
	if lab == nil || cmd == nil {
		return nil, errors.New("program: Start needs a lab and a command")
	}
	argv := cmd.Args
	if len(argv) == 0 {
		argv = []string{cmd.Path}
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("program: report pipe: %w", err)
	}
	lr, lw, err := os.Pipe()
	if err != nil {
		rr.Close()
		rw.Close()
		return nil, fmt.Errorf("program: lifeline pipe: %w", err)
	}
	attr := &syscall.SysProcAttr{}
	if cmd.SysProcAttr != nil {
		*attr = *cmd.SysProcAttr
	}
	attr.Pdeathsig = syscall.SIGKILL
	attr.Cloneflags |= syscall.CLONE_NEWPID
	shim := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        append([]string{"tcplab-init", shimArg, strconv.Itoa(len(cmd.ExtraFiles)), cmd.Path}, argv...),
		Env:         cmd.Env,
		Dir:         cmd.Dir,
		Stdin:       cmd.Stdin,
		Stdout:      cmd.Stdout,
		Stderr:      cmd.Stderr,
		ExtraFiles:  append(append([]*os.File(nil), cmd.ExtraFiles...), lr, rw),
		SysProcAttr: attr,
	}
	p := &Process{path: cmd.Path, shim: shim, report: bufio.NewReader(rr), rfile: rr, life: lw, done: make(chan struct{})}
	started := make(chan error, 1)
	go p.run(lab.NetnsPath(), lr, rw, started)
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// run starts and reaps the shim on a thread locked into the namespace.
// The goroutine exits still locked, so the runtime discards the thread. The
// main thread is never used: the runtime would keep it, namespace and all.
// The thread lives as long as the shim: its death is the shim's
// Pdeathsig.
func (p *Process) run(nspath string, lr, rw *os.File, started chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		inner := make(chan struct{})
		go func() {
			defer close(inner)
			p.run(nspath, lr, rw, started)
		}()
		<-inner
		runtime.UnlockOSThread()
		return
	}
	fail := func(err error) {
		lr.Close()
		rw.Close()
		p.rfile.Close()
		p.closeLifeline()
		started <- err
	}
	fd, err := unix.Open(nspath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fail(fmt.Errorf("program: open lab namespace %s: %w", nspath, err))
		return
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		fail(fmt.Errorf("program: enter lab namespace: %w", err))
		return
	}
	if err := p.shim.Start(); err != nil {
		fail(fmt.Errorf("program: start the program's init (%s): %w", os.Args[0], err))
		return
	}
	lr.Close()
	rw.Close()
	p.started = time.Now()
	line, _ := p.report.ReadString('\n')
	verb, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch verb {
	case "start":
		p.pid, _ = strconv.Atoi(rest)
		started <- nil
	case "fail":
		p.shim.Wait()
		errnoText, msg, _ := strings.Cut(rest, " ")
		errno, _ := strconv.Atoi(errnoText)
		var err error = &os.PathError{Op: "exec", Path: p.path, Err: syscall.Errno(errno)}
		if errno == 0 {
			err = errors.New(msg)
		}
		p.rfile.Close()
		p.closeLifeline()
		started <- fmt.Errorf("program: start %s: %w", p.path, err)
		return
	default:
		err := p.shim.Wait()
		p.rfile.Close()
		p.closeLifeline()
		started <- fmt.Errorf("program: its init ended before starting %s: %v", p.path, err)
		return
	}
	p.err = p.shim.Wait()
	p.ended = time.Now()
	p.status = p.shim.ProcessState.Sys().(syscall.WaitStatus)
	for {
		line, err := p.report.ReadString('\n')
		verb, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch verb {
		case "exit":
			if ws, err := strconv.ParseUint(rest, 10, 32); err == nil {
				p.status = syscall.WaitStatus(ws)
			}
		case "left":
			for _, f := range strings.Fields(rest) {
				if n, err := strconv.Atoi(f); err == nil {
					p.leftovers = append(p.leftovers, n)
				}
			}
		}
		if err != nil {
			break
		}
	}
	p.rfile.Close()
	p.closeLifeline()
	close(p.done)
}

// closeLifeline closes the lifeline's write end, once.
func (p *Process) closeLifeline() { p.lifeMu.Do(func() { p.life.Close() }) }

// Leftovers returns the pids (in the host's namespace) of the processes
// the program left running when it ended (its children, a daemon), which
// were killed then; nil before it has ended, or when its init was killed.
func (p *Process) Leftovers() []int {
	select {
	case <-p.done:
		return p.leftovers
	default:
		return nil
	}
}

// Pid returns the program's process id in the host's PID namespace (in
// its own it is 2, its init 1), as tcplab's call tracer sees it.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the program has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the program to exit and returns its wait status (as its
// init reaped it: exact, signals included; SIGKILL when its init was
// killed) and how long it ran; err is an error waiting for its init other
// than a non-zero exit.
func (p *Process) Wait() (status syscall.WaitStatus, ran time.Duration, err error) {
	<-p.done
	err = p.err
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil
	}
	return p.status, p.ended.Sub(p.started), err
}

// Signal sends sig to the program (through its init, which passes on
// SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2; SIGKILL kills the
// init, and with it every process of the namespace), unless it has exited.
func (p *Process) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return p.shim.Process.Signal(sig)
}

// Stop ends the program: SIGTERM, then SIGKILL (of everything in its
// namespace) after grace, and waits for it.
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
