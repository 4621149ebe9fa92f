//go:build linux && amd64

package calltrace

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun/program"
)

// TestProgramCalls runs a Python program in a lab namespace that talks to
// itself over loopback, and checks its socket calls: names, results,
// addresses, the unread bytes at close, and nothing on other descriptors.
func TestProgramCalls(t *testing.T) {
	lab, tr := labTracer(t)
	// tcplab's own calls in the namespace are not the program's.
	if err := lab.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	src := `
import socket
ls = socket.socket(); ls.bind(("127.0.0.1", 7000)); ls.listen()
c = socket.create_connection(("127.0.0.1", 7000))
a, _ = ls.accept()
c.sendall(b"hi")
assert a.recv(10) == b"hi"
a.sendall(b"unread")
c.shutdown(socket.SHUT_WR)
import time; time.sleep(0.05)
c.close()
a.close()
ls.close()
`
	p, err := program.Start(lab, exec.Command("python3", "-c", src))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := p.Wait()
	if err != nil || st.ExitStatus() != 0 {
		t.Fatalf("program: %v %v", st, err)
	}
	var got []string
	timeout := time.After(2 * time.Second)
collect:
	for {
		select {
		case c := <-tr.Events():
			s := fmt.Sprintf("%s(%d)=%d", c.Name, c.Arg, c.Ret)
			if c.Entry {
				s = "enter " + s
			}
			if c.Name == "close" {
				s += fmt.Sprintf(" unread %d", c.Unread)
			}
			s += " " + c.Local.String() + ">" + c.Remote.String()
			got = append(got, s)
			if c.Name == "close" && !c.Entry && c.Local.Port() == 7000 && c.Remote.Port() == 0 {
				break collect // the listener: the last call
			}
		case <-timeout:
			break collect
		}
	}
	all := strings.Join(got, "\n")
	t.Logf("calls:\n%s", all)
	for _, want := range []string{
		"connect(0)=0 127.0.0.1:",
		">127.0.0.1:7000",
		"sendto(2)=2 ",
		"recvfrom(10)=2 127.0.0.1:7000>",
		"enter shutdown(1)=0 ",
		"shutdown(1)=0 ",
		"enter close(0)=0 unread 6 ",
		"close(0)=0 unread 0 127.0.0.1:7000>0.0.0.0:0",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no call like %q", want)
		}
	}
	if strings.Contains(all, "read(") && !strings.Contains(all, "recvfrom(") {
		t.Error("reads of files reached the trace")
	}
	for _, l := range got {
		if strings.HasPrefix(l, "read(") || strings.HasPrefix(l, "write(") {
			t.Errorf("a read or write on a non-socket, or an unexpected one: %s", l)
		}
	}
}
