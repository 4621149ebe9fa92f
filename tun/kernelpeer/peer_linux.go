package kernelpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/calltrace"
)

const (
	// pollInterval is how often the sampler looks at every live connection.
	pollInterval = 5 * time.Millisecond
	// followUp is how long after a segment the sampler looks again: the
	// kernel receives a segment some tens of microseconds after the gVisor
	// host records it as sent.
	followUp = time.Millisecond
)

var _ stack.Peer = (*Peer)(nil)

// Peer is a stack.Peer made of real Linux TCP sockets inside a tun.Lab's
// namespace, recording into the lab's trace under the name of the side it
// plays. Create it with New and stop it with Close. Its methods are safe for
// concurrent use; calls on one Socket must not run concurrently, as with a
// socket used from one thread.
type Peer struct {
	lab    *tun.Lab
	side   string     // "client" or "server"
	name   string     // Host of every event: Config.Name, or side
	other  string     // the gVisor host on the other end
	addr   netip.Addr // the kernel's address on the other host's link
	pfx    string     // addr + ":", to pick the segments that concern us
	rec    *trace.Recorder
	diag   *diagSocket
	obs    *observer // nil: the kernel is sampled, not observed
	ctrs   *counters
	faults wireFaults
	adopt  bool              // Config.Adopt: follow connections of sockets not ours
	calls  *calltrace.Tracer // the program's calls (Config.Adopt), or nil
	callQ  []calltrace.Call  // calls not yet merged with the kernel's events (consume's)
	// lingerFds are the program's descriptors set to SO_LINGER
	// {l_onoff 1, l_linger 0} (consume's), by pid and fd.
	lingerFds map[[2]int]bool

	// rfc1337 is the lab namespace's tcp_rfc1337: a RST does not end a
	// timewait socket (rfc1337_linux.go).
	rfc1337 bool

	mu        sync.Mutex
	conns     map[connKey]*Socket
	socks     []*Socket
	listeners map[uint16]*Listener
	listening map[uint16]string // ports whose listen(2) is under way: the listener's name
	lns       []*Listener
	ids       *IDs
	leg       Leg
	fresh     []*FreshSocket // sockets made by NewSocket: closed by Close if still bare
	nconn     int
	nlisten   int

	wake chan struct{} // the mirror saw a segment: sample soon

	closing   atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// connKey names a connection from the kernel's side (its address is fixed).
type connKey struct {
	localPort uint16
	remote    netip.AddrPort
}

// New puts the kernel on side ("client" or "server") of lab, recording into
// rec, which must be the trace the lab's gVisor hosts record into (their
// taps are where the kernel's segments are seen). It opens a sock_diag
// socket and the netstat counters inside the namespace and starts one
// goroutine; Close stops it. Cost: two threads created and destroyed, a few
// hundred microseconds.
func New(lab *tun.Lab, side string, rec *trace.Recorder) (*Peer, error) {
	return NewConfig(lab, side, rec, Config{})
}

// NewConfig is New with options.
func NewConfig(lab *tun.Lab, side string, rec *trace.Recorder, cfg Config) (*Peer, error) {
	if lab == nil || rec == nil {
		return nil, errors.New("kernelpeer: New needs a lab and a recorder")
	}
	ck, sk := lab.KernelAddrs()
	p := &Peer{
		lab: lab, side: side, rec: rec,
		conns:     map[connKey]*Socket{},
		listeners: map[uint16]*Listener{},
		listening: map[uint16]string{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		adopt:     cfg.Adopt,
		name:      cfg.Name,
		ids:       cfg.IDs,
		leg:       cfg.Leg,
	}
	if p.name == "" {
		p.name = side
	}
	if p.ids == nil {
		p.ids = &IDs{}
	}
	switch side {
	case "client":
		p.other, p.addr = "server", sk
	case "server":
		p.other, p.addr = "client", ck
	default:
		return nil, fmt.Errorf("kernelpeer: side %q: want client or server", side)
	}
	p.pfx = p.addr.String() + ":"
	err := lab.Do(func() error {
		d, err := openDiag()
		if err != nil {
			return err
		}
		c, err := openCounters()
		if err != nil {
			d.close()
			return err
		}
		p.diag, p.ctrs = d, c
		p.rfc1337 = readRFC1337()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernelpeer: %s: %w", side, err)
	}
	err = errSampling
	if !cfg.Sample {
		err = p.startObserver()
	}
	on := ""
	if cfg.Name != "" {
		on = " on " + p.addr.String()
	}
	if err != nil {
		rec.Emit(trace.Event{Host: p.name, Kind: trace.Note, Text: "kernel side" + on + " SAMPLED, not observed: " + err.Error() +
			"; its segments are the other host's as seen there, states and queues come from sock_diag every 5 ms, reasons are inferred"})
		rec.Mirror(p.onEmit)
	} else {
		rec.Emit(trace.Event{Host: p.name, Kind: trace.Note, Text: "kernel side" + on + " observed with eBPF tracepoints (net_dev_start_xmit, netif_receive_skb, kfree_skb, inet_sock_set_state, tcp_send_reset); TIME-WAIT from sock_diag"})
		if cfg.Adopt {
			if err := p.startCalls(); err != nil {
				rec.Emit(trace.Event{Host: p.name, Kind: trace.Note, Text: "the program's socket calls" + on + " are NOT traced: " + err.Error() + "; the causes of its FINs are inferred"})
			} else {
				rec.Emit(trace.Event{Host: p.name, Kind: trace.Note, Text: "the program's socket calls" + on + " observed with syscall tracepoints (sys_enter, sys_exit) limited to the lab namespace's processes"})
			}
		}
		rec.SetDelay(recorderDelay)
		p.wg.Add(1)
		go p.consume()
	}
	p.wg.Add(1)
	go p.run()
	return p, nil
}

// NewPeer is New for a stack.Wire that must be a *tun.Lab, returning Close
// as the release function: the constructor cli.Env.NewKernelPeer wants.
func NewPeer(w stack.Wire, side string, rec *trace.Recorder) (stack.Peer, func() error, error) {
	lab, ok := w.(*tun.Lab)
	if !ok {
		kind := "nil"
		if w != nil {
			kind = w.Kind()
		}
		return nil, nil, fmt.Errorf("kernelpeer: the kernel needs the TUN wire, not the %s wire", kind)
	}
	p, err := New(lab, side, rec)
	if err != nil {
		return nil, nil, err
	}
	return p, p.Close, nil
}

// NewProgramPeer is NewPeer with Config.Adopt: the peer records the
// connections of a program run inside the lab namespace under the name of
// side. Its Listen and Dial still make sockets of its own; tcplab exec does
// not call them.
func NewProgramPeer(w stack.Wire, side string, rec *trace.Recorder) (stack.Peer, func() error, error) {
	lab, ok := w.(*tun.Lab)
	if !ok {
		return nil, nil, fmt.Errorf("kernelpeer: a program needs the TUN wire")
	}
	p, err := NewConfig(lab, side, rec, Config{Adopt: true})
	if err != nil {
		return nil, nil, err
	}
	return p, p.Close, nil
}

// NewRelayPeers records a relay run inside the lab namespace (tcplab exec
// --side middle) under the host name name, with two adopting peers: accept (LegAccept) on the kernel's address on the
// client's link (198.18.1.1), where the relay listens and the gVisor client
// connects, and connect (LegConnect) on its address on the server's link
// (198.18.2.1), from which the kernel routes the relay's connections to the
// gVisor server. Their ids alternate: the accepted connections are c1, c3,
// ..., those the relay makes c2, c4, .... release closes both. Cost: twice NewProgramPeer's (two
// observers, two call tracers).
func NewRelayPeers(w stack.Wire, name string, rec *trace.Recorder) (accept, connect stack.Peer, release func() error, err error) {
	lab, ok := w.(*tun.Lab)
	if !ok {
		return nil, nil, nil, fmt.Errorf("kernelpeer: a relay needs the TUN wire")
	}
	a, err := NewConfig(lab, "server", rec, Config{Adopt: true, Name: name, IDs: &IDs{Lane: 0, Lanes: 2}, Leg: LegAccept})
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := NewConfig(lab, "client", rec, Config{Adopt: true, Name: name, IDs: &IDs{Lane: 1, Lanes: 2}, Leg: LegConnect})
	if err != nil {
		a.Close()
		return nil, nil, nil, err
	}
	return a, c, func() error { return errors.Join(c.Close(), a.Close()) }, nil
}

// Name returns the host name the peer records under: Config.Name, or the
// side the kernel plays ("client" or "server").
func (p *Peer) Name() string { return p.name }

// Addr returns the kernel's address on the link to the other host: the
// address its sockets bind to and the one the other host connects to.
func (p *Peer) Addr() netip.Addr { return p.addr }

// Close stops recording and aborts what the scenario left behind, so that
// nothing keeps the lab namespace alive: open sockets are closed with
// SO_LINGER 0, connections still waiting in a listener's accept queue are
// accepted and closed the same way, orphans still alive are destroyed
// through sock_diag (SOCK_DESTROY, as ss -K). Timewait sockets are left to
// the kernel: they hold no reference on the namespace. The RSTs this sends
// are dropped by a blackhole route to the other host that exists only for
// the duration of Close, so the other host's trace does not see the
// teardown either. Finally it releases the netlink socket and the
// counters file. It is safe to call more than once.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		p.Sync()
		if p.calls != nil {
			if n, err := p.calls.Lost(); err == nil && n > 0 {
				p.rec.Emit(trace.Event{Host: p.side, Kind: trace.Note, Text: fmt.Sprintf("%d of the program's socket calls were lost: the call tracer's ring buffer was full (its reader fell behind); they are missing from this trace", n)})
			}
		}
		p.closing.Store(true)
		p.lab.SetInboundFilter(p.other, nil)
		close(p.stop)
		if p.calls != nil {
			p.calls.Close()
		}
		if p.obs != nil {
			p.obs.close() // ends consume
		}
		p.wg.Wait()
		p.rec.Flush()
		var errs []error
		err := p.lab.Do(func() error { return p.quietly(p.abortAll) })
		if err != nil {
			// The lab is gone (or rtnetlink failed): abort anyway, nobody
			// is left to see the RSTs.
			errs = append(errs, p.abortAll())
			if !errors.Is(err, tun.ErrClosed) {
				errs = append(errs, err)
			}
		}
		errs = append(errs, p.diag.close(), p.ctrs.close())
		if err := errors.Join(errs...); err != nil {
			p.closeErr = fmt.Errorf("kernelpeer: %s: close: %w", p.side, err)
		}
	})
	return p.closeErr
}

