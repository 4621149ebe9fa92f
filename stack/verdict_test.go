package stack_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// hostile is an established connection on the memory wire with some data
// delivered each way, and what a forger needs to hit the server's side.
type hostile struct {
	t      *testing.T
	lab    *stack.Lab
	c, s   *stack.Conn
	server *channel.Endpoint
	// rcvNxt is the server's RCV.NXT, sndNxt its SND.NXT (absolute).
	rcvNxt, sndNxt uint32
}

func newHostile(t *testing.T) *hostile {
	t.Helper()
	lab, c, s := connected(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Write(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := s.Read(ctx, buf); n != 5 || err != nil {
		t.Fatalf("server read = %d, %v", n, err)
	}
	// Let the last ACK settle: the client's last segment carries
	// the server's RCV.NXT (seq+len) and SND.NXT (ack).
	var last trace.Event
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if l := s.Ledger(); l.Received != 5 {
			continue
		}
		for _, e := range lab.Trace.Events() {
			if e.Kind == trace.Segment && e.Host == "client" && e.Dir == "out" {
				last = e
			}
		}
		break
	}
	if last.Flags == "" {
		t.Fatal("no segment from the client")
	}
	_, sl := lab.Wire.Links()
	return &hostile{t: t, lab: lab, c: c, s: s, server: sl.Endpoint.(*channel.Endpoint),
		rcvNxt: last.Seq + uint32(last.Len), sndNxt: last.Ack}
}

// packet builds an IPv4/TCP packet from the client's side of the
// connection to the server's, with valid checksums.
func (h *hostile) packet(flags header.TCPFlags, seq, ack uint32, payload []byte) []byte {
	src, dst := h.c.LocalAddr(), h.c.RemoteAddr()
	sa, da := tcpip.AddrFromSlice(src.Addr().AsSlice()), tcpip.AddrFromSlice(dst.Addr().AsSlice())
	tcpLen := header.TCPMinimumSize + len(payload)
	b := make([]byte, header.IPv4MinimumSize+tcpLen)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: sa, DstAddr: da})
	ip.SetChecksum(^ip.CalculateChecksum())
	t := header.TCP(b[header.IPv4MinimumSize:])
	t.Encode(&header.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: seq, AckNum: ack,
		DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 1000})
	copy(b[header.IPv4MinimumSize+header.TCPMinimumSize:], payload)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, sa, da, uint16(tcpLen))
	xsum = checksum.Checksum(payload, xsum)
	t.SetChecksum(^t.CalculateChecksum(xsum))
	return b
}

// inject hands b to the server's link as if the wire delivered it and
// returns the server's arrival event for it, verdict included.
func (h *hostile) inject(b []byte) trace.Event {
	h.t.Helper()
	mark := h.lab.Trace.Len()
	pkt := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	h.server.InjectInbound(header.IPv4ProtocolNumber, pkt)
	pkt.DecRef()
	for _, e := range h.lab.Trace.Events()[mark:] {
		if e.Kind == trace.Segment && e.Host == "server" && e.Dir == "in" && e.Src == h.c.LocalAddr().String() {
			return e
		}
	}
	h.t.Fatal("the server's tap did not record the injected packet")
	return trace.Event{}
}

// answer waits up to 2 s for the server's answer to arrival: its first
// segment after it that gives a reason, else its first segment.
func (h *hostile) answer(arrival trace.Event) trace.Event {
	h.t.Helper()
	var first *trace.Event
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		for _, e := range h.lab.Trace.Events()[arrival.Index+1:] {
			if e.Kind == trace.Segment && e.Host == "server" && e.Dir == "out" {
				if e.Reason != "" {
					return e
				}
				if first == nil {
					first = &e
				}
			}
		}
	}
	if first == nil {
		h.t.Fatal("the server did not answer")
		return trace.Event{}
	}
	return *first
}

// refused checks an arrival's verdict.
func refused(t *testing.T, e trace.Event, why string, observed bool) {
	t.Helper()
	if e.Verdict != trace.Refused || e.Why != why || e.Observed != observed {
		t.Errorf("arrival [%s] seq %d: verdict %q why %q observed %v (%s), want refused %q observed %v",
			e.Flags, e.Seq, e.Verdict, e.Why, e.Observed, e.Evidence, why, observed)
	}
	if !e.Refused() {
		t.Errorf("Event.Refused() = false for %+v", e)
	}
}

