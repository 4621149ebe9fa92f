package stack

import (
	"fmt"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tcplab/tcplab/stack/trace"
)

// faults is the fault-injection state of a host's tap: packets held back,
// and rules that drop the next matching segments. The tap applies it to
// outbound packets, after they are traced as sent.
type faults struct {
	mu      sync.Mutex
	holding bool
	held    []*tcpipstack.PacketBuffer // each holds its own reference
	heldAs  []string                   // the tcpdump flags of each held packet
	drops   []dropRule
}

type dropRule struct {
	left  int
	match func(flags string) bool
	what  string
}

// Hold makes the host's link hold back every packet the stack sends from
// now on (they are traced as sent, and wait "on the wire") until Release.
// Use it to make segments cross, e.g. for a simultaneous close.
func (h *Host) Hold() {
	h.tap.faulty.Store(true)
	h.tap.f.mu.Lock()
	defer h.tap.f.mu.Unlock()
	h.tap.f.holding = true
}

// Release sends the held packets, in order, and stops holding.
func (h *Host) Release() {
	t := h.tap
	if h.closing.Load() {
		t.discardHeld()
		return
	}
	t.f.mu.Lock()
	held, as := t.f.held, t.f.heldAs
	t.f.held, t.f.heldAs, t.f.holding = nil, nil, false
	t.f.mu.Unlock()
	if len(held) == 0 {
		return
	}
	if h.rec != nil {
		// What the trace recorded as sent reaches the wire only now.
		for _, f := range as {
			if f != "" {
				h.rec.Emit(trace.Event{Host: h.name, Kind: trace.Note, Text: fmt.Sprintf("fault injection: held [%s] released onto the wire", f)})
			}
		}
	}
	var l tcpipstack.PacketBufferList
	for _, p := range held {
		l.PushBack(p)
	}
	t.Endpoint.WritePackets(l)
	l.DecRef()
}

// discardHeld drops the packets held back by Hold without sending them:
// the host is closing and its link is detached.
func (t *tap) discardHeld() {
	t.f.mu.Lock()
	held := t.f.held
	t.f.held, t.f.heldAs, t.f.holding = nil, nil, false
	t.f.mu.Unlock()
	for _, p := range held {
		p.DecRef()
	}
}

// DropNext makes the link drop the next n outbound segments whose tcpdump
// flags satisfy match; what describes them in the trace note.
func (h *Host) DropNext(n int, match func(flags string) bool, what string) {
	h.tap.faulty.Store(true)
	h.tap.f.mu.Lock()
	defer h.tap.f.mu.Unlock()
	h.tap.f.drops = append(h.tap.f.drops, dropRule{left: n, match: match, what: what})
}

// apply decides the fate of one outbound packet whose flags are known
// (flags is "" for a non-TCP packet): forward, hold or drop.
func (f *faults) apply(pkt *tcpipstack.PacketBuffer, flags string) (forward bool, dropped string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if flags != "" {
		for i := range f.drops {
			d := &f.drops[i]
			if d.left > 0 && d.match(flags) {
				d.left--
				return false, d.what
			}
		}
	}
	if f.holding {
		f.held = append(f.held, pkt.IncRef())
		f.heldAs = append(f.heldAs, flags)
		return false, ""
	}
	return true, ""
}

// writeWithFaults forwards pkts to the lower endpoint, minus the ones the
// faults hold or drop. flags[i] are the tcpdump flags of pkts[i].
func (t *tap) writeWithFaults(pkts tcpipstack.PacketBufferList, flags []string) (int, tcpip.Error) {
	var fwd tcpipstack.PacketBufferList
	for i, pkt := range pkts.AsSlice() {
		ok, dropped := t.f.apply(pkt, flags[i])
		if dropped != "" && t.host.rec != nil {
			t.host.rec.Emit(trace.Event{Host: t.host.name, Kind: trace.Note, Text: fmt.Sprintf("fault injection: dropped [%s] (%s)", flags[i], dropped)})
		}
		if ok {
			fwd.PushBack(pkt)
		}
	}
	if fwd.Len() > 0 {
		if _, err := t.Endpoint.WritePackets(fwd); err != nil {
			return 0, err
		}
	}
	return pkts.Len(), nil
}