// quietly runs f with a blackhole route to every remote address of the
// peer's connections in place; it runs inside the lab namespace.
func (p *Peer) quietly(f func() error) error {
	p.mu.Lock()
	dsts := map[netip.Addr]bool{}
	for _, s := range p.socks {
		dsts[s.key.remote.Addr()] = true
	}
	p.mu.Unlock()
	if len(dsts) == 0 {
		return f()
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open rtnetlink: %w", err)
	}
	defer h.Close()
	var routes []*netlink.Route
	for a := range dsts {
		r := &netlink.Route{Dst: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}, Type: unix.RTN_BLACKHOLE}
		if err := h.RouteAdd(r); err != nil {
			for _, r := range routes {
				h.RouteDel(r)
			}
			return fmt.Errorf("add blackhole route to %v: %w", a, err)
		}
		routes = append(routes, r)
	}
	err = f()
	for _, r := range routes {
		if derr := h.RouteDel(r); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete blackhole route to %v: %w", r.Dst, derr))
		}
	}
	return err
}

// abortAll aborts every connection and listener of the peer.
func (p *Peer) abortAll() error {
	p.mu.Lock()
	socks, lns := p.socks, p.lns
	p.mu.Unlock()
	var errs []error
	for _, l := range lns {
		errs = append(errs, l.release())
	}
	for _, s := range socks {
		errs = append(errs, s.release())
	}
	p.mu.Lock()
	fresh := p.fresh
	p.mu.Unlock()
	for _, f := range fresh {
		f.release()
	}
	return errors.Join(errs...)
}