// unchanged checks that a refused arrival left the server's ledger as it
// was, and waits a little for the stack to have handled it.
func (h *hostile) unchanged(before stack.Ledger) {
	h.t.Helper()
	time.Sleep(50 * time.Millisecond)
	after := h.s.Ledger()
	if after.Received != before.Received || after.Acked != before.Acked || after.Discarded != nil || after.RcvQueued != before.RcvQueued {
		h.t.Errorf("ledger changed by a refused segment: before %+v, after %+v", before, after)
	}
	if st := h.s.State(); st != "ESTABLISHED" {
		h.t.Errorf("server state = %s, want ESTABLISHED", st)
	}
}

func TestVerdictInWindowRSTWrongSeq(t *testing.T) {
	h := newHostile(t)
	before := h.s.Ledger()
	e := h.inject(h.packet(header.TCPFlagRst|header.TCPFlagAck, h.rcvNxt+100, h.sndNxt, nil))
	refused(t, e, trace.WhyChallenge, false)
	a := h.answer(e)
	if a.Flags != "." || !strings.HasPrefix(a.Reason, "answers a refused segment: challenge ACK (RFC 5961)") {
		t.Errorf("answer [%s] reason %q, want a challenge ACK explained", a.Flags, a.Reason)
	}
	if a.Ack != h.rcvNxt {
		t.Errorf("challenge ACK acks %d, want RCV.NXT %d", a.Ack, h.rcvNxt)
	}
	h.unchanged(before)
}

func TestVerdictExactRST(t *testing.T) {
	h := newHostile(t)
	e := h.inject(h.packet(header.TCPFlagRst|header.TCPFlagAck, h.rcvNxt, h.sndNxt, nil))
	if e.Verdict != trace.Accepted || e.Refused() {
		t.Errorf("exact RST: verdict %q why %q (%s), want accepted", e.Verdict, e.Why, e.Evidence)
	}
	for end := time.Now().Add(2 * time.Second); h.s.State() != "CLOSED" && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.s.State(); st != "CLOSED" {
		t.Errorf("state after an exact RST = %s, want CLOSED", st)
	}
	if l := h.s.Ledger(); l.Discarded == nil || l.Discarded.By != "RST received" {
		t.Errorf("ledger = %+v, want the connection destroyed by the RST received", l)
	}
}

func TestVerdictSYNOnLiveConnection(t *testing.T) {
	h := newHostile(t)
	before := h.s.Ledger()
	// An ISN 3.69 GB away: booked, it would rebase the relative numbers.
	e := h.inject(h.packet(header.TCPFlagSyn, h.rcvNxt-3_690_000_000, 0, nil))
	refused(t, e, trace.WhyChallenge, false)
	a := h.answer(e)
	if a.Flags != "." || !strings.Contains(a.Reason, "challenge ACK (RFC 5961): SYN") {
		t.Errorf("answer [%s] reason %q, want a challenge ACK for the SYN", a.Flags, a.Reason)
	}
	h.unchanged(before)
	// Relative numbers: the data that follows counts from the real ISN.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.c.Write(ctx, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(2 * time.Second); h.s.Ledger().Received != 8 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := h.s.Ledger().Received; got != 8 {
		t.Errorf("received after the SYN = %d, want 8 (5 + 3, counted from the real ISN)", got)
	}
}

func TestVerdictBadChecksum(t *testing.T) {
	h := newHostile(t)
	before := h.s.Ledger()
	b := h.packet(header.TCPFlagPsh|header.TCPFlagAck, h.rcvNxt, h.sndNxt, []byte("forged"))
	b[len(b)-1] ^= 0xff // the payload no longer matches the checksum
	e := h.inject(b)
	refused(t, e, trace.WhyBadChecksum, true)
	if !strings.Contains(e.Evidence, "ChecksumErrors +1") {
		t.Errorf("evidence %q, want the stack's ChecksumErrors counter", e.Evidence)
	}
	h.unchanged(before)
}

