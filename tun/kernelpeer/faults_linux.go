package kernelpeer

import (
	"fmt"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// wireFaults holds back or drops what the kernel sends to the other host,
// on the wire itself: a filter on the other host's TUN device (see
// tun.Lab.SetInboundFilter) sees each packet after the kernel sent it and
// before the other host receives it.
type wireFaults struct {
	mu        sync.Mutex
	installed bool
	holding   bool
	held      [][]byte
	drops     []dropRule
}

type dropRule struct {
	left  int
	match func(flags string) bool
	what  string
}

// Hold holds back every segment the kernel sends to the other host from
// now on, until Release. It implements the kernel's part of the scenario
// runner's faults.
func (p *Peer) Hold() {
	p.faults.mu.Lock()
	p.faults.holding = true
	p.faults.mu.Unlock()
	p.installFilter()
}

// Release sends on what Hold held back, in order, and stops holding. host
// must be the side the kernel plays.
func (p *Peer) Release(host string) error {
	if host != p.side {
		return fmt.Errorf("kernelpeer: release %s: the kernel is the %s", host, p.side)
	}
	p.faults.mu.Lock()
	held := p.faults.held
	p.faults.held, p.faults.holding = nil, false
	p.faults.mu.Unlock()
	for _, pkt := range held {
		flags := "?"
		if ip := header.IPv4(pkt); ip.IsValid(len(pkt)) && len(pkt) >= int(ip.HeaderLength())+header.TCPMinimumSize {
			flags = stack.FlagString(header.TCP(pkt[ip.HeaderLength():]).Flags())
		}
		p.rec.Emit(trace.Event{Host: p.name, Kind: trace.Note, Text: fmt.Sprintf("fault injection: held [%s] released onto the wire", flags)})
		if err := p.lab.Inject(p.other, pkt); err != nil {
			return fmt.Errorf("kernelpeer: release: %w", err)
		}
	}
	return nil
}

// Drop drops the next n segments the kernel sends to the other host whose
// flags satisfy match; what describes them in the trace. host must be the
// side the kernel plays.
func (p *Peer) Drop(host string, n int, match func(flags string) bool, what string) error {
	if host != p.side {
		return fmt.Errorf("kernelpeer: drop what %s sends: the kernel is the %s", host, p.side)
	}
	p.faults.mu.Lock()
	p.faults.drops = append(p.faults.drops, dropRule{left: n, match: match, what: what})
	p.faults.mu.Unlock()
	p.installFilter()
	return nil
}

// installFilter puts the fault filter on the other host's device once.
func (p *Peer) installFilter() {
	p.faults.mu.Lock()
	defer p.faults.mu.Unlock()
	if p.faults.installed {
		return
	}
	p.faults.installed = true
	p.lab.SetInboundFilter(p.other, p.filter)
}

// filter runs on the pump goroutine of the other host's device for every
// packet the kernel hands to it.
func (p *Peer) filter(pkt []byte) bool {
	ip := header.IPv4(pkt)
	if !ip.IsValid(len(pkt)) || ip.TransportProtocol() != header.TCPProtocolNumber {
		return true
	}
	sa := ip.SourceAddress()
	src, _ := netip.AddrFromSlice(sa.AsSlice())
	hl := int(ip.HeaderLength())
	if src != p.addr || len(pkt) < hl+header.TCPMinimumSize {
		return true // forwarded, not the kernel's own
	}
	flags := stack.FlagString(header.TCP(pkt[hl:]).Flags())
	f := &p.faults
	f.mu.Lock()
	for i := range f.drops {
		d := &f.drops[i]
		if d.left > 0 && d.match(flags) {
			d.left--
			f.mu.Unlock()
			p.rec.Emit(trace.Event{Host: p.name, Kind: trace.Note, Text: fmt.Sprintf("fault injection: dropped [%s] (%s) on the wire", flags, d.what)})
			return false
		}
	}
	if f.holding {
		f.held = append(f.held, append([]byte(nil), pkt...))
		f.mu.Unlock()
		p.rec.Emit(trace.Event{Host: p.name, Kind: trace.Note, Text: fmt.Sprintf("fault injection: [%s] held on the wire", flags)})
		return false
	}
	f.mu.Unlock()
	return true
}
