//go:build linux && amd64

package calltrace

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/ktrace"
	"github.com/tcplab/tcplab/tun/program"
)

// labTracer makes a lab namespace and opens a Tracer on it, both closed
// when the test ends; it skips without root, /dev/net/tun, python3 (the
// program every test runs) or the kernel support the tracer needs.
func labTracer(t *testing.T) (*tun.Lab, *Tracer) {
	t.Helper()
	if err := tun.Check(); err != nil {
		if errors.Is(err, tun.ErrNeedRoot) || errors.Is(err, tun.ErrNoTUN) {
			t.Skipf("skipping: %v", err)
		}
		t.Fatal(err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("skipping: no python3 to play the program")
	}
	lab, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	ino, err := ktrace.NetnsInode(lab.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(Config{NetnsInode: ino})
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return lab, tr
}

// traceProgram runs the Python program src in a fresh lab namespace with a
// Tracer open, and returns the program's pid and its calls up to the one
// last reports true for (or 5 s).
func traceProgram(t *testing.T, src string, last func(Call) bool) (int, []Call) {
	t.Helper()
	lab, tr := labTracer(t)
	p, err := program.Start(lab, exec.Command("python3", "-c", src))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := p.Wait()
	if err != nil || st.ExitStatus() != 0 {
		t.Fatalf("program: %v %v", st, err)
	}
	defer func() {
		if n, err := tr.Lost(); err != nil || n != 0 {
			t.Errorf("Lost() = %d, %v; want 0 calls lost", n, err)
		}
	}()
	var got []Call
	timeout := time.After(5 * time.Second)
	for {
		select {
		case c := <-tr.Events():
			got = append(got, c)
			if last(c) {
				return p.Pid(), got
			}
		case <-timeout:
			t.Errorf("the last call never came; calls so far:\n%s", callLines(got))
			return p.Pid(), got
		}
	}
}

func callLines(cs []Call) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%+v\n", c)
	}
	return b.String()
}

