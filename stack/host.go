package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/tcplab/tcplab/stack/trace"
)

// Config configures a Host. The zero value of every field is a sane default.
type Config struct {
	// Name is the host's name in the trace: "client" or "server".
	Name string

	// Recorder receives the host's events. Nil turns instrumentation off:
	// the tap then only forwards packets.
	Recorder *trace.Recorder

	// Clock drives the stack's timers. Nil means the wall clock; the
	// in-memory wire can pass a manual clock for virtual time.
	Clock tcpip.Clock

	// RandSource and SecureRNG seed the stack's randomness (ISNs,
	// ephemeral ports). Nil means gVisor's defaults (not reproducible).
	RandSource rand.Source
	SecureRNG  io.Reader

	// TimeWait is how long a connection stays in TIME-WAIT; 0 means the
	// stack default, 60 s as on Linux.
	TimeWait time.Duration

	// FinWait2Timeout bounds an orphaned FIN-WAIT-2 (after close()); 0
	// means the stack default, 60 s as Linux's tcp_fin_timeout.
	FinWait2Timeout time.Duration

	// Options are gVisor settings by name ("config gvisor KEY VALUE"; see
	// CheckOption and OptionKeys), applied in order when the host is
	// built. Nil keeps gVisor's defaults.
	Options []Option

	// PollInterval is how often the host samples the state of its live
	// connections to catch timer-driven transitions. 0 means 5 ms; a
	// negative value turns the poller off (callers then call Sample).
	PollInterval time.Duration

	// KeepPackets makes every segment event carry a full copy of its IPv4
	// packet (Event.Packet), for pcapng output. It costs one copy per
	// packet per host.
	KeepPackets bool

	// OnBlock, if set, is called when a call of the host starts waiting
	// for the peer or a timer (read, write, accept, connect, a lingering
	// close), on the caller's goroutine, without locks held. Virtual time
	// uses it to move the clock while the lab is quiet (see Blocked).
	OnBlock func()

	// KeepClosed is how many connections the host still remembers after
	// they reached CLOSED: Conns lists them, and a late segment on their
	// 4-tuple is explained from their history. Older closed connections
	// are forgotten, so a long-lived host's memory follows its live
	// connections, not every connection it ever had. 0 means 64; a
	// negative value forgets each connection as soon as it is closed.
	KeepClosed int
}

// ErrHostClosed is returned by calls on a Host after Close.
var ErrHostClosed = errors.New("host is closed")

