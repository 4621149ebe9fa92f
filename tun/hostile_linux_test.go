package tun_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/tuntest"
)

// TestIntegrationHostileSegmentsOverTUN sends crafted segments from a raw
// socket in the lab namespace to the gVisor server of a live connection:
// they cross the kernel and the server's TUN device like any packet. The
// trace marks each arrival with gVisor's verdict and why, explains the
// answer, and refused segments change neither the ledger nor the state.
func TestIntegrationHostileSegmentsOverTUN(t *testing.T) {
	if err := tun.Check(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	w, err := tun.New(context.Background(), tun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lab, err := stack.NewLab(w, stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := lab.Server.Listen(9000, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lab.Client.Dial(ctx, lab.ServerAddr(9000))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, []byte("aaa")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Read(ctx, make([]byte, 16)); n != 3 || err != nil {
		t.Fatalf("server read = %d, %v", n, err)
	}
	time.Sleep(50 * time.Millisecond)
	var rcvNxt, sndNxt uint32
	for _, e := range lab.Trace.Events() {
		if e.Kind == trace.Segment && e.Host == "client" && e.Dir == "out" {
			rcvNxt, sndNxt = e.Seq+uint32(e.Len), e.Ack
		}
	}
	from, to := c.LocalAddr(), lab.ServerAddr(9000)
	before := s.Ledger()
	for _, tc := range []struct {
		name   string
		seg    tuntest.Segment
		why    string
		answer string // prefix of the answer's reason; "" for none checked
	}{
		{"bad checksum", tuntest.Segment{Flags: header.TCPFlagAck | header.TCPFlagPsh, Seq: rcvNxt, Ack: sndNxt, Win: 512, Payload: []byte("bad"), CsumDelta: 7}, trace.WhyBadChecksum, ""},
		{"truncated header", tuntest.Segment{Flags: header.TCPFlagAck, Seq: rcvNxt, Ack: sndNxt, Truncate: 12}, trace.WhyMalformed, ""},
		{"data 50 MB beyond the window", tuntest.Segment{Flags: header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin, Seq: rcvNxt + 50_000_000, Ack: sndNxt, Win: 512, Payload: []byte("far")}, trace.WhyOutOfWindow, "answers a refused segment: ACK to a segment outside the window"},
		{"in-window RST with a wrong seq", tuntest.Segment{Flags: header.TCPFlagRst, Seq: rcvNxt + 100}, trace.WhyChallenge, "answers a refused segment: challenge ACK (RFC 5961)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := tc.seg
			seg.Src, seg.Dst = from, to
			n := lab.Trace.Len()
			if err := tuntest.Inject(w, tuntest.Craft(seg)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond)
			var in *trace.Event
			answer := ""
			for _, e := range lab.Trace.Events()[n:] {
				switch {
				case in == nil && e.Kind == trace.Segment && e.Host == "server" && e.Dir == "in" && e.Seq == seg.Seq:
					e := e
					in = &e
				case in != nil && answer == "" && e.Kind == trace.Segment && e.Host == "server" && e.Dir == "out":
					answer = e.Reason
				}
			}
			if in == nil {
				t.Fatal("the server's arrival of the crafted segment is not in the trace")
			}
			t.Logf("verdict %s, why %q (%s: %s); answer %q", in.Verdict, in.Why, in.VerdictSource(), in.Evidence, answer)
			if in.Verdict != trace.Refused || in.Why != tc.why {
				t.Errorf("verdict %s %q, want refused %q", in.Verdict, in.Why, tc.why)
			}
			if tc.answer != "" && !strings.HasPrefix(answer, tc.answer) {
				t.Errorf("answer reason %q, want %q…", answer, tc.answer)
			}
			if st := s.State(); st != "ESTABLISHED" {
				t.Errorf("server state %s, want ESTABLISHED", st)
			}
			if l := s.Ledger(); l != before {
				t.Errorf("ledger %+v, was %+v: a refused segment changed it", l, before)
			}
		})
	}
}