// TestMoreCalls: bind, listen, setsockopt (SO_REUSEADDR, TCP_NODELAY,
// SO_SNDBUF, SO_RCVBUF, SO_LINGER with its l_onoff and l_linger, and a
// refused one), sendmsg and recvmsg, writev and readv of a real program,
// each with its pid, descriptor, arguments, result and errno; a refused
// bind with EADDRINUSE.
func TestMoreCalls(t *testing.T) {
	src := `
import os, socket, struct
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 7001))
ls.listen(7)
other = socket.socket()
try:
    other.bind(("127.0.0.1", 7001))
    raise SystemExit("bind succeeded")
except OSError:
    pass
c = socket.socket()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
c.connect(("127.0.0.1", 7001))
a, _ = ls.accept()
assert c.sendmsg([b"ab", b"cde"]) == 5
n, _, _, _ = a.recvmsg_into([bytearray(3), bytearray(10)])
assert n == 5
assert os.writev(a.fileno(), [b"xy", b"z"]) == 3
assert os.readv(c.fileno(), [bytearray(1), bytearray(9)]) == 3
try:
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\0\0\0\0")
    raise SystemExit("a short SO_LINGER was accepted")
except OSError:
    pass
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
a.close()
ls.close()
other.close()
`
	pid, calls := traceProgram(t, src, func(c Call) bool {
		return c.Name == "close" && !c.Entry && c.Local.Port() == 0 && c.Remote.Port() == 0 // other's, the last
	})
	t.Logf("calls:\n%s", callLines(calls))
	find := func(what string, match func(Call) bool) Call {
		t.Helper()
		for _, c := range calls {
			if !c.Entry && match(c) {
				if c.Pid != pid || c.Fd < 3 || c.Exit.Before(c.Enter) {
					t.Errorf("%s: pid %d fd %d enter %v exit %v: want the program's pid %d, a socket's fd and a return after the call", what, c.Pid, c.Fd, c.Enter, c.Exit, pid)
				}
				return c
			}
		}
		t.Errorf("no %s", what)
		return Call{}
	}
	sockopt := func(level, opt int) func(Call) bool {
		return func(c Call) bool { return c.Name == "setsockopt" && c.Arg == uint64(level) && c.Option == opt }
	}
	if c := find("setsockopt(SOL_SOCKET, SO_REUSEADDR)", sockopt(unix.SOL_SOCKET, unix.SO_REUSEADDR)); c.Value[0] != 1 || c.OptLen != 4 || c.Ret != 0 {
		t.Errorf("SO_REUSEADDR: value %d len %d = %d, want 1, 4 = 0", c.Value[0], c.OptLen, c.Ret)
	}
	ok := find("bind", func(c Call) bool { return c.Name == "bind" && c.Ret == 0 })
	if ok.Local.String() != "127.0.0.1:7001" {
		t.Errorf("bind: address %v, want 127.0.0.1:7001", ok.Local)
	}
	if c := find("bind refused", func(c Call) bool { return c.Name == "bind" && c.Ret != 0 }); c.Ret != -int64(unix.EADDRINUSE) || c.Local.String() != "127.0.0.1:7001" || c.Fd == ok.Fd {
		t.Errorf("second bind of %v on fd %d = %d, want -EADDRINUSE on another fd", c.Local, c.Fd, c.Ret)
	}
	if c := find("listen", func(c Call) bool { return c.Name == "listen" }); c.Arg != 7 || c.Ret != 0 || c.Local.Port() != 7001 || c.Fd != ok.Fd {
		t.Errorf("listen: backlog %d on %v fd %d = %d, want 7 on :7001 fd %d = 0", c.Arg, c.Local, c.Fd, c.Ret, ok.Fd)
	}
	if c := find("TCP_NODELAY", sockopt(unix.IPPROTO_TCP, unix.TCP_NODELAY)); c.Value[0] != 1 || c.Ret != 0 {
		t.Errorf("TCP_NODELAY: value %d = %d, want 1 = 0", c.Value[0], c.Ret)
	}
	if c := find("SO_SNDBUF", sockopt(unix.SOL_SOCKET, unix.SO_SNDBUF)); c.Value[0] != 65536 || c.Ret != 0 {
		t.Errorf("SO_SNDBUF: value %d = %d, want 65536 = 0", c.Value[0], c.Ret)
	}
	if c := find("SO_RCVBUF", sockopt(unix.SOL_SOCKET, unix.SO_RCVBUF)); c.Value[0] != 32768 || c.Ret != 0 {
		t.Errorf("SO_RCVBUF: value %d = %d, want 32768 = 0", c.Value[0], c.Ret)
	}
	linger := sockopt(unix.SOL_SOCKET, unix.SO_LINGER)
	if c := find("short SO_LINGER", func(c Call) bool { return linger(c) && c.OptLen == 4 }); c.Ret != -int64(unix.EINVAL) {
		t.Errorf("SO_LINGER of 4 bytes = %d, want -EINVAL", c.Ret)
	}
	if c := find("SO_LINGER", func(c Call) bool { return linger(c) && c.OptLen == 8 }); c.Value != [2]int32{1, 0} || c.Ret != 0 {
		t.Errorf("SO_LINGER: l_onoff, l_linger %v = %d, want [1 0] = 0", c.Value, c.Ret)
	}
	if c := find("sendmsg", func(c Call) bool { return c.Name == "sendmsg" }); c.Arg != 5 || c.Buffers != 2 || c.Ret != 5 || c.Remote.Port() != 7001 {
		t.Errorf("sendmsg: %d bytes in %d buffers to %v = %d, want 5 in 2 to :7001 = 5", c.Arg, c.Buffers, c.Remote, c.Ret)
	}
	if c := find("recvmsg", func(c Call) bool { return c.Name == "recvmsg" }); c.Arg != 13 || c.Buffers != 2 || c.Ret != 5 || c.Local.Port() != 7001 {
		t.Errorf("recvmsg: %d bytes in %d buffers on %v = %d, want 13 in 2 on :7001 = 5", c.Arg, c.Buffers, c.Local, c.Ret)
	}
	if c := find("writev", func(c Call) bool { return c.Name == "writev" }); c.Arg != 3 || c.Buffers != 2 || c.Ret != 3 {
		t.Errorf("writev: %d bytes in %d buffers = %d, want 3 in 2 = 3", c.Arg, c.Buffers, c.Ret)
	}
	if c := find("readv", func(c Call) bool { return c.Name == "readv" }); c.Arg != 10 || c.Buffers != 2 || c.Ret != 3 {
		t.Errorf("readv: %d bytes in %d buffers = %d, want 10 in 2 = 3", c.Arg, c.Buffers, c.Ret)
	}
}

// TestCloseDelivers: the calls still in the ring when the Tracer is closed
// (the reader is woken only for close and shutdown, or polls) reach Events
// before it is closed.
func TestCloseDelivers(t *testing.T) {
	if err := tun.Check(); err != nil {
		if errors.Is(err, tun.ErrNeedRoot) || errors.Is(err, tun.ErrNoTUN) {
			t.Skipf("skipping: %v", err)
		}
		t.Fatal(err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("skipping: no python3 to play the program")
	}
	lab, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ino, err := ktrace.NetnsInode(lab.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	// A long poll: without Close's flush the calls would still be in
	// the ring.
	tr, err := Open(Config{NetnsInode: ino, MaxDelay: time.Hour})
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// listen and setsockopt wake nobody; the process exits without
	// close(2) (the kernel closes its descriptors).
	src := `
import os, socket
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 7002))
ls.listen(3)
os._exit(0)
`
	p, err := program.Start(lab, exec.Command("python3", "-c", src))
	if err != nil {
		t.Fatal(err)
	}
	if st, _, err := p.Wait(); err != nil || st.ExitStatus() != 0 {
		t.Fatalf("program: %v %v", st, err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.Close() }()
	var names []string
	for c := range tr.Events() {
		names = append(names, c.Name)
	}
	if err := <-done; err != nil {
		t.Errorf("Close: %v", err)
	}
	if got, want := strings.Join(names, " "), "setsockopt bind listen"; got != want {
		t.Errorf("calls delivered by Close: %q, want %q", got, want)
	}
}