// Host is one gVisor network stack with one NIC on a wire, and the
// registry of its connections. Its methods are safe for concurrent use.
type Host struct {
	name string
	s    *tcpipstack.Stack
	tap  *tap
	addr netip.Addr
	rec  *trace.Recorder
	keep bool

	mu        sync.Mutex
	conns     map[connKey]*Conn // the record of each 4-tuple, live or recently closed
	all       []*Conn           // the same records in creation order, plus forgotten ones (gone)
	ngone     int               // forgotten records still in all
	listeners map[uint16]*Listener
	nconn     int
	nlisten   int
	closed    bool // Close was called: no new sockets

	// Records that reached CLOSED, oldest first, beyond keepClosed are
	// forgotten when the next record is made. retMu is taken under c.mu,
	// never the other way round.
	retMu      sync.Mutex
	retired    []*Conn
	keepClosed int

	keepalive keepaliveKnobs // Options' keepalive timers, for SetKeepalive

	onBlock func()
	blockMu sync.Mutex
	blocked []*blocker // the calls now waiting

	closing atomic.Bool // set by Close: the teardown is not traced
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// connKey names a connection from the host's side (its address is fixed).
type connKey struct {
	localPort uint16
	remote    netip.AddrPort
}

const nicID tcpip.NICID = 1

// NewHost builds a stack on link and starts its poller. The host owns the
// stack; the wire keeps owning what feeds link.Endpoint. Call Close to stop.
func NewHost(cfg Config, link Link) (*Host, error) {
	if !link.Addr.Addr().Is4() {
		return nil, fmt.Errorf("stack: host %s: address %v is not IPv4", cfg.Name, link.Addr)
	}
	h := &Host{
		name:      cfg.Name,
		addr:      link.Addr.Addr(),
		rec:       cfg.Recorder,
		keep:      cfg.KeepPackets,
		conns:     map[connKey]*Conn{},
		listeners: map[uint16]*Listener{},
		stop:      make(chan struct{}),
		onBlock:   cfg.OnBlock,
	}
	switch {
	case cfg.KeepClosed == 0:
		h.keepClosed = 64
	case cfg.KeepClosed > 0:
		h.keepClosed = cfg.KeepClosed
	}
	h.s = tcpipstack.New(tcpipstack.Options{
		NetworkProtocols:   []tcpipstack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []tcpipstack.TransportProtocolFactory{tcp.NewProtocolProbe(h.probe)},
		Clock:              cfg.Clock,
		RandSource:         cfg.RandSource,
		SecureRNG:          cfg.SecureRNG,
	})
	fail := func(what string, err tcpip.Error) (*Host, error) {
		h.s.Destroy()
		return nil, fmt.Errorf("stack: host %s: %s: %s", cfg.Name, what, err)
	}
	if cfg.TimeWait > 0 {
		opt := tcpip.TCPTimeWaitTimeoutOption(cfg.TimeWait)
		if err := h.s.SetTransportProtocolOption(tcp.ProtocolNumber, &opt); err != nil {
			return fail("set TIME-WAIT timeout", err)
		}
	}
	if cfg.FinWait2Timeout > 0 {
		opt := tcpip.TCPLingerTimeoutOption(cfg.FinWait2Timeout)
		if err := h.s.SetTransportProtocolOption(tcp.ProtocolNumber, &opt); err != nil {
			return fail("set FIN-WAIT-2 timeout", err)
		}
	}
	if err := h.applyOptions(cfg.Options); err != nil {
		h.s.Destroy()
		return nil, fmt.Errorf("stack: host %s: %w", cfg.Name, err)
	}
	h.tap = newTap(link.Endpoint, h)
	if err := h.s.CreateNIC(nicID, h.tap); err != nil {
		return fail("create NIC on "+link.Name, err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          header.IPv4ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFromSlice(link.Addr.Addr().AsSlice()).WithPrefix(),
	}
	pa.AddressWithPrefix.PrefixLen = link.Addr.Bits()
	if err := h.s.AddProtocolAddress(nicID, pa, tcpipstack.AddressProperties{}); err != nil {
		return fail("add address "+link.Addr.String(), err)
	}
	routes := []tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}}
	if link.Gateway.IsValid() {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFromSlice(link.Gateway.AsSlice()), NIC: nicID})
	}
	h.s.SetRouteTable(routes)

	if h.rec != nil && cfg.PollInterval >= 0 {
		iv := cfg.PollInterval
		if iv == 0 {
			iv = 5 * time.Millisecond
		}
		h.wg.Add(1)
		go h.poll(iv)
	}
	return h, nil
}

// Name returns the host's name ("client" or "server").
func (h *Host) Name() string { return h.name }

// Addr returns the host's IPv4 address.
func (h *Host) Addr() netip.Addr { return h.addr }

// Conns returns the host's live connections and the last Config.KeepClosed
// ones that reached CLOSED, in the order they were created. Older closed
// connections are forgotten (their events stay in the trace). It costs a
// copy of the list.
func (h *Host) Conns() []*Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forgetRetiredLocked()
	out := make([]*Conn, 0, len(h.all)-h.ngone)
	for _, c := range h.all {
		if !c.gone {
			out = append(out, c)
		}
	}
	return out
}

// retire queues c, which reached CLOSED or lost its socket before
// connecting, to be forgotten once Config.KeepClosed newer ones follow.
// It may be called with c.mu held, and more than once.
func (h *Host) retire(c *Conn) {
	h.retMu.Lock()
	defer h.retMu.Unlock()
	if c.retired.Swap(true) {
		return
	}
	h.retired = append(h.retired, c)
}

