package kernelpeer

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun/ktrace"
)

// The kernel's side of the trace comes from an eBPF observer (package
// tun/ktrace) when one can be loaded: every segment the kernel sends and
// receives, with the kernel's verdict on each arrival; every state change
// of its sockets; the kernel's own reason for every RST. Events reach the
// peer through a ring buffer some microseconds to milliseconds late and are
// put in their true place with trace.Recorder.EmitAt; the recorder holds
// events back from live subscribers for recorderDelay meanwhile.
//
// Without an observer (no root/CAP_BPF, no BTF, an older kernel) the peer
// falls back to sampling: the other host's segments are mirrored as the
// kernel's, states and queues come from sock_diag every few milliseconds,
// and RST reasons are inferred from the application's calls and the
// TCPAbortOn* counters. The trace says which in a note at the start.

const (
	// recorderDelay is how long live output waits for late kernel events
	// (above rstLag plus ringLag).
	recorderDelay = 200 * time.Millisecond
	// verdictWait is how long an arrival waits for the kernel to drop it
	// before it counts as accepted: drops happen in the softirq that
	// received the packet, microseconds later.
	verdictWait = 2 * time.Millisecond
	// rstLag bounds how long a RST's tcp_send_reset event may follow the
	// RST itself: tcp_send_active_reset (close() with unread data,
	// keepalive and other timeouts) fires the tracepoint after it has
	// transmitted the RST, and a close() in process context can be
	// preempted in between, for tens of milliseconds on a loaded
	// two-core machine. The RST waits this long for its reason before it
	// is recorded with an inferred one; recorderDelay is above it.
	rstLag = 150 * time.Millisecond
	// ringLag bounds how late an event reaches the observer's reader
	// (ktrace's MaxDelay plus scheduling on a busy machine); it must stay
	// below recorderDelay.
	ringLag = 12 * time.Millisecond
	// twSettle is how long the sampler waits, once sock_diag misses a
	// timewait socket, for the observer to report the RST that killed it
	// before it records the socket's quiet expiry.
	twSettle = 20 * time.Millisecond
)

// arrival is a segment the kernel received, waiting for its verdict.
type arrival struct {
	ev  trace.Event
	at  time.Time
	s   *Socket
	g   seg
	key connKey
	// answers are segments the kernel sent on the same connection while
	// this arrival awaited its verdict: the kernel answers a segment it
	// refuses (a challenge ACK) before it frees it, so they wait too, and
	// carry the refusal's reason.
	answers []ktrace.Event
}

// observer is the peer's eBPF side: it owns the ktrace.Observer and the
// goroutine that turns its events into trace events.
type observer struct {
	o       *ktrace.Observer
	pending map[uint64]*arrival // by skb address
	order   []uint64            // pending skbs, oldest first
	rst     map[connKey]string  // the kernel's reason for the RST about to leave
	sync    chan chan struct{}  // Sync's requests
	lastIn  map[connKey]seg     // the last segment received, judged or not
	finIn   map[connKey]bool    // a FIN was received on the connection
	reset   map[connKey]bool    // a RST was sent or received on it
	// heldRST are RSTs sent before their tcp_send_reset event came:
	// tcp_send_active_reset traces the reason after transmitting.
	heldRST map[connKey]heldRST
	// connecting (Config.Adopt) holds, by remote address, when an unbound
	// socket went CLOSED→SYN-SENT: connect(2) changes the state before
	// it picks the local address, so the event names no address of ours.
	connecting map[netip.AddrPort]time.Time
	// arrivals records the arrivals: they reach the trace a verdict's
	// wait (verdictWait) later than what the kernel sends, so they have a
	// queue of their own in the recorder, where each stream stays in time
	// order (trace.Source).
	arrivals *trace.Source
	// lost is the observer's lost counter when last noted (noteLost),
	// ticks counts consume's ticks between two checks.
	lost  uint64
	ticks int
	// closeMu keeps Close from closing the observer's maps while
	// noteLost reads the lost counter; closed says it has.
	closeMu sync.Mutex
	closed  bool
}

// heldRST is a RST the kernel sent, waiting for the kernel's reason.
type heldRST struct {
	e   ktrace.Event
	key connKey
}