func TestVerdictTruncatedHeader(t *testing.T) {
	h := newHostile(t)
	before := h.s.Ledger()
	full := h.packet(header.TCPFlagAck, h.rcvNxt, h.sndNxt, nil)
	b := full[:header.IPv4MinimumSize+12] // 12 of the TCP header's 20 bytes
	ip := header.IPv4(b)
	ip.SetTotalLength(uint16(len(b)))
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	e := h.inject(b)
	refused(t, e, trace.WhyMalformed, true)
	if e.Conn != h.s.ID() {
		t.Errorf("arrival belongs to %q, want %q (the ports are there)", e.Conn, h.s.ID())
	}
	h.unchanged(before)
}

func TestVerdictFINBeyondWindow(t *testing.T) {
	h := newHostile(t)
	before := h.s.Ledger()
	e := h.inject(h.packet(header.TCPFlagFin|header.TCPFlagAck, h.rcvNxt+50_000_000, h.sndNxt, []byte("twelve bytes")))
	refused(t, e, trace.WhyOutOfWindow, false)
	a := h.answer(e)
	if a.Flags != "." || !strings.Contains(a.Reason, "outside the window") {
		t.Errorf("answer [%s] reason %q, want an ACK to a segment outside the window", a.Flags, a.Reason)
	}
	h.unchanged(before)
}

func TestVerdictNormalTrafficAccepted(t *testing.T) {
	h := newHostile(t)
	time.Sleep(100 * time.Millisecond) // an arrival in flight has no verdict yet
	for _, e := range h.lab.Trace.Events() {
		if e.Kind == trace.Segment && e.Dir == "in" && e.Verdict != trace.Accepted {
			t.Errorf("arrival %d [%s] on %s: verdict %q why %q (%s), want accepted", e.Index, e.Flags, e.Host, e.Verdict, e.Why, e.Evidence)
		}
	}
}

// inject hands b to host's link as if the wire delivered it and returns
// host's arrival event for it.
func injectInto(t *testing.T, lab *stack.Lab, host string, b []byte) trace.Event {
	t.Helper()
	cl, sl := lab.Wire.Links()
	ep := sl.Endpoint.(*channel.Endpoint)
	if host == "client" {
		ep = cl.Endpoint.(*channel.Endpoint)
	}
	mark := lab.Trace.Len()
	pkt := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	ep.InjectInbound(header.IPv4ProtocolNumber, pkt)
	pkt.DecRef()
	for _, e := range lab.Trace.Events()[mark:] {
		if e.Kind == trace.Segment && e.Host == host && e.Dir == "in" {
			return e
		}
	}
	t.Fatalf("the %s's tap did not record the injected packet", host)
	return trace.Event{}
}

