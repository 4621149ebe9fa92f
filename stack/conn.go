package stack

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tcplab/tcplab/stack/trace"
)

// How selects the direction of a Shutdown.
type How int

// The arguments of shutdown(2).
const (
	ShutRD How = iota
	ShutWR
	ShutRDWR
)

// String returns "SHUT_RD", "SHUT_WR" or "SHUT_RDWR".
func (h How) String() string {
	return [...]string{"SHUT_RD", "SHUT_WR", "SHUT_RDWR"}[h]
}

// Conn is one TCP connection of a Host, driven like a blocking socket. As
// with a socket, one goroutine may Read while another writes, shuts down or
// closes; two concurrent Reads (or Writes) are not supported.
type Conn struct {
	h        *Host
	id       string
	key      connKey
	listener *Listener // set for passive opens until accepted

	ep      atomic.Pointer[tcp.Endpoint]
	retired atomic.Bool // queued to be forgotten (Host.retire)
	wq      *waiter.Queue
	// nonblock: calls return EAGAIN instead of waiting (SetNonblock).
	nonblock atomic.Bool

	mu       sync.Mutex
	state    string
	prev     string // the state before state
	snd, rcv int
	// What the application did, for the reasons of FINs and RSTs.
	closed, shutRD, shutWR bool
	accepted               bool
	gone                   bool // forgotten by the host (Host.mu)
	lingerZero             bool
	finCause               string // the call that queued our FIN
	inCall                 string // close()/shutdown(...) in progress
	unreadAtCall           int    // receive queue when that call began
	lastIn                 segment
	haveIn                 bool
	dataAfterClose         bool // payload arrived after close()
	dataAfterShutRD        bool // payload arrived after shutdown(SHUT_RD)
	rstSent                bool
	inWhileClosed          bool // the last segment arrived after the connection was gone
	finSeq, finAck         uint32
	finSent                bool
	written, read          int
	led                    wireLedger // accepted arrivals only
	rx                     rxModel    // to judge arrivals (verdict.go)
}

// ID returns the connection's name in the trace ("c1", ...).
func (c *Conn) ID() string { return c.id }

// LocalAddr returns the host's side of the connection.
func (c *Conn) LocalAddr() netip.AddrPort { return netip.AddrPortFrom(c.h.addr, c.key.localPort) }

// RemoteAddr returns the peer's side of the connection.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.key.remote }

