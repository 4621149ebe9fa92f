package kernelpeer

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
)

// needPrivileges skips the test only when tun.Check says root or the TUN
// driver is missing; any other failure of Check fails the test.
func needPrivileges(t testing.TB) {
	t.Helper()
	if err := tun.Check(); err != nil {
		if errors.Is(err, tun.ErrNeedRoot) || errors.Is(err, tun.ErrNoTUN) {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("tun.Check: %v", err)
	}
}

// kernelLab is a TUN lab with the kernel on one side; everything is
// released when the test ends.
type kernelLab struct {
	lab  *stack.Lab
	peer *Peer
}

func newKernelLab(t testing.TB, side string, s *scenario.Script) *kernelLab {
	t.Helper()
	needPrivileges(t)
	tc, cfg := tun.Config{}, stack.Config{}
	if s != nil {
		cfg = s.HostConfig()
		for _, kv := range s.KernelSettings() {
			tc.Sysctls = append(tc.Sysctls, tun.Sysctl{Key: kv[0], Value: kv[1]})
		}
	}
	w, err := tun.New(context.Background(), tc)
	if err != nil {
		t.Fatalf("tun.New: %v", err)
	}
	lab, err := stack.NewLab(w, cfg, false)
	if err != nil {
		t.Fatalf("stack.NewLab: %v", err)
	}
	p, err := New(w, side, lab.Trace)
	if err != nil {
		lab.Close()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Peer.Close: %v", err)
		}
		if err := lab.Close(); err != nil {
			t.Errorf("Lab.Close: %v", err)
		}
	})
	return &kernelLab{lab: lab, peer: p}
}

// scenarioLab is the lab as the scenario runner drives it.
func (k *kernelLab) scenarioLab() scenario.Lab {
	sl := scenario.Lab{Client: k.lab.Client.Peer(), Server: k.lab.Server.Peer(), Trace: k.lab.Trace, Faults: k.lab}
	if in, ok := k.lab.Wire.(stack.Injector); ok {
		sl.Inject = in
	}
	if k.peer.Name() == "client" {
		sl.Client = k.peer
	} else {
		sl.Server = k.peer
	}
	return sl
}

// kernelDifferences are the expectations of the catalogue that Linux
// 6.x does not meet, by scenario and kernel side, with why. Every other
// expectation of a judged scenario (see judged) must hold.
var kernelDifferences = map[string]map[string]string{
	"close/client": {
		`expect client sent R. reason ~ "after close()"`: "Linux answers data for an orphan with [R] (no ACK flag), gVisor with [R.]",
		`expect client sent R. count 1`:                  "the same RST, without the ACK flag",
	},
	"rst-in-time-wait/client": {
		`expect client final TIME-WAIT`: "Linux's tcp_rfc1337 is 0 by default: a RST ends TIME-WAIT at once; gVisor follows RFC 1337",
	},
	"shutdown-rd/server": {
		`expect server sent R. reason ~ "after close()"`: "Linux answers data for an orphan with [R] (no ACK flag)",
	},
	"shutdown-rdwr/server": {
		`expect server sent R. reason ~ "3 unread bytes"`:     "Linux shutdown(SHUT_RDWR) sends FIN even with unread data; only close() resets",
		`client read                 expect error ECONNRESET`: "so the peer reads EOF",
	},
}

// judged reports whether every expectation of s not listed above must hold
// with the kernel: not when the script sets gVisor's timers ("config
// timewait/finwait2": Linux keeps its 60 s) or injects wire faults (they act
// on the gVisor hosts' links only), where failures are logged.
func judged(s *scenario.Script) (bool, string) {
	if s.TimeWait != 0 || s.FinWait2 != 0 {
		return false, "config timewait/finwait2 set gVisor's timers only; Linux keeps 60 s"
	}
	if s.UsesNet() {
		return false, "net conditions are netem on the gVisor hosts' devices: not what the kernel receives, and absent from kernels without sch_netem"
	}
	for _, st := range s.Steps {
		if _, ok := st.(*scenario.Wire); ok {
			return false, "wire faults act on the gVisor hosts' links only: the kernel's segments are not held or dropped"
		}
	}
	return true, ""
}

// TestCatalogue runs every built-in scenario with the kernel as client and
// as server: the kernel-agnostic expectations must hold.
func TestCatalogue(t *testing.T) {
	needPrivileges(t)
	for _, name := range scenario.Names() {
		for _, side := range []string{"client", "server"} {
			t.Run(name+"/"+side, func(t *testing.T) {
				t.Parallel()
				s, err := scenario.Builtin(name)
				if err != nil {
					t.Fatal(err)
				}
				k := newKernelLab(t, side, s)
				start := time.Now()
				res := scenario.Run(context.Background(), s, k.scenarioLab(), scenario.Options{})
				t.Logf("%s with the kernel as %s: %d expectations, %d failed, %.2fs", name, side, res.Checked, len(res.Failures), time.Since(start).Seconds())
				known := kernelDifferences[name+"/"+side]
				ok, why := judged(s)
				for _, f := range res.Failures {
					switch w, listed := known[f.Step]; {
					case listed:
						t.Logf("known difference: %s: %s (%s)", f.Step, f.Msg, w)
					case !ok:
						t.Logf("not judged (%s): %v", why, f)
					default:
						t.Errorf("kernel-agnostic expectation failed: %v", f)
					}
				}
			})
		}
	}
}

