package memwire

import (
	"errors"
	"fmt"
	randv2 "math/rand/v2"
	"sort"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/stack"
)

var _ stack.Conditioner = (*Wire)(nil)

// netState is the network conditions of a wire in virtual time, guarded by
// Wire.mu.
type netState struct {
	cond  [2]stack.Conditions
	rng   *randv2.Rand
	sched []packet     // by due, then n
	n     uint64       // packets scheduled so far
	busy  [2]time.Time // with a rate: when the direction's link is free
	isn   map[flow]uint32
}

// flow is one direction of a TCP connection, for relative sequence numbers
// in notes.
type flow struct {
	src, dst [4]byte
	sp, dp   uint16
}

func (n *netState) init(seed uint64) {
	if seed == 0 {
		seed = 1
	}
	n.rng = randv2.New(randv2.NewPCG(seed*0x9e3779b97f4a7c15, seed^0x6e6574656d)) // mixed: nearby seeds draw unrelated losses
	n.isn = map[flow]uint32{}
}

// SetConditions imposes c on the packets sent in direction dir from now on
// (packets already in flight keep their fate). The memory wire draws from
// a generator seeded by Config.Seed, in the order packets are sent, so a
// run repeats exactly. It needs virtual time (Config.Clock). Cost: two or
// three random draws per packet.
//
// The model is netem's (see stack.Conditions), with one difference: a
// corrupted packet has one bit of its TCP payload flipped (of its TCP
// checksum when it carries no payload), so the receiver still sees the
// segment and drops it for its checksum; netem flips a bit anywhere.
func (w *Wire) SetConditions(dir stack.Direction, c stack.Conditions) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("memwire: net %s: %w", dir, err)
	}
	if w.cfg.Clock == nil {
		return errors.New("memwire: network conditions need virtual time (Config.Clock); this wire runs in real time")
	}
	if dir != stack.ClientToServer && dir != stack.ServerToClient {
		return fmt.Errorf("memwire: no direction %d", dir)
	}
	w.mu.Lock()
	w.net.cond[dir] = c
	w.mu.Unlock()
	return nil
}

// schedule gives each packet sent since the last call its due time (or
// its loss), in the order they were sent, and moves it to the schedule.
// It runs on the deliverer while the lab is quiet, so its notes take the
// same place in the trace every run.
func (w *Wire) schedule() {
	w.mu.Lock()
	queue := w.queue
	w.queue = nil
	var notes [][2]string
	for _, p := range queue {
		for _, s := range w.net.fate(p, w.cfg.Latency) {
			w.net.insert(s.p)
			if s.note != "" {
				notes = append(notes, [2]string{s.host, s.note})
			}
		}
	}
	w.mu.Unlock()
	if w.cfg.Note != nil {
		for _, n := range notes {
			w.cfg.Note(n[0], n[1])
		}
	}
}

// scheduled is a packet on its way, or a note on one lost.
type scheduled struct {
	p          packet
	host, note string
}

// fate decides what the conditions of p's direction do to it: the copies
// to deliver (none if lost, two if duplicated) and what to note.
func (n *netState) fate(p packet, latency time.Duration) []scheduled {
	dir := stack.ClientToServer
	if !p.fromClient {
		dir = stack.ServerToClient
	}
	desc := n.describe(p.b)
	c := n.cond[dir]
	p.due = p.at.Add(latency)
	if c.IsZero() || p.injected {
		return []scheduled{{p: p}}
	}
	host := dir.From()
	prefix := "net " + dir.String() + ": "
	if n.chance(c.Loss) {
		return []scheduled{{host: host, note: prefix + "lost " + desc + fmt.Sprintf(" (loss %g%%)", c.Loss)}}
	}
	var what []string
	if n.chance(c.Corrupt) {
		what = append(what, corrupt(p.b, n.rng))
	}
	delay := c.Delay
	if c.Jitter > 0 {
		delay += time.Duration(n.rng.Int64N(int64(2*c.Jitter)+1)) - c.Jitter
		delay = max(delay, 0)
	}
	reordered := c.Delay > 0 && n.chance(c.Reorder)
	if reordered {
		delay = 0
		what = append(what, fmt.Sprintf("reordered: sent at once, ahead of the delayed ones (reorder %g%%)", c.Reorder))
	}
	start := p.at
	if c.Rate > 0 {
		start = later(p.at, n.busy[dir])
		tx := time.Duration(uint64(len(p.b)) * 8 * uint64(time.Second) / c.Rate)
		n.busy[dir] = start.Add(tx)
		start = n.busy[dir]
	}
	p.due = start.Add(delay + latency)
	if extra := p.due.Sub(p.at) - latency; extra != c.Delay && (!reordered || extra != 0) {
		what = append(what, "delayed "+extra.String())
	}
	out := []scheduled{{p: p}}
	if n.chance(c.Duplicate) {
		d := p
		d.b = append([]byte(nil), p.b...)
		out = append(out, scheduled{p: d})
		what = append(what, fmt.Sprintf("duplicated (duplicate %g%%)", c.Duplicate))
	}
	if len(what) > 0 {
		out[0].host, out[0].note = host, prefix+desc+" "+strings.Join(what, ", ")
	}
	return out
}

