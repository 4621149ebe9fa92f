package memwire

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tcplab/tcplab/stack"
)

var _ stack.Conditioner = (*Wire)(nil)

// netState is the network conditions of a wire in virtual time, guarded by
// Wire.mu.
type netState struct {
	model *stack.NetModel
	sched []packet // by due, then n
	n     uint64   // packets scheduled so far
}

func (n *netState) init(seed uint64) { n.model = stack.NewNetModel(seed) }

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
	w.net.model.Set(dir, c)
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
// to deliver (none if lost, two if duplicated) and what to note. An
// injected packet goes as it is.
func (n *netState) fate(p packet, latency time.Duration) []scheduled {
	dir := stack.ClientToServer
	if !p.fromClient {
		dir = stack.ServerToClient
	}
	p.due = p.at.Add(latency)
	if p.injected {
		n.model.Describe(p.b) // learns the ISNs of its SYNs
		return []scheduled{{p: p}}
	}
	f := n.model.Decide(dir, p.b, p.at)
	host := dir.From()
	if f.Lost {
		return []scheduled{{host: host, note: f.Note}}
	}
	p.due = p.due.Add(f.Delay)
	out := []scheduled{{p: p, host: host, note: f.Note}}
	if f.Copies == 2 {
		d := p
		d.b = append([]byte(nil), p.b...)
		out = append(out, scheduled{p: d})
	}
	return out
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