// socket creates a non-blocking TCP socket inside the lab namespace.
func (p *Peer) socket() (int, error) {
	fd := -1
	err := p.lab.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	return fd, nil
}

// Listen binds the kernel's address and port and listens, as bind(2) plus
// listen(2); backlog 0 means 128. A port in use gives syscall.EADDRINUSE.
// No SO_REUSEADDR is set, as with a plain socket.
func (p *Peer) Listen(port uint16, backlog int) (stack.ListenSocket, error) {
	if backlog <= 0 {
		backlog = 128
	}
	p.mu.Lock()
	id := p.ids.next("l")
	// The kernel's CLOSED -> LISTEN may reach the observer before the
	// listener is registered below: it finds its name here.
	p.listening[port] = id
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.listening, port)
		p.mu.Unlock()
	}()
	done := p.call(id, "listen", strconv.Itoa(int(port)))
	fd, err := p.socket()
	if err == nil {
		if err = unix.Bind(fd, &unix.SockaddrInet4{Port: int(port), Addr: p.addr.As4()}); err == nil {
			err = unix.Listen(fd, backlog)
		}
		if err != nil {
			unix.Close(fd)
		}
	}
	var l *Listener
	if err == nil {
		l = &Listener{p: p, id: id, port: port}
		if err = l.attach(fd); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		done(-1, err, nil)
		return nil, fmt.Errorf("kernelpeer: %s: listen on %d: %w", p.side, port, err)
	}
	p.mu.Lock()
	p.listeners[port] = l
	p.lns = append(p.lns, l)
	p.mu.Unlock()
	done(0, nil, nil)
	if p.obs == nil {
		p.rec.Emit(trace.Event{Host: p.name, Kind: trace.State, Conn: id, From: "CLOSED", To: "LISTEN"})
	}
	return l, nil
}