// State returns the connection's TCP state as the stack reports it now.
func (c *Conn) State() string {
	if ep := c.ep.Load(); ep != nil {
		return StateName(ep.State())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// reusable reports whether a new SYN on this 4-tuple starts a new
// connection (the old one is gone).
func (c *Conn) reusable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == "CLOSED" || c.state == "TIME-WAIT"
}

// attach gives the record its endpoint. With a waiter queue it is the
// owning socket's endpoint (Dial, Accept), which replaces a watch-only one
// and is watched for state changes; without, it is a watch-only look at a
// passive open's endpoint before accept(), taken only while nothing owns
// the record yet.
func (c *Conn) attach(ep *tcp.Endpoint, wq *waiter.Queue) {
	c.mu.Lock()
	if wq == nil && (c.ep.Load() != nil || c.listener == nil || c.accepted) {
		c.mu.Unlock()
		return
	}
	c.ep.Store(ep)
	if wq != nil {
		c.wq = wq
	}
	c.mu.Unlock()
	// Registered outside c.mu: the queue calls sample, which takes it.
	if c.h.rec != nil && wq != nil {
		e := waiter.NewFunctionEntry(waiter.EventIn|waiter.EventOut|waiter.EventHUp|waiter.EventErr|waiter.EventRdHUp, func(waiter.EventMask) { c.sample() })
		wq.EventRegister(&e)
	}
}

// findEndpoint looks up the endpoint of a passive open that has not been
// accepted yet, so its states can be watched before accept().
func (c *Conn) findEndpoint() {
	c.mu.Lock()
	want := c.ep.Load() == nil && c.listener != nil && !c.accepted
	c.mu.Unlock()
	if !want {
		return
	}
	id := endpointID(c)
	if te := c.h.s.FindTransportEndpoint(header.IPv4ProtocolNumber, tcp.ProtocolNumber, id, nicID); te != nil {
		if ep, ok := te.(*tcp.Endpoint); ok && ep.EndpointState() != tcp.StateListen {
			c.attach(ep, nil)
		}
	}
}

// sample emits a state event if the endpoint's state changed since the
// last sample. It reads the endpoint's atomic state under c.mu, so samples
// taken concurrently (probe, waiter queue, poller, calls) are emitted in
// the order the stack went through them; it is safe in the probe.
func (c *Conn) sample() {
	if c.h.rec == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ep := c.ep.Load()
	if ep == nil {
		return
	}
	c.setStateLocked(StateName(ep.State()), "")
}

// stateSucc lists, for each TCP state, the states a connection may go to
// next (RFC 9293's diagram; a sample may skip states, see reachable). A
// record starts in "" (CLOSED, before anything happened); "CLOSED" after
// that is final.
var stateSucc = map[string][]string{
	"":             {"LISTEN", "SYN-SENT", "SYN-RECEIVED", "CLOSED"},
	"LISTEN":       {"SYN-RECEIVED", "SYN-SENT", "CLOSED"},
	"SYN-SENT":     {"SYN-RECEIVED", "ESTABLISHED", "CLOSED"},
	"SYN-RECEIVED": {"ESTABLISHED", "FIN-WAIT-1", "CLOSED"},
	"ESTABLISHED":  {"FIN-WAIT-1", "CLOSE-WAIT", "CLOSED"},
	"FIN-WAIT-1":   {"FIN-WAIT-2", "CLOSING", "TIME-WAIT", "CLOSED"},
	"FIN-WAIT-2":   {"TIME-WAIT", "CLOSED"},
	"CLOSING":      {"TIME-WAIT", "CLOSED"},
	"TIME-WAIT":    {"CLOSED"},
	"CLOSE-WAIT":   {"LAST-ACK", "CLOSED"},
	"LAST-ACK":     {"CLOSED"},
}

// reachable reports whether a connection in state from can be in state to
// later: to is a successor of from, directly or through states a sample
// did not see.
func reachable(from, to string) bool {
	seen := map[string]bool{}
	next := []string{from}
	for len(next) > 0 {
		s := next[0]
		next = next[1:]
		for _, t := range stateSucc[s] {
			if t == to {
				return true
			}
			if !seen[t] {
				seen[t] = true
				next = append(next, t)
			}
		}
	}
	return false
}

// setStateLocked records the move of c to state st. A move TCP cannot make
// (back to a handshake state, out of the final CLOSED) is not recorded: it
// would be a sampling error of tcplab, not something the stack did; it is
// reported as a note instead. c.mu is held.
func (c *Conn) setStateLocked(st, text string) {
	if st == c.state || c.h.closing.Load() {
		return
	}
	cur := c.state
	if cur == "CLOSED" && c.prev == "" {
		cur = "" // a Dial's record before its SYN
	}
	from := c.state
	if from == "" {
		from = "CLOSED"
	}
	if !reachable(cur, st) {
		c.h.rec.Emit(trace.Event{Host: c.h.name, Kind: trace.Note, Conn: c.id,
			Text: fmt.Sprintf("tcplab: ignored an impossible state order %s -> %s (a bug in tcplab's sampling)", from, st)})
		return
	}
	if from == "LISTEN" && st == "SYN-RECEIVED" {
		// Seen either from the SYN-ACK or from the endpoint itself,
		// whichever comes first: say the same either way.
		text = "the listener answers the SYN"
	}
	c.prev, c.state = c.state, st
	c.h.rec.Emit(trace.Event{Host: c.h.name, Kind: trace.State, Conn: c.id, From: from, To: st, Text: text})
	if st == "CLOSED" {
		c.h.retire(c)
	}
}

// derivePassiveState reports SYN-RECEIVED for a passive open whose endpoint
// the listener has not created yet (gVisor answers the SYN from the
// listener), when its SYN-ACK leaves.
func (c *Conn) derivePassiveState(s *segment) {
	if s.flags != header.TCPFlagSyn|header.TCPFlagAck {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep.Load() != nil {
		return
	}
	c.setStateLocked("SYN-RECEIVED", "the listener answers the SYN")
}

func (c *Conn) setBuffers(snd, rcv int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setBuffersLocked(snd, rcv)
}

func (c *Conn) setBuffersLocked(snd, rcv int) {
	if (snd == c.snd && rcv == c.rcv) || c.h.closing.Load() {
		return
	}
	c.snd, c.rcv = snd, rcv
	c.h.rec.Emit(trace.Event{Host: c.h.name, Kind: trace.Buffer, Conn: c.id, SndQueued: snd, RcvQueued: rcv})
}

func (c *Conn) noteIn(s *segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastIn, c.haveIn = *s, true
	c.inWhileClosed = c.state == "CLOSED" && c.prev != ""
	c.led.in(s)
	if s.flags&header.TCPFlagRst != 0 {
		c.led.destroy(c.snd, c.rcv, "RST received")
	}
	if s.len > 0 {
		c.dataAfterClose = c.dataAfterClose || c.closed
		c.dataAfterShutRD = c.dataAfterShutRD || c.shutRD
	}
}

func (c *Conn) noteOut(s *segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.led.out(s)
	if s.flags&(header.TCPFlagFin|header.TCPFlagRst) == 0 {
		return
	}
	if s.flags&header.TCPFlagRst != 0 {
		c.rstSent = true
		unread := c.rcv
		if c.inCall != "" {
			unread = c.unreadAtCall
		}
		c.led.destroy(c.snd, unread, "RST sent")
		return
	}
	c.finSeq, c.finAck, c.finSent = s.seq+uint32(s.len), s.ack, true
}

// call records a socket call: it takes its place in the trace when the call
// starts, and its result is filled in by the returned function.
func (c *Conn) call(name, arg string) func(ret int, err error, data []byte) {
	return c.h.call(c.id, name, arg)
}

func (h *Host) call(conn, name, arg string) func(ret int, err error, data []byte) {
	if h.rec == nil {
		return func(int, error, []byte) {}
	}
	p := h.rec.Begin(trace.Event{Host: h.name, Kind: trace.Call, Conn: conn, Call: name, Arg: arg})
	return func(ret int, err error, data []byte) {
		p.End(func(e *trace.Event) {
			e.Ret, e.Err, e.Data = ret, ErrName(err), trace.Preview(data)
		})
	}
}

// blockingCall records a call that may wait for the peer (read, accept,
// connect): it enters the trace when it returns, after what woke it.
func (h *Host) blockingCall(conn, name, arg string, ret int, err error, data []byte) {
	if h.rec == nil {
		return
	}
	h.rec.Emit(trace.Event{Host: h.name, Kind: trace.Call, Conn: conn, Call: name, Arg: arg, Ret: ret, Err: ErrName(err), Data: trace.Preview(data)})
}

// wait blocks until one of mask's events is signalled on wq, ready() turns
// true, or ctx ends. While it waits the host counts the call as blocked
// (see Host.Blocked).
func (h *Host) wait(ctx context.Context, wq *waiter.Queue, mask waiter.EventMask, ready func() bool) error {
	e, ch := waiter.NewChannelEntry(mask)
	wq.EventRegister(&e)
	defer wq.EventUnregister(&e)
	if ready() {
		return nil
	}
	defer h.blockCtx(ctx, h.deadline(ctx))()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Write copies p into the send buffer, blocking while the buffer is full,
// and returns once every byte is queued — before the bytes leave, as a
// socket's write() does. It returns how many bytes were queued.
func (c *Conn) Write(ctx context.Context, p []byte) (int, error) {
	done := c.call("write", strconv.Itoa(len(p)))
	ep := c.ep.Load()
	total := 0
	var err error
	for total < len(p) {
		var n int64
		var terr tcpip.Error
		r := bytes.NewReader(p[total:])
		n, terr = ep.Write(r, tcpip.WriteOptions{})
		total += int(n)
		if n > 0 {
			c.mu.Lock()
			c.written += int(n)
			if c.h.rec != nil {
				c.setBuffersLocked(c.snd+int(n), c.rcv)
			}
			c.mu.Unlock()
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); ok {
			if c.nonblock.Load() {
				if total == 0 {
					err = syscall.EAGAIN
				}
				break
			}
			if err = c.h.wait(ctx, c.wq, waiter.WritableEvents|waiter.EventHUp|waiter.EventErr, func() bool {
				return ep.Readiness(waiter.WritableEvents|waiter.EventHUp|waiter.EventErr) != 0
			}); err != nil {
				break
			}
			continue
		}
		if terr != nil {
			err = errnoOf(terr)
			break
		}
	}
	done(total, err, p[:total])
	c.sample()
	return total, err
}

// Read blocks until data, end of stream or an error arrives, then copies up
// to len(p) bytes out of the receive buffer. At end of stream it returns
// 0, io.EOF; a reset connection gives syscall.ECONNRESET.
func (c *Conn) Read(ctx context.Context, p []byte) (int, error) {
	ep := c.ep.Load()
	var n int
	var err error
	for {
		w := tcpip.SliceWriter(p)
		res, terr := ep.Read(&w, tcpip.ReadOptions{})
		if _, ok := terr.(*tcpip.ErrWouldBlock); ok {
			if c.nonblock.Load() {
				err = syscall.EAGAIN
				break
			}
			if err = c.h.wait(ctx, c.wq, waiter.ReadableEvents|waiter.EventHUp|waiter.EventErr, func() bool {
				return ep.Readiness(waiter.ReadableEvents|waiter.EventHUp|waiter.EventErr) != 0
			}); err != nil {
				break
			}
			continue
		}
		n, err = res.Count, errnoOf(terr)
		break
	}
	c.h.blockingCall(c.id, "read", strconv.Itoa(len(p)), n, err, p[:n])
	c.afterRead(n)
	c.sample()
	return n, err
}

// TryRead is Read without blocking: it returns syscall.EAGAIN when nothing
// is ready.
func (c *Conn) TryRead(p []byte) (int, error) {
	ep := c.ep.Load()
	w := tcpip.SliceWriter(p)
	res, terr := ep.Read(&w, tcpip.ReadOptions{})
	var err error
	if _, ok := terr.(*tcpip.ErrWouldBlock); ok {
		err = syscall.EAGAIN
	} else {
		err = errnoOf(terr)
	}
	c.h.blockingCall(c.id, "read", strconv.Itoa(len(p))+",nonblock", res.Count, err, p[:res.Count])
	c.afterRead(res.Count)
	c.sample()
	return res.Count, err
}

func (c *Conn) afterRead(n int) {
	if c.h.rec == nil {
		return
	}
	rcv := c.unread()
	c.mu.Lock()
	c.read += n
	c.setBuffersLocked(c.snd, rcv)
	c.mu.Unlock()
}

// unread returns the bytes waiting in the receive buffer.
func (c *Conn) unread() int {
	ep := c.ep.Load()
	if ep == nil {
		return 0
	}
	v, err := ep.GetSockOptInt(tcpip.ReceiveQueueSizeOption)
	if err != nil {
		return 0
	}
	return v
}

// Shutdown shuts down one or both directions, as shutdown(2). SHUT_WR
// queues a FIN behind the data already written; the socket stays usable
// for reading.
func (c *Conn) Shutdown(how How) error {
	name := "shutdown(" + how.String() + ")"
	unread := c.unread()
	c.mu.Lock()
	if how != ShutWR {
		c.shutRD = true
	}
	if how != ShutRD {
		c.shutWR = true
		if c.finCause == "" {
			c.finCause = name
		}
	}
	c.inCall, c.unreadAtCall = name, unread
	c.mu.Unlock()

	done := c.call("shutdown", how.String())
	flags := map[How]tcpip.ShutdownFlags{ShutRD: tcpip.ShutdownRead, ShutWR: tcpip.ShutdownWrite, ShutRDWR: tcpip.ShutdownRead | tcpip.ShutdownWrite}[how]
	err := errnoOf(c.ep.Load().Shutdown(flags))
	c.endCall()
	done(0, err, nil)
	return err
}

// Close closes the socket, as close(2). With unread data, or with
// SO_LINGER 0, the stack aborts with RST; otherwise it sends FIN and the
// connection lives on without its socket (FIN-WAIT-*, TIME-WAIT). With
// SO_LINGER on and a timeout, it blocks until the peer acknowledged our
// FIN or the timeout passed (on the lab's clock).
func (c *Conn) Close() error {
	unread := c.unread()
	c.mu.Lock()
	c.closed, c.shutRD, c.shutWR = true, true, true
	if c.finCause == "" {
		c.finCause = "close()"
	}
	c.inCall, c.unreadAtCall = "close()", unread
	c.mu.Unlock()

	done := c.call("close", "")
	ep := c.ep.Load()
	linger := ep.SocketOptions().GetLinger()
	ep.Close()
	if linger.Enabled && linger.Timeout > 0 {
		c.linger(ep, linger.Timeout)
	}
	c.endCall()
	done(0, nil, nil)
	if c.h.rec == nil {
		c.h.retire(c) // untraced: nothing more to say about it
	}
	return nil
}

// linger blocks a close() with SO_LINGER {on, d}, as Linux and gVisor's
// sentry do: until the stack no longer waits for the peer to acknowledge
// our data and FIN (the state leaves FIN-WAIT-1, CLOSING and LAST-ACK), or
// d passes on the stack's clock. The connection then lives on without its
// socket; close() returns 0 either way.
func (c *Conn) linger(ep *tcp.Endpoint, d time.Duration) {
	lingering := func() bool {
		switch StateName(ep.State()) {
		case "FIN-WAIT-1", "CLOSING", "LAST-ACK":
			return true
		}
		return false
	}
	if !lingering() {
		return
	}
	expired := make(chan struct{})
	t := c.h.s.Clock().AfterFunc(d, func() { close(expired) })
	defer t.Stop()
	e, ch := waiter.NewChannelEntry(waiter.EventHUp | waiter.EventErr | waiter.EventOut)
	c.wq.EventRegister(&e)
	defer c.wq.EventUnregister(&e)
	defer c.h.block(c.h.s.Clock().Now().Add(d))()
	// The state is atomic; the waiter queue does not signal every change,
	// so look again every millisecond too.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for lingering() {
		select {
		case <-expired:
			return
		case <-ch:
		case <-tick.C:
		}
	}
}

func (c *Conn) endCall() {
	c.sample()
	c.mu.Lock()
	c.inCall = ""
	c.mu.Unlock()
}

// SetLinger sets SO_LINGER. on with a zero timeout makes Close abortive:
// it sends RST and discards the send queue.
func (c *Conn) SetLinger(on bool, timeout time.Duration) error {
	done := c.call("setsockopt", fmt.Sprintf("SO_LINGER{on=%v,%s}", on, timeout))
	c.ep.Load().SocketOptions().SetLinger(tcpip.LingerOption{Enabled: on, Timeout: timeout})
	c.mu.Lock()
	c.lingerZero = on && timeout == 0
	c.mu.Unlock()
	done(0, nil, nil)
	return nil
}

// SetNoDelay sets TCP_NODELAY (disables Nagle's algorithm).
func (c *Conn) SetNoDelay(on bool) error {
	done := c.call("setsockopt", fmt.Sprintf("TCP_NODELAY=%v", on))
	c.ep.Load().SocketOptions().SetDelayOption(!on)
	done(0, nil, nil)
	return nil
}

// SetSendBuffer sets SO_SNDBUF in bytes (the stack may clamp it).
func (c *Conn) SetSendBuffer(n int) error {
	done := c.call("setsockopt", fmt.Sprintf("SO_SNDBUF=%d", n))
	c.ep.Load().SocketOptions().SetSendBufferSize(int64(n), true)
	done(0, nil, nil)
	return nil
}

// SetReceiveBuffer sets SO_RCVBUF in bytes (the stack may clamp it).
func (c *Conn) SetReceiveBuffer(n int) error {
	done := c.call("setsockopt", fmt.Sprintf("SO_RCVBUF=%d", n))
	c.ep.Load().SocketOptions().SetReceiveBufferSize(int64(n), true)
	done(0, nil, nil)
	return nil
}

// Ledger follows a connection's bytes, one direction each way, from the
// application through the stack to the wire and back.
type Ledger struct {
	Written   int // bytes passed to write() and accepted
	SndQueued int // written but not yet acknowledged by the peer
	Sent      int // highest byte put on the wire (retransmissions count once)
	Acked     int // bytes the peer acknowledged
	Received  int // bytes that arrived from the peer (in sequence order)
	RcvQueued int // received but not yet read
	Read      int // bytes returned by read()
	// Discarded is set when a RST destroyed the connection: the bytes
	// still queued at that moment, which no one will ever deliver.
	Discarded *Discarded
}

// Discarded tells which bytes a reset destroyed.
type Discarded struct {
	By      string // "RST sent" or "RST received"
	Unacked int    // in this side's send queue, never acknowledged
	Unread  int    // in this side's receive queue, never read
}

// Ledger returns the connection's byte counts as last observed.
func (c *Conn) Ledger() Ledger {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := Ledger{Written: c.written, Read: c.read, SndQueued: c.snd, RcvQueued: c.rcv}
	l.Sent, l.Acked, l.Received = c.led.counts()
	if l.Acked > l.Written {
		l.Acked = l.Written // the ACK of our FIN
	}
	if c.led.discarded != nil {
		d := *c.led.discarded
		l.Discarded = &d
	}
	return l
}

// wireLedger counts bytes from the sequence numbers seen by the tap.
type wireLedger struct {
	isnOut, isnIn         uint32
	haveOut, haveIn       bool
	sentEnd, ackEnd       uint32 // highest seq+len sent, highest ack received
	rcvEnd                uint32 // highest seq+len received
	hasSent, hasAck, hasR bool
	discarded             *Discarded
}

func after(a, b uint32) bool { return int32(a-b) > 0 }

func (w *wireLedger) out(s *segment) {
	if s.flags&header.TCPFlagSyn != 0 {
		w.isnOut, w.haveOut = s.seq, true
		return
	}
	if end := s.seq + uint32(s.len); w.haveOut && s.len > 0 && (!w.hasSent || after(end, w.sentEnd)) {
		w.sentEnd, w.hasSent = end, true
	}
}

func (w *wireLedger) in(s *segment) {
	if s.flags&header.TCPFlagSyn != 0 {
		w.isnIn, w.haveIn = s.seq, true
	}
	if s.flags&header.TCPFlagAck != 0 && w.haveOut && (!w.hasAck || after(s.ack, w.ackEnd)) {
		w.ackEnd, w.hasAck = s.ack, true
	}
	if end := s.seq + uint32(s.len); w.haveIn && s.len > 0 && (!w.hasR || after(end, w.rcvEnd)) {
		w.rcvEnd, w.hasR = end, true
	}
}

func (w *wireLedger) destroy(unacked, unread int, by string) {
	if w.discarded == nil {
		w.discarded = &Discarded{By: by, Unacked: unacked, Unread: unread}
	}
}

func (w *wireLedger) counts() (sent, acked, received int) {
	if w.hasSent {
		sent = int(w.sentEnd - w.isnOut - 1)
	}
	if w.hasAck && after(w.ackEnd, w.isnOut+1) {
		acked = int(w.ackEnd - w.isnOut - 1)
	}
	if w.hasR {
		received = int(w.rcvEnd - w.isnIn - 1)
	}
	return
}
