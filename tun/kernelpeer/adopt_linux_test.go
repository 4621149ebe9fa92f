package kernelpeer

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/program"
)

// newAdoptLab is a TUN lab with an adopting peer (Config.Adopt) on side:
// the sockets the test makes itself in the namespace play the program.
func newAdoptLab(t *testing.T, side string) (*stack.Lab, *tun.Lab, *Peer) {
	t.Helper()
	needPrivileges(t)
	w, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatalf("tun.New: %v", err)
	}
	lab, err := stack.NewLab(w, stack.Config{}, false)
	if err != nil {
		t.Fatalf("stack.NewLab: %v", err)
	}
	p, err := NewConfig(w, side, lab.Trace, Config{Adopt: true})
	if err != nil {
		lab.Close()
		t.Fatalf("NewConfig: %v", err)
	}
	if p.obs == nil {
		p.Close()
		lab.Close()
		t.Skip("skipping: the eBPF observer is not available (the trace notes why); adoption follows the kernel's tracepoints")
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Peer.Close: %v", err)
		}
		if err := lab.Close(); err != nil {
			t.Errorf("Lab.Close: %v", err)
		}
	})
	return lab, w, p
}

// programSocket makes a blocking TCP socket in the lab namespace, as a
// program run there would, and connects it to to.
func programSocket(t *testing.T, w *tun.Lab, to netip.AddrPort) int {
	t.Helper()
	fd := -1
	err := w.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Connect(fd, &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()})
	})
	if err != nil {
		t.Fatalf("program connect %v: %v", to, err)
	}
	return fd
}

