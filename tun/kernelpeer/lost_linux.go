package kernelpeer

import (
	"fmt"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

// lostEvery is how many of consume's ticks (verdictWait each) pass between
// two reads of the observer's lost counter: one map lookup each 100 ms.
const lostEvery = 50

// noteLost records, as a note of the kernel's side, that the kernel could
// not hand the observer some of its events since the last check (its ring
// buffer was full: the reader fell behind), so that a trace with gaps
// says it has them. Cost: one BPF map lookup.
func (p *Peer) noteLost(at time.Time) {
	ob := p.obs
	ob.closeMu.Lock()
	if ob.closed {
		ob.closeMu.Unlock()
		return
	}
	n, err := ob.o.Lost() // not safe against a concurrent Close: closeMu
	ob.closeMu.Unlock()
	if err != nil || n <= ob.lost {
		return
	}
	d := n - ob.lost
	ob.lost = n
	p.rec.EmitAt(trace.Event{Host: p.side, Kind: trace.Note, Text: fmt.Sprintf(
		"the eBPF observer fell behind: the kernel's ring buffer was full and %d of its events (or payload samples) were lost since the last check (%d in all); the trace misses them", d, n)}, at)
}

// close closes the observer, once no lost counter is being read.
func (ob *observer) close() {
	ob.closeMu.Lock()
	defer ob.closeMu.Unlock()
	ob.closed = true
	ob.o.Close()
}