// startObserver loads the eBPF observer for the lab's namespace. It returns
// an error (wrapping ktrace.ErrUnavailable where that is the cause) when the
// kernel cannot be observed; the peer then samples instead.
func (p *Peer) startObserver() error {
	ino, err := ktrace.NetnsInode(p.lab.NetnsPath())
	if err != nil {
		return err
	}
	o, err := ktrace.Open(ktrace.Config{NetnsInode: ino, NoProbe: true})
	if err != nil {
		return err
	}
	p.obs = &observer{o: o, pending: map[uint64]*arrival{}, rst: map[connKey]string{}, lastIn: map[connKey]seg{}, finIn: map[connKey]bool{}, reset: map[connKey]bool{}, heldRST: map[connKey]heldRST{}, connecting: map[netip.AddrPort]time.Time{}, sync: make(chan chan struct{}), arrivals: p.rec.NewSource()}
	return nil
}

// consume is the observer's goroutine: it runs until the observer is
// closed, then settles what is still pending.
func (p *Peer) consume() {
	defer p.wg.Done()
	ob := p.obs
	tick := time.NewTicker(verdictWait)
	defer tick.Stop()
	calls := p.callEvents()
	for {
		select {
		case c, ok := <-calls:
			if !ok {
				calls = nil
				continue
			}
			p.callQ = append(p.callQ, c)
		case e, ok := <-ob.o.Events():
			if !ok {
				p.drainCalls()
				p.flushCalls(time.Time{})
				p.settleArrivals(time.Time{})
				return
			}
			// The program's calls and the kernel's events come on two
			// rings: they are merged by time.
			p.drainCalls()
			if e.Kind == ktrace.Sent && strings.ContainsAny(e.Flags, "FR") && p.mine(e) {
				p.awaitCalls(e.Time)
			}
			p.flushCalls(e.Time)
			p.settleArrivals(e.Time.Add(-verdictWait))
			p.onKernel(e)
		case <-tick.C:
			// No event came: what is older than the ring's worst lag
			// has all its evidence.
			p.drainCalls()
			p.flushCalls(time.Now().Add(-ringLag))
			p.settleArrivals(time.Now().Add(-ringLag))
			if ob.ticks++; ob.ticks%lostEvery == 0 {
				p.noteLost(time.Now())
			}
		case done := <-ob.sync:
			p.drainCalls()
			p.drain()
			p.noteLost(time.Now())
			p.flushCalls(time.Time{})
			close(done)
		}
	}
}

// drain records every event the observer has delivered so far and every
// pending arrival.
func (p *Peer) drain() {
	for {
		select {
		case e, ok := <-p.obs.o.Events():
			if !ok {
				p.settleArrivals(time.Time{})
				return
			}
			p.flushCalls(e.Time)
			p.onKernel(e)
		default:
			p.settleArrivals(time.Time{})
			return
		}
	}
}

// syncLag is how long Sync lets the kernel's ring buffer reach the
// observer: a few of its polling periods (ktrace.Config.MaxDelay, and
// calltrace.Config.MaxDelay for the program's calls).
const syncLag = 5 * time.Millisecond

// Sync returns once everything the kernel did up to the call is in the
// trace, and hands it to the trace's subscribers: call it at the end of a
// run, before the live output stops. Without an observer it does nothing.
// Cost: about 5 ms.
func (p *Peer) Sync() {
	if p.obs == nil || p.closing.Load() {
		return
	}
	time.Sleep(syncLag)
	done := make(chan struct{})
	select {
	case p.obs.sync <- done:
		<-done
	case <-p.stop:
	}
	p.rec.Flush()
	p.rec.SetDelay(recorderDelay)
}

// mine reports whether e concerns the kernel's own address.
func (p *Peer) mine(e ktrace.Event) bool { return e.Local.Addr() == p.addr }

