package scenario

import (
	"fmt"
	"math"
	"net/netip"
	"strings"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// inject parses what follows "inject": HOST FLAGS [seq N] [ack N] [win N]
// [data "..."] [on NAME] [abs].
func (p *lineParser) inject(start Pos) (*Inject, error) {
	in := &Inject{}
	in.set(start, p.text)
	var err error
	if in.Host, err = p.want("the host that receives the segment", hosts); err != nil {
		return nil, err
	}
	if in.Flags, err = p.flags(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for p.more() {
		at := p.pos()
		w, err := p.want("a field of the segment", []string{"seq", "ack", "win", "data", "on", "abs"})
		if err != nil {
			return nil, err
		}
		if seen[w] {
			return nil, &Error{at, w + " given twice"}
		}
		seen[w] = true
		switch w {
		case "seq":
			in.HasSeq = true
			in.Seq, err = p.number("a sequence number", math.MinInt32, math.MaxUint32)
		case "ack":
			in.HasAck = true
			in.Ack, err = p.number("an acknowledgement number", math.MinInt32, math.MaxUint32)
		case "win":
			var n int64
			n, err = p.number("a window", 0, 65535)
			in.Win, in.HasWin = int(n), true
		case "data":
			var s string
			s, err = p.str("the payload")
			if err == nil && len(s) > MaxInjectData {
				return nil, p.errorf("data of %d bytes: at most %d (one segment)", len(s), MaxInjectData)
			}
			in.Data = []byte(s)
		case "on":
			in.On, err = p.ident("the socket")
		case "abs":
			in.Abs = true
		}
		if err != nil {
			return nil, err
		}
	}
	if in.HasAck && !strings.Contains(in.Flags, ".") {
		return nil, &Error{start, "ack N needs the ACK flag (.) in FLAGS, e.g. R. or P."}
	}
	return in, nil
}

// connView is what the trace says about one of a host's connections: the
// addresses, the initial sequence numbers and the next sequence numbers of
// both directions.
type connView struct {
	local, remote         netip.AddrPort
	localISN, remoteISN   uint32
	haveLISN, haveRISN    bool
	localNext, remoteNext uint32
	peerWin               uint16
}

// viewConn reads the trace for host's connection conn.
func viewConn(events []trace.Event, host, conn string) (connView, error) {
	var v connView
	found := false
	for _, e := range events {
		if e.Kind != trace.Segment || e.Host != host || e.Conn != conn {
			continue
		}
		src, err1 := netip.ParseAddrPort(e.Src)
		dst, err2 := netip.ParseAddrPort(e.Dst)
		if err1 != nil || err2 != nil {
			continue
		}
		span := uint32(e.Len)
		if strings.Contains(e.Flags, "S") {
			span++
		}
		if strings.Contains(e.Flags, "F") {
			span++
		}
		if e.Dir == "out" {
			v.local, v.remote, found = src, dst, true
			if strings.Contains(e.Flags, "S") && !v.haveLISN {
				v.localISN, v.haveLISN, v.localNext = e.Seq, true, e.Seq
			}
			if end := e.Seq + span; int32(end-v.localNext) > 0 {
				v.localNext = end
			}
			continue
		}
		if e.Verdict == trace.Refused {
			continue
		}
		v.local, v.remote, found = dst, src, true
		if strings.Contains(e.Flags, "S") && !v.haveRISN {
			v.remoteISN, v.haveRISN, v.remoteNext = e.Seq, true, e.Seq
		}
		if end := e.Seq + span; int32(end-v.remoteNext) > 0 {
			v.remoteNext = end
		}
		v.peerWin = e.Win
	}
	if !found {
		return v, fmt.Errorf("the trace has no segment of %s's connection %s yet: nothing to inject into", host, conn)
	}
	return v, nil
}

// inject crafts the segment of an inject step from what the trace knows of
// the connection, notes it, and hands it to the wire.
func (r *runner) inject(in *Inject) error {
	if r.lab.Inject == nil {
		return fmt.Errorf("this wire cannot inject segments")
	}
	name := in.On
	if name == "" {
		name = r.latest[in.Host]
	}
	s := r.socks[in.Host][name]
	if s == nil {
		if name == "" {
			return fmt.Errorf("%s has no connection yet to inject into (connect or accept first)", in.Host)
		}
		return fmt.Errorf("%s has no socket named %q", in.Host, name)
	}
	v, err := viewConn(r.lab.Trace.Events(), in.Host, s.ID())
	if err != nil {
		return err
	}
	if !in.Abs && (!v.haveLISN || !v.haveRISN) {
		return fmt.Errorf("the trace lacks the handshake of %s's %s, so relative numbers have no origin: give them with abs", in.Host, s.ID())
	}
	flags, _ := stack.ParseFlags(in.Flags)
	seq, ack := v.remoteNext, uint32(0)
	if flags.Contains(header.TCPFlagAck) {
		ack = v.localNext
	}
	if in.HasSeq {
		seq = uint32(in.Seq)
		if !in.Abs {
			seq += v.remoteISN
		}
	}
	if in.HasAck {
		ack = uint32(in.Ack)
		if !in.Abs {
			ack += v.localISN
		}
	}
	win := uint16(65535)
	if in.HasWin {
		win = uint16(in.Win)
	}
	pkt := stack.Craft(stack.Segment{Src: v.remote, Dst: v.local, Flags: flags, Seq: seq, Ack: ack, Win: win, Payload: in.Data})
	desc := fmt.Sprintf("%s > %s Flags [%s], seq %d", peerOf(in.Host), in.Host, in.Flags, seq-v.remoteISN)
	if flags.Contains(header.TCPFlagAck) {
		desc += fmt.Sprintf(", ack %d", ack-v.localISN)
	}
	desc += fmt.Sprintf(", win %d, length %d", win, len(in.Data))
	r.lab.Trace.Emit(trace.Event{Host: in.Host, Conn: s.ID(), Kind: trace.Note,
		Text: fmt.Sprintf("inject: %s (crafted by tcplab as if from %s %v, absolute seq %d ack %d)", desc, peerOf(in.Host), v.remote, seq, ack)})
	return r.lab.Inject.InjectSegment(in.Host, pkt)
}
