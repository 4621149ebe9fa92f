package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
)

// packetSocket opens an AF_PACKET socket on every interface of the lab's
// namespace: an independent witness of the wire. It returns the fd.
func packetSocket(t *testing.T, l *tun.Lab) int {
	t.Helper()
	fd := -1
	err := l.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		return err
	})
	if err != nil {
		t.Fatalf("AF_PACKET socket in the lab namespace: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// drain reads every packet waiting on fd and returns the TCP segments as
// "src > dst [flags] seq ack len".
func drain(t *testing.T, fd int) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatalf("recvfrom: %v", err)
		}
		ip := header.IPv4(buf[:n])
		if n < header.IPv4MinimumSize || !ip.IsValid(n) || ip.TransportProtocol() != header.TCPProtocolNumber {
			continue
		}
		tcp := header.TCP(ip.Payload())
		if len(tcp) < header.TCPMinimumSize {
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d > %s:%d [%s] seq %d ack %d len %d",
			ip.SourceAddress(), tcp.SourcePort(), ip.DestinationAddress(), tcp.DestinationPort(),
			stack.FlagString(tcp.Flags()), tcp.SequenceNumber(), tcp.AckNumber(), len(tcp)-int(tcp.DataOffset())))
	}
}

// traced returns the segments the hosts recorded as sent, in drain's
// notation.
func traced(events []trace.Event) map[string]bool {
	m := map[string]bool{}
	for _, e := range events {
		if e.Kind == trace.Segment && e.Dir == "out" {
			m[fmt.Sprintf("%s > %s [%s] seq %d ack %d len %d", e.Src, e.Dst, e.Flags, e.Seq, e.Ack, e.Len)] = true
		}
	}
	return m
}

// TestIntegrationTeardownSendsNothing runs scenarios that leave connections
// open at the end (TIME-WAIT, FIN-WAIT-2, CLOSING) over TUN with an
// AF_PACKET capture in the lab namespace, closes the lab, and checks that
// the wire carried nothing the trace lacks: before the fix, destroying the
// stacks aborted those connections with [R.] that only tcpdump saw (issue 8
// finding 1).
func TestIntegrationTeardownSendsNothing(t *testing.T) {
	needTUN(t)
	for _, name := range []string{"shutdown", "simultaneous-close", "lost-fin"} {
		t.Run(name, func(t *testing.T) {
			s, err := scenario.Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			w, err := tun.New(ctx, tun.Config{})
			if err != nil {
				t.Fatal(err)
			}
			fd := packetSocket(t, w)
			lab, err := stack.NewLab(w, stack.Config{TimeWait: s.TimeWait, FinWait2Timeout: s.FinWait2}, false)
			if err != nil {
				t.Fatal(err)
			}
			res := scenario.Run(ctx, s, scenario.Lab{Client: lab.Client.Peer(), Server: lab.Server.Peer(), Trace: lab.Trace, Faults: lab}, scenario.Options{})
			for _, f := range res.Failures {
				t.Errorf("%v", f)
			}
			open := 0
			for _, h := range []*stack.Host{lab.Client, lab.Server} {
				for _, c := range h.Conns() {
					if st := c.State(); st != "CLOSED" {
						open++
					}
				}
			}
			if open == 0 {
				t.Errorf("no connection is still open at the end: the test proves nothing")
			}
			if err := lab.Close(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // anything late reaches the socket
			seen := drain(t, fd)
			if len(seen) == 0 {
				t.Fatal("the capture saw no packet at all")
			}
			want := traced(lab.Trace.Events())
			for _, p := range seen {
				if !want[p] {
					t.Errorf("on the wire but not in the trace: %s", p)
				}
			}
		})
	}
	assertNothingLeft(t)
}