// TestCloseKernelClientRST is the article's experiment with a Linux
// client: close() while the server still works, then the server's answer
// meets the orphan and the kernel resets the connection.
func TestCloseKernelClientRST(t *testing.T) {
	s, err := scenario.Builtin("close")
	if err != nil {
		t.Fatal(err)
	}
	k := newKernelLab(t, "client", s)
	scenario.Run(context.Background(), s, k.scenarioLab(), scenario.Options{})
	events := k.lab.Trace.Events()

	var fin, data, rst, serverEOF int = -1, -1, -1, -1
	rsts := 0
	for i, e := range events {
		switch {
		case e.Kind == trace.Segment && e.Host == "client" && e.Dir == "out" && strings.Contains(e.Flags, "F") && fin < 0:
			fin = i
			if !strings.Contains(e.Reason, "close()") {
				t.Errorf("FIN reason %q, want close()", e.Reason)
			}
		case e.Kind == trace.Segment && e.Host == "server" && e.Dir == "out" && e.Len == 7:
			data = i
		case e.Kind == trace.Segment && e.Host == "client" && e.Dir == "out" && strings.Contains(e.Flags, "R"):
			rsts++
			rst = i
			t.Logf("kernel client sent [%s]: %s", e.Flags, e.Reason)
			if !strings.Contains(e.Reason, "after close()") || !strings.Contains(e.Reason, "kernel: ") {
				t.Errorf("RST reason %q: want the story (after close()) and the kernel's evidence", e.Reason)
			}
		case e.Kind == trace.Call && e.Host == "server" && e.Call == "read" && e.Err == "EOF":
			serverEOF = i
		case e.Kind == trace.State && e.Host == "client" && e.To == "TIME-WAIT":
			t.Errorf("the kernel client reached TIME-WAIT: %+v", e)
		case e.Kind == trace.Segment && e.Host == "server" && e.Dir == "out" && strings.Contains(e.Flags, "F"):
			t.Errorf("the server sent a FIN: %+v", e)
		}
	}
	if fin < 0 || data < 0 || rst < 0 || serverEOF < 0 {
		t.Fatalf("missing events: FIN %d, data %d, RST %d, server EOF %d", fin, data, rst, serverEOF)
	}
	if rsts != 1 {
		t.Errorf("kernel client sent %d RSTs, want 1", rsts)
	}
	if !(fin < data && data < rst) {
		t.Errorf("order: FIN at %d, data at %d, RST at %d", fin, data, rst)
	}
	// The kernel's RST, observed when the kernel sent it, comes before
	// the gVisor server receives it, with nothing of the server between.
	recv := -1
	for i := rst + 1; i < len(events); i++ {
		e := events[i]
		if e.Host == "server" {
			if e.Dir == "in" && strings.Contains(e.Flags, "R") {
				recv = i
			}
			break
		}
	}
	if recv < 0 {
		t.Errorf("the first server event after the kernel's RST (at %d) is not its arrival: %+v", rst, events[rst+1:min(rst+4, len(events))])
	}
}

