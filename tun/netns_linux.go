package tun

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Namespace is a private, unnamed network namespace. Nothing names it in the
// filesystem: one open file descriptor keeps it alive, and the kernel
// destroys it once its owner (a Lab or VethPair) closes that descriptor and
// the last socket created inside it is closed.
type Namespace struct {
	mu   sync.RWMutex
	fd   int // -1 once closed
	path string
}

// newNamespace creates a network namespace on a fresh locked OS thread,
// brings lo up, and runs setup on that thread inside the namespace with a
// rtnetlink handle bound to it. Files and sockets that setup opens belong to
// the namespace and keep working from any thread. The thread is discarded
// afterwards. Cost: one thread, roughly a millisecond of kernel work.
func newNamespace(setup func(h *netlink.Handle) error) (*Namespace, error) {
	var ns *Namespace
	err := onFreshThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return sysErr("create network namespace", err)
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("tun: open network namespace: %w", err)
		}
		ns = &Namespace{fd: fd, path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)}
		if err := setupNamespace(setup); err != nil {
			ns.close()
			ns = nil
			return err
		}
		return nil
	})
	return ns, err
}

// setupNamespace runs on the namespace's thread; see newNamespace.
func setupNamespace(setup func(h *netlink.Handle) error) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("tun: open rtnetlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return sysErr("bring lo up", err)
	}
	if setup == nil {
		return nil
	}
	return setup(h)
}

// Path returns a path that names the namespace while it is open, e.g.
// "/proc/1234/fd/7", for nsenter --net=PATH or ip -n style tools.
func (ns *Namespace) Path() string { return ns.path }

// Do runs f on a fresh OS thread that has entered the namespace and returns
// f's error. The thread is discarded afterwards, so f may leave it in any
// state. Sockets created by f (net.Listen, net.Dial, netlink handles) stay in
// the namespace and may be used from any goroutine; goroutines started by f
// run in the host namespace. A panic in f is re-raised in the caller. Cost:
// a thread created and destroyed plus a setns, about 75 µs.
func (ns *Namespace) Do(f func() error) error {
	return onFreshThread(func() error {
		ns.mu.RLock()
		if ns.fd < 0 {
			ns.mu.RUnlock()
			return ErrClosed
		}
		err := unix.Setns(ns.fd, unix.CLONE_NEWNET)
		ns.mu.RUnlock()
		if err != nil {
			return sysErr("enter network namespace", err)
		}
		return f()
	})
}

// close releases the descriptor that keeps the namespace alive. It is safe
// to call more than once.
func (ns *Namespace) close() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	if err != nil {
		return fmt.Errorf("tun: close network namespace: %w", err)
	}
	return nil
}

// onFreshThread runs f on a new goroutine locked to its OS thread and
// returns f's error, re-raising a panic. The goroutine exits without
// UnlockOSThread, so the Go runtime terminates the thread together with
// whatever namespace f moved it into; no other goroutine ever runs there.
func onFreshThread(f func() error) error {
	done := make(chan result, 1)
	go runLocked(f, done)
	r := <-done
	switch {
	case r.panicked && r.p != nil:
		panic(r.p)
	case r.panicked:
		return errors.New("tun: function run in namespace called runtime.Goexit")
	}
	return r.err
}

// result is the outcome of a function run by runLocked.
type result struct {
	err      error
	panicked bool
	p        any
}

// runLocked runs f locked to the current OS thread, sends the outcome on
// done, and exits still locked, so the runtime terminates the thread.
//
// The main thread is the exception: the runtime wedges it instead of
// terminating it, and a wedged thread that entered a namespace keeps that
// namespace alive until the process exits. New goroutines often start on
// the main thread (always, in a test binary), so there runLocked keeps the
// main thread busy and untainted while a child goroutine, which must then
// run on another thread, does the work.
func runLocked(f func() error, done chan<- result) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		inner := make(chan result, 1)
		go runLocked(f, inner)
		done <- <-inner
		runtime.UnlockOSThread()
		return
	}
	r := result{panicked: true}
	defer func() {
		if r.panicked {
			r.p = recover()
		}
		done <- r
	}()
	r.err = f()
	r.panicked = false
}

// writeSysctl writes value to /proc/sys/<key> for the calling thread's
// network namespace. Net sysctls are per namespace, so the caller must run
// on a thread inside the lab namespace.
func writeSysctl(key, value string) error {
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0); err != nil {
		return sysErr(fmt.Sprintf("set sysctl %s=%s", key, value), err)
	}
	return nil
}

// sysErr wraps err from operation op, adding ErrNeedRoot when the errno
// says the process lacks a capability.
func sysErr(op string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (%s: %w)", ErrNeedRoot, op, err)
	}
	return fmt.Errorf("tun: %s: %w", op, err)
}