// onKernel turns one kernel event into trace events.
func (p *Peer) onKernel(e ktrace.Event) {
	if debugKtrace {
		fmt.Fprintln(os.Stderr, "ktrace:", e)
	}
	if p.closing.Load() {
		return
	}
	ob := p.obs
	if p.adopt && e.Kind == ktrace.State && e.NewState == "SYN-SENT" && e.Local.Port() == 0 {
		// connect(2) on an unbound socket: no port yet.
		ob.connecting[e.Remote] = e.Time
		return
	}
	if p.adopt && e.Kind == ktrace.State && e.Local.Addr().IsUnspecified() && (!e.Remote.Addr().IsValid() || e.Remote.Addr().IsUnspecified()) {
		// A program's listener bound to 0.0.0.0: it listens on our
		// address too (unless another peer follows the relay's
		// listener).
		if p.leg != LegConnect {
			p.onState(e, connKey{localPort: e.Local.Port()})
		}
		return
	}
	if !p.mine(e) {
		return
	}
	key := connKey{localPort: e.Local.Port(), remote: e.Remote}
	switch e.Kind {
	case ktrace.State:
		p.onState(e, key)
	case ktrace.ReceiveReset:
		ob.reset[key] = true
	case ktrace.SendReset:
		if !e.Remote.Addr().IsValid() || e.Remote.Addr().IsUnspecified() {
			// A listener answered: the RST is for the segment's
			// sender, whose address the socket does not have.
			key = connKey{localPort: key.localPort}
		}
		ob.reset[key] = true
		for hk, h := range ob.heldRST {
			if hk == key || (key.remote == (netip.AddrPort{}) && hk.localPort == key.localPort) {
				delete(ob.heldRST, hk)
				ob.rst[hk] = e.Reason
				p.onSent(h.e, hk)
				return
			}
		}
		ob.rst[key] = e.Reason
	case ktrace.Sent:
		if p.adopt && e.Flags == "S" {
			p.adoptConnect(key, e)
		}
		if lk := (connKey{localPort: key.localPort}); strings.Contains(e.Flags, "R") {
			if r, ok := ob.rst[lk]; ok {
				delete(ob.rst, lk)
				ob.rst[key] = r
			}
		}
		if a := ob.pendingOn(key); a != nil {
			a.answers = append(a.answers, e)
			return
		}
		if _, known := ob.rst[key]; strings.Contains(e.Flags, "R") && !known {
			ob.heldRST[key] = heldRST{e: e, key: key}
			return
		}
		p.onSent(e, key)
	case ktrace.Received:
		s := p.lookup(key.localPort, key.remote, false, e.Flags)
		ev := p.segmentEvent(e, "in", s)
		g := seg{flags: e.Flags, seq: e.Seq, ack: e.Ack, len: e.Len}
		if old := ob.pending[e.Skb]; old != nil {
			// The kernel freed the earlier packet without dropping it
			// and reused its sk_buff: that one was accepted.
			delete(ob.pending, e.Skb)
			p.accept(old)
		}
		ob.pending[e.Skb] = &arrival{ev: ev, at: e.Time, s: s, g: g, key: key}
		ob.lastIn[key] = g
		if strings.Contains(e.Flags, "F") {
			ob.finIn[key] = true
		}
		ob.order = append(ob.order, e.Skb)
	case ktrace.Dropped:
		if a := ob.pending[e.Skb]; a != nil && !e.Originated {
			delete(ob.pending, e.Skb)
			why, refused := dropWhy(e.Reason)
			if e.Reason == "NOT_SPECIFIED" {
				// kfree_skb without a reason: after TCP has acted on
				// the segment (a RST that ended a timewait socket) as
				// often as not. Count it taken, and say it is a guess.
				p.acceptAs(a, false, "kernel: freed without a drop reason (NOT_SPECIFIED)")
				return
			}
			a.ev.Verdict, a.ev.Observed = trace.Accepted, true
			a.ev.Evidence = "kernel: " + e.Reason
			if refused {
				a.ev.Verdict, a.ev.Why = trace.Refused, why
			} else if a.s != nil {
				a.s.noteIn(a.g)
			}
			ob.arrivals.EmitAt(a.ev, a.at)
			p.answered(a)
			return
		}
		if e.Originated {
			p.rec.EmitAt(trace.Event{Host: p.name, Kind: trace.Note, Text: fmt.Sprintf("the kernel dropped its own [%s] before the wire (kernel: %s)", e.Flags, e.Reason)}, e.Time)
		}
	case ktrace.Unseen:
		p.onUnseen(e, key)
	}
}