// TestAdoptProgramClient: connections the peer did not make are followed
// from their connect on: states, segments, the inferred cause of a FIN and
// the kernel's reason for a RST on close() with unread data.
func TestAdoptProgramClient(t *testing.T) {
	lab, w, p := newAdoptLab(t, "client")
	ctx := context.Background()
	srv := lab.Server.Peer()
	l, err := srv.Listen(9527, 0)
	if err != nil {
		t.Fatal(err)
	}
	to := netip.AddrPortFrom(srv.Addr(), 9527)

	// Connection 1: the program half-closes and still reads the answer.
	fd1 := programSocket(t, w, to)
	s1, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Shutdown(fd1, unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := s1.Write(ctx, []byte("Hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Read(fd1, buf); err != nil || string(buf[:n]) != "Hi" {
		t.Fatalf("program read %q, %v", buf[:n], err)
	}
	s1.Close()
	time.Sleep(50 * time.Millisecond)
	unix.Close(fd1)

	// Connection 2: data arrives and the program closes without reading.
	fd2 := programSocket(t, w, to)
	s2, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Write(ctx, []byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	unix.Close(fd2)
	if _, err := s2.Read(ctx, buf); err == nil {
		t.Error("server read after the program's RST succeeded")
	}
	s2.Close()
	time.Sleep(50 * time.Millisecond)
	p.Sync()

	conns := map[string]string{} // conn → states, "→"-joined
	var fin, rst []trace.Event
	for _, e := range lab.Trace.Events() {
		if e.Host != "client" {
			continue
		}
		switch {
		case e.Kind == trace.State:
			conns[e.Conn] += e.From + ">" + e.To + " "
		case e.Kind == trace.Segment && e.Dir == "out" && strings.Contains(e.Flags, "F"):
			fin = append(fin, e)
		case e.Kind == trace.Segment && e.Dir == "out" && strings.Contains(e.Flags, "R"):
			rst = append(rst, e)
		}
	}
	t.Logf("states: %v", conns)
	if !strings.HasPrefix(conns["c1"], "CLOSED>SYN-SENT SYN-SENT>ESTABLISHED ESTABLISHED>FIN-WAIT-1 ") {
		t.Errorf("c1 states %q: want the program's connect and half-close from CLOSED on", conns["c1"])
	}
	if !strings.HasPrefix(conns["c2"], "CLOSED>SYN-SENT SYN-SENT>ESTABLISHED ESTABLISHED>CLOSED") {
		t.Errorf("c2 states %q: want connect, then the abort", conns["c2"])
	}
	if len(fin) != 1 || fin[0].Conn != "c1" || !strings.Contains(fin[0].Reason, "shutdown(SHUT_WR)") || !strings.Contains(fin[0].Reason, "inferred") {
		t.Errorf("FINs %+v: want one on c1, shutdown(SHUT_WR) inferred", fin)
	}
	if len(rst) != 1 || rst[0].Conn != "c2" || !strings.Contains(rst[0].Reason, "unread") || !strings.Contains(rst[0].Reason, "TCP_ABORT_ON_CLOSE") || !strings.Contains(rst[0].Reason, "6 bytes when last sampled") {
		t.Errorf("RSTs %+v: want one on c2, unread data, the kernel's TCP_ABORT_ON_CLOSE", rst)
	}
}

// TestAdoptProgramServer: a listener the peer did not make is followed, and
// the connections it accepts.
func TestAdoptProgramServer(t *testing.T) {
	lab, w, p := newAdoptLab(t, "server")
	lfd := -1
	err := w.Do(func() error {
		var err error
		lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: 8080}); err != nil {
			return err
		}
		return unix.Listen(lfd, 8)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := lab.Client.Peer().Dial(ctx, netip.AddrPortFrom(p.Addr(), 8080), 0)
	if err != nil {
		t.Fatal(err)
	}
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(50 * time.Millisecond)
	unix.Close(nfd)
	unix.Close(lfd)
	time.Sleep(50 * time.Millisecond)
	p.Sync()
	states := map[string]string{}
	var fin []trace.Event
	for _, e := range lab.Trace.Events() {
		if e.Host == "server" && e.Kind == trace.State {
			states[e.Conn] += e.From + ">" + e.To + " "
		}
		if e.Host == "server" && e.Kind == trace.Segment && e.Dir == "out" && strings.Contains(e.Flags, "F") {
			fin = append(fin, e)
		}
	}
	t.Logf("states: %v", states)
	if states["l1"] != "CLOSED>LISTEN LISTEN>CLOSED " {
		t.Errorf("listener states %q", states["l1"])
	}
	if !strings.Contains(states["c1"], "SYN-RECEIVED>ESTABLISHED ESTABLISHED>CLOSE-WAIT CLOSE-WAIT>LAST-ACK") {
		t.Errorf("accepted connection states %q", states["c1"])
	}
	// The FIN leaves in LAST-ACK, which lasts a round trip: sock_diag may
	// no longer see the socket when the FIN is recorded, and then the
	// reason must say the call was not seen rather than guess.
	if len(fin) != 1 || !(strings.Contains(fin[0].Reason, "close()") || strings.Contains(fin[0].Reason, "which call was not seen")) || strings.Contains(fin[0].Reason, "SHUT_WR") {
		t.Errorf("FINs %+v: want one, close() inferred or the call not seen", fin)
	}
}

// TestAdoptProgramCalls: a real program's socket calls (package
// tun/calltrace) are recorded on their connection, and its close() gives
// the RST's exact unread bytes.
func TestAdoptProgramCalls(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("skipping: no python3 to play the program")
	}
	lab, w, p := newAdoptLab(t, "client")
	if p.calls == nil {
		t.Skip("skipping: the program's calls cannot be traced here (see the trace's note)")
	}
	ctx := context.Background()
	srv := lab.Server.Peer()
	l, err := srv.Listen(9527, 0)
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
import socket, time
s = socket.create_connection(("%s", 9527))
s.sendall(b"hello")
time.sleep(0.3)
s.close()
`, srv.Addr())
	proc, err := program.Start(w, exec.Command("python3", "-c", src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, []byte("unread")); err != nil {
		t.Fatal(err)
	}
	if st, _, err := proc.Wait(); err != nil || st.ExitStatus() != 0 {
		t.Fatalf("program: %v %v", st, err)
	}
	time.Sleep(50 * time.Millisecond)
	p.Sync()
	var calls []string
	var rst []trace.Event
	for _, e := range lab.Trace.Events() {
		switch {
		case e.Host == "client" && e.Kind == trace.Call:
			calls = append(calls, fmt.Sprintf("%s %s(%s)=%d%s", e.Conn, e.Call, e.Arg, e.Ret, e.Err))
		case e.Host == "client" && e.Kind == trace.Segment && e.Dir == "out" && strings.Contains(e.Flags, "R"):
			rst = append(rst, e)
		}
	}
	got := strings.Join(calls, " ")
	if want := fmt.Sprintf("c1 connect(%v:9527)=0 c1 sendto(5)=5 c1 close()=0", srv.Addr()); got != want {
		t.Errorf("the program's calls %q, want %q", got, want)
	}
	if len(rst) != 1 || !strings.HasPrefix(rst[0].Reason, "close() with 6 unread bytes") {
		t.Errorf("RSTs %+v: want one, from close() with the 6 unread bytes the call saw", rst)
	}
}

// TestAdoptSampled: without the eBPF observer (Config.Sample), a program's
// connection is still followed: its segments (the gVisor host's view),
// states from sock_diag, and a RST on the connection's record.
func TestAdoptSampled(t *testing.T) {
	needPrivileges(t)
	w, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lab, err := stack.NewLab(w, stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewConfig(w, "client", lab.Trace, Config{Adopt: true, Sample: true})
	if err != nil {
		lab.Close()
		t.Fatal(err)
	}
	defer lab.Close()
	defer p.Close()
	ctx := context.Background()
	srv := lab.Server.Peer()
	l, err := srv.Listen(9527, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd := programSocket(t, w, netip.AddrPortFrom(srv.Addr(), 9527))
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Write(ctx, []byte("unread"))
	time.Sleep(50 * time.Millisecond)
	unix.Close(fd)
	time.Sleep(50 * time.Millisecond)
	states, rst := "", 0
	for _, e := range lab.Trace.Events() {
		if e.Host != "client" {
			continue
		}
		if e.Kind == trace.State && e.Conn == "c1" {
			states += e.To + " "
		}
		if e.Kind == trace.Segment && e.Dir == "out" && strings.Contains(e.Flags, "R") && e.Conn == "c1" {
			rst++
		}
	}
	if !strings.Contains(states, "ESTABLISHED") || !strings.HasSuffix(states, "CLOSED ") || rst != 1 {
		t.Errorf("sampled program connection: states %q, %d RSTs on c1; want ESTABLISHED ... CLOSED and one", states, rst)
	}
}