// forgetRetired forgets the oldest closed records beyond keepClosed.
func (h *Host) forgetRetired() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forgetRetiredLocked()
}

// forgetRetiredLocked is forgetRetired with h.mu held (lock order: h.mu,
// then c.mu, then h.retMu).
func (h *Host) forgetRetiredLocked() {
	h.retMu.Lock()
	n := len(h.retired) - h.keepClosed
	if n <= 0 {
		h.retMu.Unlock()
		return
	}
	old := h.retired[:n]
	h.retired = append(h.retired[:0:0], h.retired[n:]...)
	h.retMu.Unlock()
	for _, c := range old {
		if h.conns[c.key] == c {
			delete(h.conns, c.key)
		}
		c.gone = true
		h.ngone++
	}
	if h.ngone > len(h.all)/2 {
		live := h.all[:0]
		for _, c := range h.all {
			if !c.gone {
				live = append(live, c)
			}
		}
		clear(h.all[len(live):])
		h.all, h.ngone = live, 0
	}
}

// Blocked reports whether a call of the host is waiting for the peer or a
// timer and, if so, until when on the host's clock time may pass for the
// waiting calls: the latest of their deadlines (a call's context deadline,
// carried over to the host's clock, or a linger timeout); the zero Time if
// one of them has none. A call whose Waiter is in the background does not
// count.
func (h *Host) Blocked() (until time.Time, ok bool) {
	h.blockMu.Lock()
	defer h.blockMu.Unlock()
	n := 0
	for _, b := range h.blocked {
		if b.w != nil && b.w.Background() {
			continue
		}
		n++
		if b.until.IsZero() {
			return time.Time{}, true
		}
		if b.until.After(until) {
			until = b.until
		}
	}
	return until, n > 0
}

// blocker is one waiting call.
type blocker struct {
	until time.Time
	w     *Waiter // nil: always counted
}

// block counts a call as waiting, until the returned function is called.
// until is the call's deadline on the stack's clock (zero: none).
func (h *Host) block(until time.Time) (unblock func()) {
	return h.blockCtx(nil, until)
}

// blockCtx is block for a call made with ctx: its Waiter, if any, learns
// that the call waits, and decides whether it counts (see Waiter).
func (h *Host) blockCtx(ctx context.Context, until time.Time) (unblock func()) {
	b := &blocker{until: until, w: waiterOf(ctx)}
	if b.w != nil {
		b.w.setWake(h.onBlock)
		b.w.noteWaiting()
	}
	h.blockMu.Lock()
	h.blocked = append(h.blocked, b)
	h.blockMu.Unlock()
	if h.onBlock != nil {
		h.onBlock()
	}
	return func() {
		h.blockMu.Lock()
		defer h.blockMu.Unlock()
		for i, x := range h.blocked {
			if x == b {
				h.blocked = append(h.blocked[:i], h.blocked[i+1:]...)
				break
			}
		}
	}
}

// deadline carries ctx's deadline over to the stack's clock: in virtual
// time a call may wait as long on the lab's clock as it may in real time.
func (h *Host) deadline(ctx context.Context) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	return h.s.Clock().Now().Add(time.Until(dl))
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Stack returns the gVisor stack, for experiments beyond this API.
func (h *Host) Stack() *tcpipstack.Stack { return h.s }

// Close detaches the host from its wire, stops the poller and destroys the
// stack, which stops its goroutines and the link endpoint's. Connections
// still open are abandoned silently: the link drops whatever the stack
// sends from the moment Close begins (the RSTs with which Destroy aborts
// them, packets held by Hold), so nothing reaches the wire that the trace
// lacks. Listen and Dial fail with ErrHostClosed afterwards, and Conns
// lists at most Config.KeepClosed connections, the last to end. It is safe
// to call more than once.
func (h *Host) Close() {
	h.once.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.closing.Store(true) // from here the tap drops every write
		h.tap.discardHeld()
		close(h.stop)
		h.wg.Wait()
		h.s.Destroy()
		// What was still open is over too: forget all but the last
		// KeepClosed records.
		h.mu.Lock()
		for _, c := range h.all {
			h.retire(c)
		}
		h.forgetRetiredLocked()
		h.mu.Unlock()
	})
}