// onUnseen says in the trace that the kernel sent a range of a
// connection's sequence space the observer did not see (ktrace.Unseen):
// the segments are not in the trace, and this note stands in their place
// with their range (Seq, Len), not as segments.
func (p *Peer) onUnseen(e ktrace.Event, key connKey) {
	p.mu.Lock()
	s := p.conns[key]
	p.mu.Unlock()
	ev := trace.Event{
		Host: p.name, Kind: trace.Note, Seq: e.Seq, Len: e.Len,
		Text: fmt.Sprintf("not observed: the kernel sent seq %d:%d (%d bytes) to %v, but ran none of the eBPF observer's programs for it (inferred from the segments around it; a whole GSO packet, now and then on this kernel): those segments are missing from the trace",
			e.Seq, e.Seq+uint32(e.Len), e.Len, e.Remote),
	}
	if s != nil {
		ev.Conn = s.id
	}
	p.rec.EmitAt(ev, e.Time)
}

// adoptConnect creates the record of a program's connection when its SYN
// leaves (Config.Adopt), with the CLOSED→SYN-SENT change the kernel traced
// before the socket had an address.
func (p *Peer) adoptConnect(key connKey, e ktrace.Event) {
	p.mu.Lock()
	s := p.conns[key]
	if s != nil && !s.reusable() {
		p.mu.Unlock()
		return
	}
	s = p.newConnLocked(key, "CLOSED")
	p.mu.Unlock()
	at, ok := p.obs.connecting[key.remote]
	delete(p.obs.connecting, key.remote)
	text := ""
	if !ok {
		at = e.Time
		text = "inferred from the SYN: the kernel's state change was not seen"
	}
	s.update(func() {
		s.alive = true
		s.setStateLockedAt("SYN-SENT", text, at)
	})
}

// settleArrivals records every pending arrival received before cutoff (all
// of them for a zero cutoff) as accepted: the kernel did not drop it.
func (p *Peer) settleArrivals(cutoff time.Time) {
	ob := p.obs
	// A RST's reason may follow its segment by a CPU taken away between
	// the two tracepoints (see rstLag): it waits for that, not for a
	// verdict.
	rstCutoff := cutoff
	if !cutoff.IsZero() {
		rstCutoff = cutoff.Add(verdictWait - rstLag)
	}
	for key, h := range ob.heldRST {
		if cutoff.IsZero() || !h.e.Time.After(rstCutoff) {
			delete(ob.heldRST, key)
			p.onSent(h.e, key)
		}
	}
	n := 0
	for _, skb := range ob.order {
		a := ob.pending[skb]
		if a == nil {
			n++
			continue
		}
		if !cutoff.IsZero() && a.at.After(cutoff) {
			break
		}
		delete(ob.pending, skb)
		n++
		p.accept(a)
	}
	ob.order = ob.order[n:]
}

// accept records a as accepted: the kernel did not drop it.
func (p *Peer) accept(a *arrival) { p.acceptAs(a, true, "kernel: not dropped") }

// acceptAs records a as accepted, observed or inferred, with evidence.
func (p *Peer) acceptAs(a *arrival, observed bool, evidence string) {
	if p.rstIgnoredInTimeWait(a, evidence) {
		return
	}
	a.ev.Verdict, a.ev.Observed = trace.Accepted, observed
	a.ev.Evidence = evidence
	if a.s != nil {
		a.s.noteIn(a.g)
	}
	p.obs.arrivals.EmitAt(a.ev, a.at)
	if s := a.s; s != nil {
		s.update(func() {
			switch {
			case !s.tw:
			case strings.Contains(a.g.flags, "R"):
				// tcp_rfc1337 = 0 (the default): a RST ends TIME-WAIT.
				s.tw = false
				s.setStateLockedAt("CLOSED", "a RST ended the timewait socket (tcp_rfc1337 is 0)", a.at)
			case strings.Contains(a.g.flags, "F") && s.state == "FIN-WAIT-2":
				s.setStateLockedAt("TIME-WAIT", "the timewait socket took the peer's FIN", a.at)
			}
		})
	}
	p.answered(a)
}

// answered records the segments the kernel sent while a awaited its
// verdict; a pure ACK right after a refused arrival is its answer (the
// connection in question is inferred from the order, the reason from the
// kernel's drop reason).
func (p *Peer) answered(a *arrival) {
	for i, e := range a.answers {
		reason := ""
		if i == 0 && a.ev.Verdict == trace.Refused && e.Flags == "." {
			reason = stack.AnswerReason(a.ev.Why, a.ev.Flags)
		}
		p.onSentReason(e, a.key, reason)
	}
	a.answers = nil
}