// chance draws true with probability pct percent; 0 draws nothing.
func (n *netState) chance(pct float64) bool {
	if pct <= 0 {
		return false
	}
	return n.rng.Float64()*100 < pct
}

// insert puts p in the schedule after every packet due no later.
func (n *netState) insert(p packet) {
	p.n = n.n
	n.n++
	i := sort.Search(len(n.sched), func(i int) bool { return n.sched[i].due.After(p.due) })
	n.sched = append(n.sched, packet{})
	copy(n.sched[i+1:], n.sched[i:])
	n.sched[i] = p
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// describe writes a TCP packet as tcpdump would, with sequence numbers
// relative to the ISNs seen in SYNs: "[F.] seq 1, ack 1, length 0". It
// learns the ISNs as it goes.
func (n *netState) describe(b []byte) string {
	ip := header.IPv4(b)
	if len(b) < header.IPv4MinimumSize || !ip.IsValid(len(b)) || ip.Protocol() != uint8(header.TCPProtocolNumber) {
		return fmt.Sprintf("a %d-byte packet", len(b))
	}
	t := header.TCP(ip.Payload())
	if len(t) < header.TCPMinimumSize {
		return fmt.Sprintf("a %d-byte packet", len(b))
	}
	f := flow{src: ip.SourceAddress().As4(), dst: ip.DestinationAddress().As4(), sp: t.SourcePort(), dp: t.DestinationPort()}
	r := flow{src: f.dst, dst: f.src, sp: f.dp, dp: f.sp}
	flags := t.Flags()
	if flags.Contains(header.TCPFlagSyn) {
		n.isn[f] = t.SequenceNumber()
	}
	seq, ack := t.SequenceNumber(), t.AckNumber()
	if isn, ok := n.isn[f]; ok {
		seq -= isn
	}
	if isn, ok := n.isn[r]; ok {
		ack -= isn
	}
	plen := len(t) - int(t.DataOffset())
	s := fmt.Sprintf("[%s] seq %d", tcpdumpFlags(flags), seq)
	if flags.Contains(header.TCPFlagAck) {
		s += fmt.Sprintf(", ack %d", ack)
	}
	return s + fmt.Sprintf(", length %d", max(plen, 0))
}

// tcpdumpFlags writes flags as tcpdump does: S, F, P, R, U, then "." for
// ACK.
func tcpdumpFlags(f header.TCPFlags) string {
	var b strings.Builder
	for _, x := range []struct {
		f header.TCPFlags
		c byte
	}{{header.TCPFlagSyn, 'S'}, {header.TCPFlagFin, 'F'}, {header.TCPFlagPsh, 'P'}, {header.TCPFlagRst, 'R'}, {header.TCPFlagUrg, 'U'}, {header.TCPFlagEce, 'E'}, {header.TCPFlagCwr, 'W'}, {header.TCPFlagAck, '.'}} {
		if f.Contains(x.f) {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}

// corrupt flips one bit of the TCP payload of b, or of its TCP checksum
// when it has no payload, and says which.
func corrupt(b []byte, rng *randv2.Rand) string {
	ip := header.IPv4(b)
	if len(b) < header.IPv4MinimumSize || !ip.IsValid(len(b)) {
		return "not corrupted (not an IPv4 packet)"
	}
	hl := int(ip.HeaderLength())
	t := header.TCP(b[hl:])
	if len(t) < header.TCPMinimumSize {
		return "not corrupted (no TCP header)"
	}
	off := hl + header.TCPChecksumOffset + rng.IntN(2)
	where := "its TCP checksum"
	if doff := int(t.DataOffset()); len(t) > doff {
		off = hl + doff + rng.IntN(len(t)-doff)
		where = fmt.Sprintf("payload byte %d", off-hl-doff)
	}
	bit := rng.IntN(8)
	b[off] ^= 1 << bit
	return fmt.Sprintf("corrupted: bit %d of %s flipped", bit, where)
}

var _ stack.Injector = (*Wire)(nil)

// InjectSegment puts pkt, a whole IPv4 packet, on the link of host to as if
// the wire had carried it from the other host: in virtual time it is
// queued like a sent packet and delivered after the wire's latency (the
// network conditions do not apply to it); in real time it is delivered at
// once. It copies pkt. It implements stack.Injector.
func (w *Wire) InjectSegment(to string, pkt []byte) error {
	if to != "client" && to != "server" {
		return fmt.Errorf("memwire: inject: no host %q (want client or server)", to)
	}
	p := packet{b: append([]byte(nil), pkt...), fromClient: to == "server", injected: true}
	if w.cfg.Clock == nil {
		w.deliver(p)
		return nil
	}
	p.at = w.cfg.Clock.Now()
	w.mu.Lock()
	w.queue = append(w.queue, p)
	w.moved++
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return nil
}