func (h *Host) poll(every time.Duration) {
	defer h.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.Sample()
		}
	}
}

// Sample checks every connection of the host for a state change the other
// sources could not see (timers). The poller calls it; with the poller off
// (virtual time) the caller does, after advancing the clock.
func (h *Host) Sample() {
	h.mu.Lock()
	cs := make([]*Conn, 0, len(h.conns))
	for _, c := range h.all { // in creation order: the same from run to run
		if !c.gone && !c.retired.Load() {
			cs = append(cs, c)
		}
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.findEndpoint()
		c.sample()
	}
}

// probe runs inside the TCP endpoint's processing of every received segment,
// with the endpoint's lock held: it must only read the snapshot it is given
// and atomic state.
func (h *Host) probe(st *tcp.TCPEndpointState) {
	if h.rec == nil {
		return
	}
	key := connKey{
		localPort: st.ID.LocalPort,
		remote:    netip.AddrPortFrom(addrOf(st.ID.RemoteAddress), st.ID.RemotePort),
	}
	h.mu.Lock()
	c := h.conns[key]
	h.mu.Unlock()
	if c == nil {
		return
	}
	c.rxProbe(st)
	c.sample()
	snd := st.SndBufState.SndBufUsed
	if snd < 0 {
		snd = 0 // gVisor counts the FIN once it is acknowledged.
	}
	c.setBuffers(snd, st.RcvBufState.RcvBufUsed)
}

// lookup returns the connection a segment belongs to, creating the record
// of a passive open when a SYN reaches a listening port and create is set
// (the SYN passed the stack's header checks).
func (h *Host) lookup(s *segment, out, create bool) *Conn {
	key := connKey{localPort: s.src.Port(), remote: s.dst}
	if !out {
		key = connKey{localPort: s.dst.Port(), remote: s.src}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.conns[key]
	isSyn := s.flags&header.TCPFlagSyn != 0 && s.flags&header.TCPFlagAck == 0
	if create && !out && isSyn && (c == nil || c.reusable()) {
		if l := h.listeners[key.localPort]; l != nil && !l.isClosed() {
			c = h.newConnLocked(key, "LISTEN", l)
		}
	}
	return c
}

// newConnLocked makes the record of a new connection; l is the listener of
// a passive open. h.mu is held. Closed records beyond Config.KeepClosed
// are forgotten first.
func (h *Host) newConnLocked(key connKey, state string, l *Listener) *Conn {
	h.forgetRetiredLocked()
	h.nconn++
	c := &Conn{h: h, id: fmt.Sprintf("c%d", h.nconn), key: key, state: state, listener: l, rx: rxModel{ourWS: -1}}
	if old := h.conns[key]; old != nil {
		h.retire(old) // a new connection on its 4-tuple: the old one is over
	}
	h.conns[key] = c
	h.all = append(h.all, c)
	return c
}

// onSegment turns a segment the host sends, seen by the tap, into trace
// events. Arrivals take another path: Host.arrive and Host.judged.
func (h *Host) onSegment(s *segment, packet []byte) {
	c := h.lookup(s, true, false)
	ev := trace.Event{
		Host: h.name, Kind: trace.Segment, Dir: "out",
		Src: s.src.String(), Dst: s.dst.String(), Flags: s.Flags(),
		Seq: s.seq, Ack: s.ack, Win: s.win, Len: s.len, Payload: s.payload,
		Packet: packet,
	}
	if c != nil {
		ev.Conn = c.id
		c.sample() // state changes that caused this segment come first
		c.derivePassiveState(s)
		ev.Reason = c.answerFor(s)
	}
	if ev.Reason == "" && s.flags&(header.TCPFlagFin|header.TCPFlagRst) != 0 {
		ev.Reason = h.reason(c, s)
	}
	h.rec.Emit(ev)
	if c != nil {
		c.noteOut(s)
		c.rxOut(s)
	}
}

func (h *Host) fullAddress(ap netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}
}