// pendingOn returns the oldest arrival on key still awaiting its verdict.
func (ob *observer) pendingOn(key connKey) *arrival {
	for _, skb := range ob.order {
		if a := ob.pending[skb]; a != nil && a.key == key {
			return a
		}
	}
	return nil
}

// segmentEvent is the trace event of a segment the kernel sent or received.
func (p *Peer) segmentEvent(e ktrace.Event, dir string, s *Socket) trace.Event {
	src, dst := e.Local, e.Remote
	if dir == "in" {
		src, dst = e.Remote, e.Local
	}
	ev := trace.Event{
		Host: p.name, Kind: trace.Segment, Dir: dir,
		Src: src.String(), Dst: dst.String(), Flags: e.Flags,
		Seq: e.Seq, Ack: e.Ack, Win: e.Win, Len: e.Len, Payload: e.Payload,
	}
	if s != nil {
		ev.Conn = s.id
	}
	return ev
}

// onSent records a segment the kernel handed to the device.
func (p *Peer) onSent(e ktrace.Event, key connKey) { p.onSentReason(e, key, "") }

// onSentReason is onSent with the reason of an answer to a refused
// arrival ("" for none).
func (p *Peer) onSentReason(e ktrace.Event, key connKey, answer string) {
	p.mu.Lock()
	s := p.conns[key]
	p.mu.Unlock()
	ev := p.segmentEvent(e, "out", s)
	g := seg{flags: e.Flags, seq: e.Seq, ack: e.Ack, len: e.Len}
	switch {
	case strings.Contains(e.Flags, "R"):
		kr, ok := p.obs.rst[key]
		delete(p.obs.rst, key)
		ev.Reason = p.kernelRSTReason(s, g, key, kr, ok)
	case strings.Contains(e.Flags, "F"):
		p.inferFinCause(s)
		ev.Reason = finReason(s, g)
	case answer != "":
		ev.Reason = answer
	}
	if s != nil {
		s.noteOut(g)
	}
	p.rec.EmitAt(ev, e.Time)
	if s != nil && strings.Contains(e.Flags, "R") {
		s.update(func() {
			if s.tw {
				// A timewait socket that answers with RST is killed at once.
				s.tw = false
				s.setStateLockedAt("CLOSED", "the timewait socket is gone with its RST", e.Time)
			}
		})
	}
}

// onState records a state change of one of the kernel's sockets.
func (p *Peer) onState(e ktrace.Event, key connKey) {
	if !e.Remote.Addr().IsValid() || e.Remote.Addr().IsUnspecified() {
		// A listening socket.
		p.mu.Lock()
		l := p.listeners[key.localPort]
		if p.adopt && p.leg != LegConnect && e.NewState == "LISTEN" {
			l = p.adoptListenerLocked(key.localPort)
		}
		id := p.listening[key.localPort] // listen(2) under way
		p.mu.Unlock()
		if l == nil && id != "" {
			p.rec.EmitAt(trace.Event{Host: p.name, Kind: trace.State, Conn: id, From: e.OldState, To: e.NewState}, e.Time)
			return
		}
		if l != nil {
			if p.adopt && e.NewState == "CLOSED" {
				l.mu.Lock()
				l.closed = true
				l.mu.Unlock()
			}
			p.rec.EmitAt(trace.Event{Host: p.name, Kind: trace.State, Conn: l.id, From: e.OldState, To: e.NewState}, e.Time)
		}
		return
	}
	p.mu.Lock()
	s := p.conns[key]
	if p.adopt && e.OldState == "CLOSED" && e.NewState == "SYN-SENT" && (s == nil || s.reusable()) {
		s = p.newConnLocked(key, "CLOSED") // the program's connect
	}
	p.mu.Unlock()
	if s == nil {
		return
	}
	to, text := e.NewState, ""
	if e.NewState == "SYN-RECEIVED" {
		text = "Linux creates the connection's socket when the handshake's ACK arrives; a request socket answered the SYN"
	}
	tw := false
	if e.NewState == "CLOSED" {
		switch e.OldState {
		case "FIN-WAIT-1", "FIN-WAIT-2", "CLOSING":
			// Linux hands such a connection to a timewait socket, which
			// has no state tracepoint: ask sock_diag at once.
			if info, found, err := p.diag.get(netip.AddrPortFrom(p.addr, key.localPort), key.remote); err == nil && found && info.timer == diagTimerTW {
				to, tw = StateName(info.state), true
				text = "a timewait socket takes over the connection (seen with sock_diag)"
			} else if !p.obs.reset[key] {
				// Gone already (a RST may have killed it): without a
				// reset, this transition is tcp_time_wait's (tcp_done
				// follows it), so a timewait socket was made.
				to, tw = "FIN-WAIT-2", true
				if p.obs.finIn[key] || e.OldState == "CLOSING" {
					to = "TIME-WAIT"
				}
				text = "a timewait socket takes over the connection (inferred: Linux's tcp_time_wait, gone before sock_diag could see it)"
			}
		}
	}
	s.update(func() {
		s.alive = true
		s.tw = tw
		s.setStateLockedAt(to, text, e.Time)
		if to == "CLOSED" {
			s.rcvAtEnd = s.rcv
			s.setBuffersLocked(0, 0)
		}
	})
}

