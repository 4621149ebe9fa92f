package stack

import (
	"fmt"
	randv2 "math/rand/v2"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// NetModel draws what Conditions do to each packet, from a seeded
// generator: the memory wire runs it in virtual time (the same seed, the
// same fate for every packet), the TUN wire in real time where the kernel
// has no netem. It is not safe for concurrent use. Cost: a few random
// draws per packet, and a map entry per TCP flow seen (for relative
// sequence numbers in notes).
type NetModel struct {
	cond [2]Conditions
	rng  *randv2.Rand
	busy [2]time.Time // with a rate: when the direction's link is free
	isn  map[flowKey]uint32
}

// flowKey is one direction of a TCP connection.
type flowKey struct {
	src, dst [4]byte
	sp, dp   uint16
}

// NewNetModel returns a model without conditions, its draws seeded by
// seed (0 means 1). Nearby seeds draw unrelated fates.
func NewNetModel(seed uint64) *NetModel {
	if seed == 0 {
		seed = 1
	}
	return &NetModel{
		rng: randv2.New(randv2.NewPCG(seed*0x9e3779b97f4a7c15, seed^0x6e6574656d)),
		isn: map[flowKey]uint32{},
	}
}

// Set replaces the conditions of dir.
func (m *NetModel) Set(dir Direction, c Conditions) { m.cond[dir&1] = c }

// Conditions returns the conditions of dir.
func (m *NetModel) Conditions(dir Direction) Conditions { return m.cond[dir&1] }

// Fate is what the network does to one packet.
type Fate struct {
	// Lost: the packet never arrives.
	Lost bool
	// Delay is the time the conditions add to the packet's trip (delay,
	// jitter, the rate's queue); 0 when reordered.
	Delay time.Duration
	// Copies is how many arrive: 1, or 2 when duplicated.
	Copies int
	// Note says what happened to the packet, with tcpdump's relative
	// numbers ("net client->server: lost [F.] seq 4, ack 1, length 0
	// (loss 100%)"), or "" when nothing worth noting did (no conditions,
	// or only the fixed delay).
	Note string
}

// Decide draws the fate of pkt, a whole IPv4 packet sent in direction dir
// at at; a corrupted packet has one bit flipped in place (of its TCP
// payload, or of its TCP checksum when it has none).
func (m *NetModel) Decide(dir Direction, pkt []byte, at time.Time) Fate {
	desc := m.Describe(pkt)
	c := m.cond[dir&1]
	if c.IsZero() {
		return Fate{Copies: 1}
	}
	prefix := "net " + dir.String() + ": "
	if m.chance(c.Loss) {
		return Fate{Lost: true, Note: prefix + "lost " + desc + fmt.Sprintf(" (loss %g%%)", c.Loss)}
	}
	var what []string
	if m.chance(c.Corrupt) {
		what = append(what, corrupt(pkt, m.rng))
	}
	delay := c.Delay
	if c.Jitter > 0 {
		delay += time.Duration(m.rng.Int64N(int64(2*c.Jitter)+1)) - c.Jitter
		delay = max(delay, 0)
	}
	reordered := c.Delay > 0 && m.chance(c.Reorder)
	if reordered {
		delay = 0
		what = append(what, fmt.Sprintf("reordered: sent at once, ahead of the delayed ones (reorder %g%%)", c.Reorder))
	}
	start := at
	if c.Rate > 0 {
		if m.busy[dir&1].After(start) {
			start = m.busy[dir&1]
		}
		tx := time.Duration(uint64(len(pkt)) * 8 * uint64(time.Second) / c.Rate)
		m.busy[dir&1] = start.Add(tx)
		start = m.busy[dir&1]
	}
	f := Fate{Delay: start.Add(delay).Sub(at), Copies: 1}
	if f.Delay != c.Delay && (!reordered || f.Delay != 0) {
		what = append(what, "delayed "+f.Delay.String())
	}
	if m.chance(c.Duplicate) {
		f.Copies = 2
		what = append(what, fmt.Sprintf("duplicated (duplicate %g%%)", c.Duplicate))
	}
	if len(what) > 0 {
		f.Note = prefix + desc + " " + strings.Join(what, ", ")
	}
	return f
}

// chance draws true with probability pct percent; 0 draws nothing.
func (m *NetModel) chance(pct float64) bool {
	if pct <= 0 {
		return false
	}
	return m.rng.Float64()*100 < pct
}

// Describe writes a TCP packet as tcpdump would, with sequence numbers
// relative to the ISNs seen in SYNs: "[F.] seq 1, ack 1, length 0". It
// learns the ISNs as it goes.
func (m *NetModel) Describe(b []byte) string {
	ip := header.IPv4(b)
	if len(b) < header.IPv4MinimumSize || !ip.IsValid(len(b)) || ip.Protocol() != uint8(header.TCPProtocolNumber) {
		return fmt.Sprintf("a %d-byte packet", len(b))
	}
	t := header.TCP(ip.Payload())
	if len(t) < header.TCPMinimumSize {
		return fmt.Sprintf("a %d-byte packet", len(b))
	}
	f := flowKey{src: ip.SourceAddress().As4(), dst: ip.DestinationAddress().As4(), sp: t.SourcePort(), dp: t.DestinationPort()}
	r := flowKey{src: f.dst, dst: f.src, sp: f.dp, dp: f.sp}
	flags := t.Flags()
	if flags.Contains(header.TCPFlagSyn) {
		m.isn[f] = t.SequenceNumber()
	}
	seq, ack := t.SequenceNumber(), t.AckNumber()
	if isn, ok := m.isn[f]; ok {
		seq -= isn
	}
	if isn, ok := m.isn[r]; ok {
		ack -= isn
	}
	plen := len(t) - int(t.DataOffset())
	s := fmt.Sprintf("[%s] seq %d", tcpdumpFlags(flags), seq)
	if flags.Contains(header.TCPFlagAck) {
		s += fmt.Sprintf(", ack %d", ack)
	}
	return s + fmt.Sprintf(", length %d", max(plen, 0))
}

// tcpdumpFlags writes flags as tcpdump does: S, F, P, R, U, E, W, then "."
// for ACK.
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