// TestBlockingCallsCancel checks that a blocking read and accept return
// when their context ends, and that no goroutine is left behind.
func TestBlockingCallsCancel(t *testing.T) {
	k := newKernelLab(t, "server", nil)
	before := runtime.NumGoroutine()
	l, err := k.peer.Listen(9000, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := l.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Accept took %v to notice its context", d)
	}
	go func() {
		c, err := k.lab.Client.Dial(context.Background(), netipPort(k.peer, 9000))
		if err == nil {
			c.Write(context.Background(), []byte("x"))
		}
	}()
	sock, err := l.Accept(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, err := sock.Read(context.Background(), buf)
	if err != nil || string(buf[:n]) != "x" {
		t.Fatalf("Read = %d %q %v", n, buf[:n], err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := sock.Read(ctx2, buf); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read: %v, want DeadlineExceeded", err)
	}
	if err := sock.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sock.Read(context.Background(), buf); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Read after close: %v, want EBADF", err)
	}
	time.Sleep(50 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines: %d before, %d after", before, after)
	}
}

// TestReadEOFAndStates checks read's EOF, the states of an active close
// and Ledger, with the kernel as client.
func TestReadEOFAndStates(t *testing.T) {
	k := newKernelLab(t, "client", nil)
	l, err := k.lab.Server.Listen(9100, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := k.peer.Dial(ctx, k.lab.ServerAddr(9100), 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.State(); st != "ESTABLISHED" {
		t.Errorf("State = %s, want ESTABLISHED", st)
	}
	if _, err := c.Write(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := srv.Read(ctx, buf); err != nil || n != 5 {
		t.Fatalf("server Read = %d, %v", n, err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(ctx, buf)
	if n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want 0, EOF", n, err)
	}
	if got := stack.ErrName(err); got != "EOF" {
		t.Errorf("ErrName = %q", got)
	}
	if st := c.State(); st != "CLOSE-WAIT" {
		t.Errorf("State = %s, want CLOSE-WAIT", st)
	}
	led := c.Ledger()
	if led.Written != 5 || led.SndQueued != 0 || led.RcvQueued != 0 {
		t.Errorf("Ledger = %+v", led)
	}
	if err := c.Shutdown(stack.ShutWR); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for c.State() != "CLOSED" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := c.State(); st != "CLOSED" {
		t.Errorf("State = %s, want CLOSED after the last ACK", st)
	}
	k.peer.Sync() // the kernel's last events reach the trace
	var states []string
	for _, e := range k.lab.Trace.Events() {
		if e.Kind == trace.State && e.Host == "client" && e.Conn == c.ID() {
			states = append(states, e.To)
		}
	}
	want := "SYN-SENT ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED"
	if got := strings.Join(states, " "); got != want {
		t.Errorf("client states %q, want %q", got, want)
	}
}

func netipPort(p *Peer, port uint16) netip.AddrPort { return netip.AddrPortFrom(p.Addr(), port) }

func TestStateName(t *testing.T) {
	for n, want := range map[uint8]string{1: "ESTABLISHED", 2: "SYN-SENT", 3: "SYN-RECEIVED", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
		6: "TIME-WAIT", 7: "CLOSED", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING", 12: "SYN-RECEIVED", 99: "CLOSED"} {
		if got := StateName(n); got != want {
			t.Errorf("StateName(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestParseNetstat(t *testing.T) {
	b := []byte("TcpExt: SyncookiesSent TCPAbortOnData TCPAbortOnClose\nTcpExt: 0 3 4\nIpExt: InNoRoutes\nIpExt: 7\n")
	m := parseNetstat(b, "TcpExt:")
	if m["TCPAbortOnData"] != 3 || m["TCPAbortOnClose"] != 4 || len(m) != 3 {
		t.Errorf("parseNetstat = %v", m)
	}
}

func TestQueues(t *testing.T) {
	for _, c := range []struct {
		info     diagInfo
		snd, rcv int
	}{
		{diagInfo{state: 1, wqueue: 3, rqueue: 2}, 3, 2},
		{diagInfo{state: 4, wqueue: 4}, 3, 0}, // FIN-WAIT-1: the FIN is not data
		{diagInfo{state: 8, rqueue: 1}, 0, 0}, // CLOSE-WAIT: nor is the peer's
		{diagInfo{state: 9, wqueue: 1, rqueue: 1}, 0, 0},
		{diagInfo{state: 10, rqueue: 5}, 0, 0}, // LISTEN: backlog, not bytes
	} {
		if snd, rcv := queues(c.info, true); snd != c.snd || rcv != c.rcv {
			t.Errorf("queues(%+v) = %d, %d; want %d, %d", c.info, snd, rcv, c.snd, c.rcv)
		}
	}
}

// TestCloseLeavesNothing checks that Peer.Close frees the connections the
// kernel still has (open sockets and orphans) without the other host
// seeing a teardown RST.
func TestCloseLeavesNothing(t *testing.T) {
	needPrivileges(t)
	w, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lab, err := stack.NewLab(w, stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	p, err := New(w, "client", lab.Trace)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := lab.Server.Listen(9200, 0)
	if err != nil {
		t.Fatal(err)
	}
	var socks []stack.Socket
	for i := 0; i < 2; i++ {
		c, err := p.Dial(ctx, lab.ServerAddr(9200), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Accept(ctx); err != nil {
			t.Fatal(err)
		}
		c.Write(ctx, []byte("unacked?"))
		socks = append(socks, c)
	}
	// One stays open; the other becomes an orphan that stays in
	// FIN-WAIT-1, since the server's segments are held from now on (and
	// never released: the lab drops them when it closes).
	lab.Server.Hold()
	socks[1].Close()
	time.Sleep(20 * time.Millisecond)
	if a, b := socks[0].State(), socks[1].State(); a != "ESTABLISHED" || b != "FIN-WAIT-1" {
		t.Errorf("before Close: %s and %s, want ESTABLISHED and an orphan in FIN-WAIT-1", a, b)
	}
	n := lab.Trace.Len()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	for _, e := range lab.Trace.Events()[n:] {
		if e.Kind == trace.Segment && e.Dir == "in" && strings.Contains(e.Flags, "R") {
			t.Errorf("the server saw a teardown RST: %+v", e)
		}
	}
	var d *diagSocket
	if err := w.Do(func() error { var err error; d, err = openDiag(); return err }); err != nil {
		t.Fatal(err)
	}
	defer d.close()
	for _, s := range socks {
		ks := s.(*Socket)
		if info, found, err := d.get(ks.LocalAddr(), ks.RemoteAddr()); err != nil || (found && info.timer != diagTimerTW) {
			t.Errorf("%s still in the kernel after Close: %s (err %v)", ks.ID(), StateName(info.state), err)
		}
	}
}
