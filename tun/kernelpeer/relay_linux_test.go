package kernelpeer

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
)

// TestRelayPeers: a relay's two legs (a listener on 0.0.0.0 that the gVisor
// client reaches at 198.18.1.1, a connection from 198.18.2.1 to the gVisor
// server) are recorded once each under the name "relay": one listener, the
// accepted connection c1 with the client, the relay's own c2 with the
// server, and no kernel event under the gVisor hosts' names.
func TestRelayPeers(t *testing.T) {
	needPrivileges(t)
	w, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatalf("tun.New: %v", err)
	}
	lab, err := stack.NewLab(w, stack.Config{}, false)
	if err != nil {
		t.Fatalf("stack.NewLab: %v", err)
	}
	a, c, release, err := NewRelayPeers(w, "relay", lab.Trace)
	if err != nil {
		lab.Close()
		t.Fatalf("NewRelayPeers: %v", err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Errorf("release: %v", err)
		}
		if err := lab.Close(); err != nil {
			t.Errorf("Lab.Close: %v", err)
		}
	})
	if a.(*Peer).obs == nil || c.(*Peer).obs == nil {
		t.Skip("skipping: the eBPF observer is not available (the trace notes why); adoption follows the kernel's tracepoints")
	}
	if a.Name() != "relay" || c.Name() != "relay" || a.Addr() != netip.MustParseAddr("198.18.1.1") || c.Addr() != netip.MustParseAddr("198.18.2.1") {
		t.Fatalf("peers %s %v and %s %v: want relay on 198.18.1.1 and 198.18.2.1", a.Name(), a.Addr(), c.Name(), c.Addr())
	}
	ctx := context.Background()
	srv := lab.Server.Peer()
	l, err := srv.Listen(9000, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The relay: listen on 0.0.0.0:7000 as socat does.
	lfd := -1
	err = w.Do(func() error {
		var err error
		if lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: 7000}); err != nil {
			return err
		}
		return unix.Listen(lfd, 8)
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := lab.Client.Peer().Dial(ctx, netip.AddrPortFrom(a.Addr(), 7000), 0)
	if err != nil {
		t.Fatal(err)
	}
	front, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	back := programSocket(t, w, netip.AddrPortFrom(srv.Addr(), 9000))
	sv, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The client half-closes; the relay passes it on; everybody closes.
	if err := cl.Shutdown(stack.ShutWR); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Read(front, buf); n != 0 || err != nil {
		t.Fatalf("relay read %d, %v: want EOF", n, err)
	}
	if err := unix.Shutdown(back, unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	if n, err := sv.Read(ctx, buf); n != 0 || err == nil {
		t.Logf("server read %d, %v", n, err)
	}
	sv.Close()
	cl.Close()
	for _, fd := range []int{back, front, lfd} {
		unix.Close(fd)
	}
	time.Sleep(50 * time.Millisecond)
	a.(*Peer).Sync()
	c.(*Peer).Sync()

	listens, legs := 0, map[string]bool{}
	for _, e := range lab.Trace.Events() {
		if e.Host != "relay" {
			if e.Kind == trace.Note && strings.Contains(e.Text, "kernel side") {
				t.Errorf("a kernel note under host %s: %q", e.Host, e.Text)
			}
			continue
		}
		if e.Kind == trace.State && e.To == "LISTEN" {
			listens++
		}
		if e.Kind == trace.Segment {
			remote := e.Dst
			if e.Dir == "in" {
				remote = e.Src
			}
			legs[e.Conn+" "+strings.Split(remote, ":")[0]] = true
		}
	}
	if listens != 1 {
		t.Errorf("the relay's listener reached LISTEN %d times in the trace, want once (only the accepting leg follows it)", listens)
	}
	if len(legs) != 2 || !legs["c1 198.18.1.2"] || !legs["c2 198.18.2.2"] {
		t.Errorf("the relay's segments by connection and peer: %v; want c1 with the client, c2 with the server", legs)
	}
}