// kernelRSTReason explains a RST the kernel sent: tcplab's words for the
// kernel's own reason (enum sk_rst_reason), which the text ends with. ok is
// false when no tcp_send_reset event came first.
func (p *Peer) kernelRSTReason(s *Socket, g seg, key connKey, kr string, ok bool) string {
	local := netip.AddrPortFrom(p.addr, key.localPort)
	if !ok {
		return rstReason(p, s, local, key.remote, "") + " (inferred: no tcp_send_reset event)"
	}
	words := ""
	switch kr {
	case "NO_SOCKET":
		p.mu.Lock()
		l := p.listeners[key.localPort]
		p.mu.Unlock()
		if s != nil {
			s.mu.Lock()
			before := s.state
			if before == "CLOSED" && s.prev != "" {
				before = s.prev
			}
			rst := s.rstSent
			s.mu.Unlock()
			if rst {
				words = fmt.Sprintf("segment for a connection this host already reset (was %s): no socket owns it", before)
			} else {
				words = fmt.Sprintf("segment for a connection that no longer exists: it left %s and the kernel forgot it", before)
			}
		} else if l == nil || l.isClosed() {
			words = fmt.Sprintf("segment for no connection: nothing listens on port %d and no socket owns %v<->%v", key.localPort, local, key.remote)
		} else {
			words = fmt.Sprintf("segment for no connection: no socket owns %v<->%v", local, key.remote)
		}
	case "TCP_ABORT_ON_CLOSE":
		n, sampled := 0, false
		if s != nil {
			s.mu.Lock()
			n = s.unreadAtClose
			if n == 0 && p.adopt && !s.closed {
				// A program's close(): the queue as last sampled.
				n, sampled = s.rcvAtEnd, true
			}
			s.mu.Unlock()
		}
		words = fmt.Sprintf("close() with %d unread bytes in receive buffer: they would be lost silently, so reset instead of FIN (RFC 2525 2.17)", n)
		if sampled {
			words = fmt.Sprintf("close() with unread data in the receive buffer (%d bytes when last sampled): it would be lost silently, so reset instead of FIN (RFC 2525 2.17)", n)
		}
	case "TCP_ABORT_ON_DATA":
		linger, closed, state := false, false, ""
		if s != nil {
			s.mu.Lock()
			linger, closed, state = s.lingerZero, s.closed, s.state
			s.mu.Unlock()
		}
		switch {
		case linger && closed:
			words = "close() with SO_LINGER 0: abortive close, the send queue is discarded"
		default:
			words = fmt.Sprintf("data arrived in %s after close(): no socket owns the connection any more, nobody can read it", state)
		}
	case "TCP_ABORT_ON_LINGER":
		words = "the orphan's FIN-WAIT-2 time (tcp_fin_timeout) ran out"
	case "TCP_ABORT_ON_MEMORY":
		words = "too many orphaned sockets or too little memory: the kernel dropped the connection"
	case "TCP_ABORT_ON_TIMEOUT":
		words = "retransmissions timed out: the kernel gave up on the connection"
	case "TCP_KEEPALIVE_TIMEOUT":
		words = "keepalive timeout: the peer answered none of the keepalive probes, so the kernel gave up on the connection"
	case "TCP_TIMEWAIT_SOCKET":
		state, closed := "TIME-WAIT", false
		if s != nil {
			s.mu.Lock()
			state, closed = s.state, s.closed
			s.mu.Unlock()
		}
		words = fmt.Sprintf("segment for a connection in %s that its timewait socket does not accept", state)
		if closed && p.obs.lastIn[key].len > 0 {
			words = fmt.Sprintf("data arrived in %s after close(): Linux had handed the orphan to a timewait socket, which answers new data with RST", state)
		}
	case "TCP_STATE":
		// tcp_disconnect: close() with SO_LINGER 0, a listener closed
		// with the connection in its queue, connect(AF_UNSPEC).
		linger, closed := false, false
		if s != nil {
			s.mu.Lock()
			linger, closed = s.lingerZero, s.closed
			s.mu.Unlock()
		}
		if linger && closed {
			words = "close() with SO_LINGER 0: abortive close, the send queue is discarded"
			break
		}
		words = rstReason(p, s, local, key.remote, "")
		if strings.HasPrefix(words, "reset by the kernel in") {
			words = "the connection was disconnected (tcp_disconnect) in a state that must tell the peer"
		}
	case "TCP_FLAGS":
		words = "segment with flags the connection's state does not accept"
		p.mu.Lock()
		l := p.listeners[key.localPort]
		p.mu.Unlock()
		if s == nil || (l != nil && !l.isClosed() && p.obs.lastIn[key].flags != "S") {
			words = fmt.Sprintf("segment for no connection: the listener on port %d takes only a SYN", key.localPort)
			if s != nil {
				words += " (this connection is gone)"
			}
		}
	case "TCP_USER_TIMEOUT":
		words = "TCP_USER_TIMEOUT ran out: data stayed unacknowledged longer than the socket allows"
	case "TCP_OLD_ACK":
		words = "ACK for data never sent"
	case "TCP_DISCONNECT_WITH_DATA":
		words = "the socket was disconnected (connect(AF_UNSPEC) or SHUT_RDWR) with data unread"
	default:
		words = rstReason(p, s, local, key.remote, "")
	}
	return words + " (kernel: " + kr + ")"
}