// Dial connects to addr from localPort (0: an ephemeral port), as socket(2),
// bind(2) and connect(2), blocking until the handshake completes, fails, or
// ctx ends. A local port still held (e.g. in TIME-WAIT) gives
// syscall.EADDRINUSE.
func (p *Peer) Dial(ctx context.Context, addr netip.AddrPort, localPort uint16) (stack.Socket, error) {
	fd, err := p.socket()
	if err != nil {
		return nil, fmt.Errorf("kernelpeer: %s: %w", p.side, err)
	}
	// Bind first, so the connection is known before its SYN leaves.
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(localPort), Addr: p.addr.As4()}); err != nil {
		unix.Close(fd)
		p.blockingCall("", "bind", strconv.Itoa(int(localPort)), -1, err, nil)
		return nil, fmt.Errorf("kernelpeer: %s: bind %d: %w", p.side, localPort, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kernelpeer: %s: getsockname: %w", p.side, err)
	}
	port := uint16(sa.(*unix.SockaddrInet4).Port)
	p.mu.Lock()
	s := p.newConnLocked(connKey{localPort: port, remote: addr}, "CLOSED")
	p.mu.Unlock()
	if err := s.attach(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kernelpeer: %s: %w", p.side, err)
	}
	// connect(2) sends the SYN before it returns: the state goes first.
	if p.obs == nil {
		s.update(func() { s.setStateLocked("SYN-SENT", "") })
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()})
	s.update(func() { s.alive = true })
	if errors.Is(err, unix.EINPROGRESS) {
		err = s.waitConnected(ctx)
	}
	s.sample()
	ret := 0
	if err != nil {
		ret = -1
	}
	p.blockingCall(s.id, "connect", addr.String(), ret, err, nil)
	if err != nil {
		s.abort()
		return nil, fmt.Errorf("kernelpeer: %s: connect %v: %w", p.side, addr, err)
	}
	return s, nil
}

func (p *Peer) newConnLocked(key connKey, state string) *Socket {
	s := &Socket{p: p, id: p.ids.next("c"), key: key, state: state}
	p.conns[key] = s
	p.socks = append(p.socks, s)
	return s
}

// call records a call that cannot wait for the peer: it takes its place in
// the trace now and gets its result from the returned function.
func (p *Peer) call(conn, name, arg string) func(ret int, err error, data []byte) {
	pend := p.rec.Begin(trace.Event{Host: p.name, Kind: trace.Call, Conn: conn, Call: name, Arg: arg})
	return func(ret int, err error, data []byte) {
		pend.End(func(e *trace.Event) {
			e.Ret, e.Err, e.Data = ret, stack.ErrName(err), trace.Preview(data)
		})
	}
}

