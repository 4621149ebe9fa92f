package program

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The shim is the init (pid 1) of the program's own PID namespace: the
// binary that called Start, re-executed as
//
//	/proc/self/exe shimArg NEXTRA PATH ARGV...
//
// with the program's environment, directory and standard files, NEXTRA
// more files for the program (fds 3...), then the lifeline (read end; EOF:
// the parent died) and the report pipe (write end). It reports on the
// report pipe, one line each:
//
//	start HOSTPID      the program runs (its pid in the host's namespace)
//	fail ERRNO TEXT    the program could not be started; the shim exits 127
//	exit WAITSTATUS    the program's raw wait status, once reaped
//	left HOSTPID...    the processes it left in the namespace, killed then
const shimArg = "-tcplab-program-init-v1"

// The shim's exit code when the program could not be started (as a shell's
// for a command not found).
const shimExitNoProgram = 127

// init turns this process into the shim when it was started as one: it is
// pid 1 of a new PID namespace and its first argument is shimArg. It runs
// before main (and before a test binary's flag parsing), so every binary
// that can Start a program can be its shim; it never returns then.
func init() {
	if len(os.Args) > 1 && os.Args[1] == shimArg && os.Getpid() == 1 {
		os.Exit(shim(os.Args[2:]))
	}
}

// forwarded are the signals the shim passes on to the program. As pid 1
// it would ignore them otherwise.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2}

// shim runs the program and returns the shim's exit code: the program's,
// or 128+signal.
func shim(args []string) int {
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "tcplab: program init: bad arguments")
		return shimExitNoProgram
	}
	nextra, err := strconv.Atoi(args[0])
	if err != nil || nextra < 0 {
		fmt.Fprintln(os.Stderr, "tcplab: program init: bad arguments")
		return shimExitNoProgram
	}
	path, argv := args[1], args[2:]
	lifeline := os.NewFile(uintptr(3+nextra), "lifeline")
	report := os.NewFile(uintptr(4+nextra), "report")
	if lifeline == nil || report == nil {
		fmt.Fprintln(os.Stderr, "tcplab: program init: no lifeline or report pipe")
		return shimExitNoProgram
	}
	// Neither goes to the program.
	unix.CloseOnExec(int(lifeline.Fd()))
	unix.CloseOnExec(int(report.Fd()))
	// Set at fork already; the runtime's check that the parent is still
	// alive cannot work in a new PID namespace (getppid is 0): the
	// lifeline covers that.
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	for i := 0; i < nextra; i++ {
		files = append(files, os.NewFile(uintptr(3+i), "extra"))
	}
	proc, err := os.StartProcess(path, argv, &os.ProcAttr{Files: files, Env: os.Environ()})
	if err != nil {
		errno := 0
		if e, ok := underlyingErrno(err); ok {
			errno = int(e)
		}
		fmt.Fprintf(report, "fail %d %s\n", errno, strings.ReplaceAll(err.Error(), "\n", " "))
		return shimExitNoProgram
	}
	self := hostPid("self")
	fmt.Fprintf(report, "start %d\n", childHostPid(self, proc.Pid))

	// Reap every child (orphans come to pid 1), telling the program's
	// status, until none is left.
	type reaped struct {
		pid int
		ws  unix.WaitStatus
	}
	children := make(chan reaped, 16)
	go func() {
		defer close(children)
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return // ECHILD: the namespace is empty
			}
			children <- reaped{pid, ws}
		}
	}()
	parentGone := make(chan struct{})
	go func() {
		var b [1]byte
		lifeline.Read(b[:]) // EOF (or an error): the parent has died
		close(parentGone)
	}()

	var status unix.WaitStatus
	running := true
	for running {
		select {
		case s := <-sigs:
			if sig := s.(syscall.Signal); !keyboardDuplicate(sig) {
				unix.Kill(proc.Pid, sig)
			}
		case <-parentGone:
			unix.Kill(-1, unix.SIGKILL)
			os.Exit(128 + int(unix.SIGKILL))
		case c, ok := <-children:
			if !ok {
				running = false // cannot happen before the program's own
			} else if c.pid == proc.Pid {
				status, running = c.ws, false
			}
		}
	}
	// Signals stay caught (and dropped) to the end: uncaught, the
	// runtime would exit at once, before the report.
	// The program has ended: what it left in the namespace goes now.
	left := others(self)
	unix.Kill(-1, unix.SIGKILL)
	for range children {
	}
	fmt.Fprintf(report, "exit %d\n", uint32(status))
	if len(left) > 0 {
		fmt.Fprintf(report, "left %s\n", strings.Trim(fmt.Sprint(left), "[]"))
	}
	report.Close()
	switch {
	case status.Exited():
		return status.ExitStatus()
	case status.Signaled():
		return 128 + int(status.Signal())
	}
	return 1
}

// underlyingErrno digs the errno out of os.StartProcess's error.
func underlyingErrno(err error) (syscall.Errno, bool) {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return e, true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return 0, false
		}
		err = u.Unwrap()
	}
	return 0, false
}

// hostPid returns the pid of /proc/NAME ("self") in the host's PID
// namespace (/proc is the host's: nothing mounts another), or 0.
func hostPid(name string) int {
	s, err := os.Readlink("/proc/" + name)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(s)
	return n
}

// childHostPid returns the host pid of the child of the process with host
// pid parent whose pid in the new namespace is nspid, or 0 when it cannot
// be found. Cost: a readdir of /proc and a status file per process.
func childHostPid(parent, nspid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pp, ns := statusPids("/proc/" + e.Name() + "/status")
		if pp == parent && ns == nspid {
			return pid
		}
	}
	return 0
}

// statusPids returns the PPid of a /proc status file and the last (the
// innermost namespace's) pid of its NSpid line.
func statusPids(path string) (ppid, nspid int) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		switch k {
		case "PPid":
			ppid, _ = strconv.Atoi(fs[0])
		case "NSpid":
			nspid, _ = strconv.Atoi(fs[len(fs)-1])
			return ppid, nspid
		}
	}
	return ppid, nspid
}

// others returns the host pids of the processes of this PID namespace
// other than self. Cost: a readdir of /proc and a stat per process.
func others(self int) []int {
	var me unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &me) != nil {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/pid", &st) == nil && st.Ino == me.Ino && st.Dev == me.Dev {
			pids = append(pids, pid)
		}
	}
	return pids
}

// keyboardDuplicate reports whether sig, a signal a terminal sends its
// foreground process group (Ctrl-C, Ctrl-\, a hangup), has most likely
// reached the program already: the program is in its terminal's
// foreground group. Forwarding it would deliver it twice. A signal sent to
// the shim alone by pid is then not passed on; tcplab itself stops the
// program with SIGTERM, which always is.
func keyboardDuplicate(sig syscall.Signal) bool {
	if sig != syscall.SIGINT && sig != syscall.SIGQUIT && sig != syscall.SIGHUP {
		return false
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return false
	}
	// "pid (comm) state ppid pgrp session tty_nr tpgid ..."
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	fs := strings.Fields(s[i+1:])
	if len(fs) < 6 {
		return false
	}
	// The program stays in the shim's group unless it moves: the shim's
	// view is enough for the common case.
	pgrp, _ := strconv.Atoi(fs[2])
	tty, _ := strconv.Atoi(fs[4])
	tpgid, _ := strconv.Atoi(fs[5])
	return tty != 0 && tpgid > 0 && tpgid == pgrp
}