func TestVerdictRSTInTimeWait(t *testing.T) {
	h := newHostile(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.c.Close()
	if n, err := h.s.Read(ctx, make([]byte, 8)); n != 0 || err == nil {
		t.Fatalf("server read after the client's FIN = %d, %v; want EOF", n, err)
	}
	h.s.Close()
	for end := time.Now().Add(2 * time.Second); h.c.State() != "TIME-WAIT" && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.c.State(); st != "TIME-WAIT" {
		t.Fatalf("client state = %s, want TIME-WAIT", st)
	}
	var fin trace.Event
	for _, e := range h.lab.Trace.Events() {
		if e.Kind == trace.Segment && e.Host == "server" && e.Dir == "out" && strings.Contains(e.Flags, "F") {
			fin = e
		}
	}
	before := h.c.Ledger()
	// An exact RST from the server's side: RCV.NXT of the client.
	src, dst := h.s.LocalAddr(), h.s.RemoteAddr()
	b := h.packet(header.TCPFlagRst, fin.Seq+uint32(fin.Len)+1, 0, nil)
	swap(b, src, dst)
	e := injectInto(t, h.lab, "client", b)
	refused(t, e, trace.WhyTimeWaitRST, false)
	time.Sleep(50 * time.Millisecond)
	if st := h.c.State(); st != "TIME-WAIT" {
		t.Errorf("client state after a RST in TIME-WAIT = %s, want TIME-WAIT (gVisor ignores it, RFC 1337)", st)
	}
	if l := h.c.Ledger(); l.Discarded != nil || l.Received != before.Received {
		t.Errorf("ledger changed by a refused RST: before %+v, after %+v", before, l)
	}
}

func TestVerdictNoConnection(t *testing.T) {
	h := newHostile(t)
	b := h.packet(header.TCPFlagAck|header.TCPFlagPsh, 1, 1, []byte("x"))
	header.TCP(b[header.IPv4MinimumSize:]).SetDestinationPort(9)
	fixChecksum(b)
	e := h.inject(b)
	refused(t, e, trace.WhyNoConnection, true)
	a := h.answer(e)
	if a.Flags != "R" || !strings.HasPrefix(a.Reason, "segment for no connection: nothing listens on port 9") {
		t.Errorf("answer [%s] reason %q, want a RST for no connection", a.Flags, a.Reason)
	}
}

// swap rewrites b's addresses and ports to go from src to dst, fixing the
// checksums.
func swap(b []byte, src, dst netip.AddrPort) {
	ip := header.IPv4(b)
	ip.SetSourceAddress(tcpip.AddrFromSlice(src.Addr().AsSlice()))
	ip.SetDestinationAddress(tcpip.AddrFromSlice(dst.Addr().AsSlice()))
	t := header.TCP(b[header.IPv4MinimumSize:])
	t.SetSourcePort(src.Port())
	t.SetDestinationPort(dst.Port())
	fixChecksum(b)
}

// fixChecksum recomputes the IPv4 and TCP checksums of b.
func fixChecksum(b []byte) {
	ip := header.IPv4(b)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	t := header.TCP(b[header.IPv4MinimumSize:])
	payload := b[header.IPv4MinimumSize+int(t.DataOffset()):]
	t.SetChecksum(0)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(b)-header.IPv4MinimumSize))
	xsum = checksum.Checksum(payload, xsum)
	t.SetChecksum(^t.CalculateChecksum(xsum))
}

// In SYN-SENT only a RST that acknowledges our SYN counts (RFC 793 p. 66).
func TestVerdictRSTInSynSent(t *testing.T) {
	lab, _, _ := connected(t)
	l, err := lab.Server.Listen(9600, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lab.Server.Hold() // the SYN-ACK stays with the server: the client stays in SYN-SENT
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dialed := make(chan error, 1)
	go func() {
		_, err := lab.Client.Dial(ctx, lab.ServerAddr(9600))
		dialed <- err
	}()
	var syn trace.Event
	for end := time.Now().Add(2 * time.Second); syn.Flags == "" && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		for _, e := range lab.Trace.Events() {
			if e.Kind == trace.Segment && e.Host == "client" && e.Dir == "out" && e.Flags == "S" && e.Dst == lab.ServerAddr(9600).String() {
				syn = e
			}
		}
	}
	if syn.Flags == "" {
		t.Fatal("the client sent no SYN")
	}
	src, _ := netip.ParseAddrPort(syn.Dst)
	dst, _ := netip.ParseAddrPort(syn.Src)
	rst := func(ack uint32) []byte {
		b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize)
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber)})
		header.TCP(b[header.IPv4MinimumSize:]).Encode(&header.TCPFields{SeqNum: 0, AckNum: ack, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagRst | header.TCPFlagAck})
		swap(b, src, dst)
		return b
	}
	e := injectInto(t, lab, "client", rst(syn.Seq+5))
	refused(t, e, trace.WhyBadACK, false)
	select {
	case err := <-dialed:
		t.Fatalf("Dial returned %v after a RST that does not acknowledge the SYN", err)
	case <-time.After(50 * time.Millisecond):
	}
	e = injectInto(t, lab, "client", rst(syn.Seq+1))
	if e.Verdict != trace.Accepted {
		t.Errorf("RST acknowledging the SYN: verdict %q why %q (%s), want accepted", e.Verdict, e.Why, e.Evidence)
	}
	if err := <-dialed; err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Dial after an acceptable RST = %v, want connection refused", err)
	}
	lab.Server.Release()
}