// blockingCall records a call that may wait for the peer, once it returned.
func (p *Peer) blockingCall(conn, name, arg string, ret int, err error, data []byte) {
	p.rec.Emit(trace.Event{Host: p.name, Kind: trace.Call, Conn: conn, Call: name, Arg: arg, Ret: ret, Err: stack.ErrName(err), Data: trace.Preview(data)})
}

// onEmit is the recorder's mirror hook: it runs under the recorder's lock
// for every event, and records each segment of the other host that
// concerns the kernel again as the kernel's own, just ahead of the other
// host's event when the kernel sent it and just behind it when the kernel
// is to receive it. It takes only the peer's own locks, which are never
// held while calling the recorder, and reads the counters file for RSTs.
func (p *Peer) onEmit(e trace.Event) (before, after []trace.Event) {
	if e.Kind != trace.Segment || e.Host != p.other || p.closing.Load() ||
		!(strings.HasPrefix(e.Src, p.pfx) || strings.HasPrefix(e.Dst, p.pfx)) {
		return nil, nil
	}
	src, err1 := netip.ParseAddrPort(e.Src)
	dst, err2 := netip.ParseAddrPort(e.Dst)
	if err1 != nil || err2 != nil {
		return nil, nil
	}
	out := e.Dir == "in" // the other host received it: the kernel sent it
	local, remote := dst, src
	if out {
		local, remote = src, dst
	}
	if local.Addr() != p.addr {
		return nil, nil
	}
	g := seg{flags: e.Flags, seq: e.Seq, ack: e.Ack, len: e.Len}
	s := p.lookup(local.Port(), remote, out, e.Flags)
	ev := e
	ev.Index, ev.T, ev.Host, ev.Conn, ev.Reason, ev.Text = 0, 0, p.name, "", "", ""
	ev.Dir = "in"
	if out {
		ev.Dir = "out"
	}
	if s != nil {
		ev.Conn = s.id
	}
	if out {
		if s != nil {
			before = s.derivePassive(e.Flags)
		}
		if strings.ContainsAny(e.Flags, "FR") {
			ev.Reason = p.reason(s, g, local, remote)
		}
		if s != nil {
			s.noteOut(g)
		}
		before = append(before, ev)
	} else {
		if s != nil {
			s.noteIn(g)
		}
		after = append(after, ev)
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return before, after
}

// run is the Peer's goroutine: it samples every live connection right after
// a segment, again followUp later, and every pollInterval, until Close.
func (p *Peer) run() {
	defer p.wg.Done()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	again := time.NewTimer(time.Hour)
	defer again.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
			p.sampleAll()
			again.Reset(followUp)
		case <-again.C:
			p.sampleAll()
		case <-tick.C:
			p.sampleAll()
		}
	}
}

// sampleAll samples every connection that may still change state.
func (p *Peer) sampleAll() {
	p.mu.Lock()
	socks := append([]*Socket(nil), p.socks...)
	p.mu.Unlock()
	for _, s := range socks {
		if !s.finished() {
			s.sample()
		}
	}
}

// lookup returns the connection a segment belongs to, creating the record
// of a passive open when a SYN reaches a listening port.
func (p *Peer) lookup(port uint16, remote netip.AddrPort, out bool, flags string) *Socket {
	key := connKey{localPort: port, remote: remote}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.conns[key]
	syn := strings.Contains(flags, "S") && !strings.Contains(flags, ".")
	if !out && syn && (s == nil || s.reusable()) {
		if l := p.listeners[port]; l != nil && !l.isClosed() {
			s = p.newConnLocked(key, "LISTEN")
			s.listener = l
		} else if p.adopt && p.obs == nil {
			// Sampled: no listener is known; sock_diag will say.
			s = p.newConnLocked(key, "CLOSED")
		}
	}
	if p.adopt && out && syn && (s == nil || s.reusable()) {
		// The program's connect: sampled mode meets it here first.
		s = p.newConnLocked(key, "CLOSED")
	}
	return s
}

// adoptListenerLocked returns the listener record for a program's socket
// that started listening on port (Config.Adopt), creating it.
func (p *Peer) adoptListenerLocked(port uint16) *Listener {
	if l := p.listeners[port]; l != nil && !l.isClosed() {
		return l
	}
	l := &Listener{p: p, id: p.ids.next("l"), port: port}
	p.listeners[port] = l
	p.lns = append(p.lns, l)
	return l
}