// dropWhy turns the kernel's drop reason (enum skb_drop_reason) for a
// received segment into tcplab's words for a refused arrival. refused is
// false for the reasons the kernel gives when it frees a segment it has
// acted on (a RST that reset the connection, data merged into the
// out-of-order queue).
func dropWhy(kernel string) (why string, refused bool) {
	switch kernel {
	case "TCP_OFOMERGE", "SKB_CONSUMED", "NOT_DROPPED_YET", "QUEUE_PURGE":
		return "", false
	case "TCP_RESET":
		// tcp_validate_incoming: a RST that is in the window but not
		// at RCV.NXT is answered by a challenge ACK and dropped; an
		// exact one resets the connection and is freed without a
		// drop reason.
		return trace.WhyChallenge, true
	case "TCP_CSUM":
		return trace.WhyBadChecksum, true
	case "IP_CSUM", "IP_INHDR", "PKT_TOO_SMALL", "TCP_INVALID_HDR_LEN":
		return trace.WhyMalformed, true
	case "TCP_INVALID_SEQUENCE", "TCP_OLD_SEQUENCE", "TCP_INVALID_END_SEQUENCE", "TCP_ZEROWINDOW", "TCP_OVERWINDOW":
		return trace.WhyOutOfWindow, true
	case "NO_SOCKET":
		return trace.WhyNoConnection, true
	case "TCP_OLD_DATA":
		return trace.WhyDuplicate, true
	case "TCP_ACK_UNSENT_DATA", "TCP_TOO_OLD_ACK":
		return trace.WhyUnsentACK, true
	case "TCP_RFC7323_PAWS", "TCP_RFC7323_TW_PAWS":
		return "old timestamp (PAWS, RFC 7323)", true
	case "TCP_FLAGS":
		// No ACK on a synchronized connection, or anything but a SYN
		// at a listener.
		return "flags the connection's state does not accept", true
	case "TCP_CLOSE", "TCP_ABORT_ON_DATA":
		return "the connection is closed: no socket can take it", true
	case "TCP_INVALID_SYN":
		return trace.WhyChallenge, true
	}
	return "dropped by the kernel", true
}

var debugKtrace = os.Getenv("TCPLAB_DEBUG_KTRACE") != ""
