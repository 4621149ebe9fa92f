package kernelpeer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

var (
	_ stack.Socket       = (*Socket)(nil)
	_ stack.ListenSocket = (*Listener)(nil)
)

// seg is what the reasons need to know of a segment.
type seg struct {
	flags    string
	seq, ack uint32
	len      int
}

// Socket is one kernel TCP connection, driven like a blocking socket: the
// record of the connection in the trace, and while the application holds
// it, its file descriptor (non-blocking, waited on with Go's poller so that
// every blocking call can be cancelled by its context). Calls on one Socket
// must not run concurrently.
type Socket struct {
	p   *Peer
	id  string
	key connKey

	fmu sync.Mutex
	f   *os.File // nil before accept and after close
	rc  syscall.RawConn
	// nonblock: calls return EAGAIN instead of waiting (SetNonblock).
	nonblock atomic.Bool

	// emu serialises the changes of the record with the recording of their
	// events, which happens after mu is released: the recorder's mirror
	// hook takes mu with the recorder's lock held.
	emu      sync.Mutex
	mu       sync.Mutex
	pending  []timedEvent // events of changes made under mu, not yet recorded
	state    string
	prev     string
	alive    bool      // the kernel has shown the connection in a state
	tw       bool      // last seen as a timewait socket
	twGone   time.Time // when sock_diag first missed the timewait socket
	listener *Listener
	snd, rcv int
	written  int
	read     int
	// What the application did, for the reasons of FINs and RSTs.
	closed, shutRD, shutWR bool
	accepted               bool
	lingerZero             bool
	finCause               string
	finNote                string // how finCause was inferred (Config.Adopt), "" when a call set it
	unreadAtClose          int
	rcvAtEnd               int  // the receive queue last sampled before the kernel closed the connection
	orphanSeen             bool // sock_diag showed the socket without its file (closed by a program)
	lastIn                 seg
	haveIn                 bool
	finSeq                 uint32
	finSent                bool
	rstSent                bool   // the kernel reset the connection
	inWhileClosed          bool   // the last segment in found it CLOSED
	finIn                  bool   // a FIN came in
	finInAck               uint32 // what it acknowledged
}

// ID returns the connection's name in the trace ("c1", ...).
func (s *Socket) ID() string { return s.id }

// LocalAddr returns the kernel's side of the connection.
func (s *Socket) LocalAddr() netip.AddrPort { return netip.AddrPortFrom(s.p.addr, s.key.localPort) }

// RemoteAddr returns the other host's side of the connection.
func (s *Socket) RemoteAddr() netip.AddrPort { return s.key.remote }

// attach wraps fd in an os.File registered with Go's poller.
func (s *Socket) attach(fd int) error {
	f, rc, err := fileOf(fd, "tcp "+s.id)
	if err != nil {
		return err
	}
	s.fmu.Lock()
	s.f, s.rc = f, rc
	s.fmu.Unlock()
	return nil
}

func fileOf(fd int, name string) (*os.File, syscall.RawConn, error) {
	f := os.NewFile(uintptr(fd), name)
	if f == nil {
		return nil, nil, fmt.Errorf("wrap socket %d: %w", fd, unix.EBADF)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("wrap socket %d: %w", fd, err)
	}
	return f, rc, nil
}

func (s *Socket) file() (*os.File, syscall.RawConn) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.f, s.rc
}

// detach takes the file away from the socket (close).
func (s *Socket) detach() *os.File {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	f := s.f
	s.f, s.rc = nil, nil
	return f
}

// control runs fn on the descriptor, or fails with EBADF after close.
func (s *Socket) control(fn func(fd int) error) error {
	_, rc := s.file()
	if rc == nil {
		return unix.EBADF
	}
	var err error
	if cerr := rc.Control(func(fd uintptr) { err = fn(int(fd)) }); cerr != nil {
		return cerr
	}
	return err
}

// waitIO runs op on f's descriptor through the poller (read or write
// readiness), until op reports done or ctx ends; ctx ending sets a deadline
// in the past, which wakes the waiter. Nothing outlives the call.
func waitIO(ctx context.Context, f *os.File, rc syscall.RawConn, write bool, op func(fd uintptr) bool) error {
	setDeadline := f.SetReadDeadline
	if write {
		setDeadline = f.SetWriteDeadline
	}
	setDeadline(time.Time{})
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		setDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
		}
	}()
	var err error
	noted := false
	wrapped := func(fd uintptr) bool {
		if op(fd) {
			return true
		}
		if !noted {
			noted = true
			stack.NoteWaiting(ctx) // the call waits from here
		}
		return false
	}
	if write {
		err = rc.Write(wrapped)
	} else {
		err = rc.Read(wrapped)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// waitConnected waits for a non-blocking connect to finish.
func (s *Socket) waitConnected(ctx context.Context) error {
	f, rc := s.file()
	var err error
	werr := waitIO(ctx, f, rc, true, func(fd uintptr) bool {
		e, gerr := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if gerr != nil {
			err = gerr
			return true
		}
		if e != 0 {
			err = unix.Errno(e)
			return true
		}
		if _, perr := unix.Getpeername(int(fd)); errors.Is(perr, unix.ENOTCONN) {
			return false // still SYN-SENT
		}
		return true
	})
	if werr != nil {
		return werr
	}
	return err
}

// abort closes the descriptor of a connection that failed to open.
func (s *Socket) abort() {
	if f := s.detach(); f != nil {
		f.Close()
	}
}

// release aborts what is left of the connection at Peer.Close: an open
// socket is closed with SO_LINGER 0, an orphan still alive is destroyed
// through sock_diag. Timewait sockets are left to the kernel: they do not
// keep the namespace alive.
func (s *Socket) release() error {
	if f := s.detach(); f != nil {
		return closeAbortive(f)
	}
	info, found, err := s.p.diag.get(s.LocalAddr(), s.key.remote)
	if err != nil || !found || info.timer == diagTimerTW {
		return err
	}
	if err := s.p.diag.destroy(s.LocalAddr(), s.key.remote); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("destroy %s: %w", s.id, err)
	}
	return nil
}

// closeAbortive closes f with SO_LINGER 0: the kernel frees the connection
// at once (with a RST if its state calls for one).
func closeAbortive(f *os.File) error {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
		})
	}
	return f.Close()
}

// Write queues all of p, blocking while the send buffer is full, and
// returns once every byte is queued (write(2) with MSG_NOSIGNAL: a reset
// connection gives syscall.EPIPE or ECONNRESET, never SIGPIPE).
func (s *Socket) Write(ctx context.Context, p []byte) (int, error) {
	done := s.p.call(s.id, "write", strconv.Itoa(len(p)))
	total := 0
	var err error
	f, rc := s.file()
	if f == nil {
		err = unix.EBADF
	} else {
		werr := waitIO(ctx, f, rc, true, func(fd uintptr) bool {
			for total < len(p) {
				n, e := unix.SendmsgN(int(fd), p[total:], nil, nil, unix.MSG_NOSIGNAL)
				if n > 0 {
					total += n
				}
				if errors.Is(e, unix.EAGAIN) {
					if s.nonblock.Load() {
						if total == 0 {
							err = e
						}
						return true
					}
					return false
				}
				if e != nil {
					err = e
					return true
				}
			}
			return true
		})
		if err == nil {
			err = werr
		}
	}
	s.mu.Lock()
	s.written += total
	s.mu.Unlock()
	s.sample()
	done(total, err, p[:total])
	return total, err
}

// Read blocks until data, end of stream or an error is there, then copies
// up to len(p) bytes out of the receive queue. At end of stream it returns
// 0, io.EOF; otherwise errors are syscall.Errno values (ECONNRESET, ...).
func (s *Socket) Read(ctx context.Context, p []byte) (int, error) {
	n := 0
	var err error
	f, rc := s.file()
	if f == nil {
		err = unix.EBADF
	} else {
		werr := waitIO(ctx, f, rc, false, func(fd uintptr) bool {
			n, err = unix.Read(int(fd), p)
			return !errors.Is(err, unix.EAGAIN) || s.nonblock.Load()
		})
		switch {
		case werr != nil:
			n, err = 0, werr
		case err != nil:
			n = 0
		case n == 0 && len(p) > 0:
			err = io.EOF
		}
	}
	s.p.blockingCall(s.id, "read", strconv.Itoa(len(p)), n, err, p[:n])
	s.mu.Lock()
	s.read += n
	s.mu.Unlock()
	s.sample()
	return n, err
}

// unread returns the bytes waiting in the receive queue (SIOCINQ).
func (s *Socket) unread() int {
	n := 0
	s.control(func(fd int) error {
		v, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
		if err == nil {
			n = v
		}
		return err
	})
	return n
}

// Shutdown shuts down one or both directions, as shutdown(2).
func (s *Socket) Shutdown(how stack.How) error {
	name := "shutdown(" + how.String() + ")"
	s.mu.Lock()
	if how != stack.ShutWR {
		s.shutRD = true
	}
	fin := how != stack.ShutRD && !s.shutWR
	if how != stack.ShutRD {
		s.shutWR = true
		if s.finCause == "" {
			s.finCause = name
		}
	}
	s.mu.Unlock()
	done := s.p.call(s.id, "shutdown", how.String())
	if fin && s.hasFile() {
		s.deriveFin()
	}
	flag := map[stack.How]int{stack.ShutRD: unix.SHUT_RD, stack.ShutWR: unix.SHUT_WR, stack.ShutRDWR: unix.SHUT_RDWR}[how]
	err := s.control(func(fd int) error { return unix.Shutdown(fd, flag) })
	s.sample()
	done(retOf(err), err, nil)
	return err
}

func retOf(err error) int {
	if err != nil {
		return -1
	}
	return 0
}

// Close closes the descriptor, as close(2): FIN after the queued data, or
// RST when unread data is waiting or SO_LINGER is 0; the connection may live
// on as an orphan (FIN-WAIT-*, LAST-ACK) or a timewait socket, which the
// trace keeps following. With SO_LINGER on and a timeout, Close blocks until
// the data is acknowledged or the timeout expires.
func (s *Socket) Close() error {
	unread := s.unread()
	s.mu.Lock()
	fin := !s.shutWR && unread == 0 && !s.lingerZero
	s.closed, s.shutRD, s.shutWR = true, true, true
	if s.finCause == "" {
		s.finCause = "close()"
	}
	s.unreadAtClose = unread
	s.mu.Unlock()
	done := s.p.call(s.id, "close", "")
	if fin && s.hasFile() {
		s.deriveFin()
	}
	var err error
	if f := s.detach(); f == nil {
		err = unix.EBADF
	} else {
		err = f.Close()
	}
	s.sample()
	done(retOf(err), err, nil)
	return err
}

// SetLinger sets SO_LINGER (whole seconds). on with a zero timeout makes
// Close abortive: RST, and the send queue is discarded.
func (s *Socket) SetLinger(on bool, timeout time.Duration) error {
	done := s.p.call(s.id, "setsockopt", fmt.Sprintf("SO_LINGER{on=%v,%s}", on, timeout))
	l := unix.Linger{Linger: int32(timeout / time.Second)}
	if on {
		l.Onoff = 1
	}
	err := s.control(func(fd int) error { return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &l) })
	if err == nil {
		s.mu.Lock()
		s.lingerZero = on && l.Linger == 0
		s.mu.Unlock()
	}
	done(retOf(err), err, nil)
	return err
}

// SetNoDelay sets TCP_NODELAY (disables Nagle's algorithm).
func (s *Socket) SetNoDelay(on bool) error {
	return s.setInt(fmt.Sprintf("TCP_NODELAY=%v", on), unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(on))
}

// SetSendBuffer sets SO_SNDBUF in bytes (Linux doubles it for bookkeeping
// and clamps it to net.core.wmem_max).
func (s *Socket) SetSendBuffer(n int) error {
	return s.setInt(fmt.Sprintf("SO_SNDBUF=%d", n), unix.SOL_SOCKET, unix.SO_SNDBUF, n)
}

// SetReceiveBuffer sets SO_RCVBUF in bytes (Linux doubles it for
// bookkeeping and clamps it to net.core.rmem_max).
func (s *Socket) SetReceiveBuffer(n int) error {
	return s.setInt(fmt.Sprintf("SO_RCVBUF=%d", n), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
}

func (s *Socket) setInt(arg string, level, opt, v int) error {
	done := s.p.call(s.id, "setsockopt", arg)
	err := s.control(func(fd int) error { return unix.SetsockoptInt(fd, level, opt, v) })
	done(retOf(err), err, nil)
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// State returns the connection's state as the kernel reports it now
// (sock_diag by 4-tuple: it follows the connection after close, into
// FIN-WAIT-2 or TIME-WAIT); "CLOSED" once the kernel has forgotten it.
// Cost: one netlink round trip.
func (s *Socket) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == "LISTEN" {
		return s.state // a passive open whose SYN-ACK has not left yet
	}
	info, found, err := s.p.diag.get(s.LocalAddr(), s.key.remote)
	switch {
	case err != nil:
		return s.state
	case found:
		return StateName(info.state)
	}
	return "CLOSED"
}

// Ledger returns the bytes written and read by the application, and the
// queues as the kernel reports them now: written but not acknowledged (the
// FIN not counted) and received but not read. Cost: one netlink round trip.
func (s *Socket) Ledger() stack.Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := stack.Ledger{Written: s.written, Read: s.read, SndQueued: s.snd, RcvQueued: s.rcv}
	if info, found, err := s.p.diag.get(s.LocalAddr(), s.key.remote); err == nil {
		l.SndQueued, l.RcvQueued = queues(info, found)
	}
	return l
}

// queues returns the send and receive queue of a diag answer in bytes of
// data: Linux counts our SYN or FIN in the send queue until it is
// acknowledged (write_seq - snd_una) and the peer's FIN in the receive
// queue (rcv_nxt - copied_seq).
func queues(info diagInfo, found bool) (snd, rcv int) {
	if !found {
		return 0, 0
	}
	snd, rcv = info.wqueue, info.rqueue
	switch StateName(info.state) {
	case "SYN-SENT", "SYN-RECEIVED", "FIN-WAIT-1":
		snd--
	case "CLOSING", "LAST-ACK":
		snd--
		rcv--
	case "CLOSE-WAIT":
		rcv--
	case "LISTEN":
		rcv = 0 // the accept backlog, not bytes
	}
	return max(snd, 0), max(rcv, 0)
}

// finished reports whether the connection can no longer change state: the
// kernel has forgotten it.
func (s *Socket) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alive && s.state == "CLOSED"
}

// reusable reports whether a new SYN on this 4-tuple starts a new
// connection.
func (s *Socket) reusable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == "CLOSED" || s.state == "TIME-WAIT"
}

// update runs fn with the record locked, then records the events fn
// queued (setStateLocked, setBuffersLocked) in order.
func (s *Socket) update(fn func()) {
	s.emu.Lock()
	defer s.emu.Unlock()
	s.mu.Lock()
	fn()
	evs := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, e := range evs {
		if e.at.IsZero() {
			s.p.rec.Emit(e.e)
		} else {
			s.p.rec.EmitAt(e.e, e.at)
		}
	}
}

// timedEvent is an event waiting to be recorded, with the time it happened
// when an observer knows it (zero: now).
type timedEvent struct {
	e  trace.Event
	at time.Time
}

// sample asks the kernel for the connection's state and queues and records
// what changed. The query and the change happen under the record's lock
// and the recording under emu, so samples from the sampler and from the
// calls never apply out of order.
func (s *Socket) sample() { s.update(s.refreshLocked) }

// refreshLocked applies what the kernel says about the connection now.
func (s *Socket) refreshLocked() {
	if s.state == "LISTEN" || (s.alive && s.state == "CLOSED") {
		return
	}
	info, found, err := s.p.diag.get(s.LocalAddr(), s.key.remote)
	if err != nil {
		return
	}
	if s.p.obs != nil {
		// States come from the kernel's tracepoints; only a timewait
		// socket's end has none.
		switch {
		case found:
			s.twGone = time.Time{}
			s.orphanSeen = s.orphanSeen || (info.inode == 0 && info.timer != diagTimerTW)
			s.setBuffersLocked(queues(info, true))
		case s.tw && s.twGone.IsZero():
			// A RST the observer has not delivered yet may have
			// killed it: that one tells the time; wait a little.
			s.twGone = time.Now()
		case s.tw && time.Since(s.twGone) > twSettle:
			s.tw = false
			s.setStateLockedAt("CLOSED", "the timewait socket is gone (seen with sock_diag)", s.twGone)
			s.setBuffersLocked(0, 0)
		}
		return
	}
	if !found {
		if s.alive {
			s.setStateLocked("CLOSED", "")
			s.setBuffersLocked(0, 0)
		}
		return
	}
	s.alive = true
	s.tw = info.timer == diagTimerTW
	name := StateName(info.state)
	crossing := s.finIn && s.finSent && int32(s.finInAck-(s.finSeq+1)) < 0
	if s.state == "FIN-WAIT-1" && crossing && (name == "TIME-WAIT" || name == "CLOSED") {
		// A FIN that crossed ours takes FIN-WAIT-1 to CLOSING for one
		// round trip, too short to sample.
		s.setStateLocked("CLOSING", "the peer's FIN crossed ours")
	}
	s.setStateLocked(name, "")
	s.setBuffersLocked(queues(info, true))
}

// deriveFin records the state that a close(2) or shutdown(2) about to
// queue a FIN moves the connection to: Linux changes it inside the call
// (tcp_close_state), before the FIN leaves, and from CLOSE-WAIT the
// LAST-ACK that follows lasts only a round trip, too short to sample.
func (s *Socket) deriveFin() {
	if s.p.obs != nil {
		return // the kernel's own state change is traced
	}
	s.update(func() {
		s.refreshLocked()
		switch s.state {
		case "ESTABLISHED", "SYN-RECEIVED":
			s.setStateLocked("FIN-WAIT-1", "")
		case "CLOSE-WAIT":
			s.setStateLocked("LAST-ACK", "")
		}
	})
}

// setStateLocked changes the state and queues its event.
func (s *Socket) setStateLocked(st, text string) { s.setStateLockedAt(st, text, time.Time{}) }

// setStateLockedAt is setStateLocked for a change that happened at a known
// time (zero: now).
func (s *Socket) setStateLockedAt(st, text string, at time.Time) {
	if st == s.state {
		return
	}
	from := s.state
	if from == "" {
		from = "CLOSED"
	}
	s.prev, s.state = s.state, st
	s.pending = append(s.pending, timedEvent{trace.Event{Host: s.p.name, Kind: trace.State, Conn: s.id, From: from, To: st, Text: text}, at})
}

// setBuffersLocked changes the queue levels and queues their event.
func (s *Socket) setBuffersLocked(snd, rcv int) {
	if snd == s.snd && rcv == s.rcv {
		return
	}
	s.snd, s.rcv = snd, rcv
	s.pending = append(s.pending, timedEvent{e: trace.Event{Host: s.p.name, Kind: trace.Buffer, Conn: s.id, SndQueued: snd, RcvQueued: rcv}})
}

// derivePassive reports SYN-RECEIVED when the SYN-ACK of a passive open
// leaves (the request socket lives too briefly to be sampled reliably),
// returning the state event for the mirror hook to record. Samplers leave
// a record in LISTEN alone, so this change cannot cross theirs.
func (s *Socket) derivePassive(flags string) []trace.Event {
	if flags != "S." {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != "LISTEN" {
		return nil
	}
	s.alive = true
	s.setStateLocked("SYN-RECEIVED", "the listener answers the SYN")
	var evs []trace.Event
	for _, e := range s.pending {
		evs = append(evs, e.e)
	}
	s.pending = nil
	return evs
}

func (s *Socket) noteIn(g seg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastIn, s.haveIn = g, true
	s.inWhileClosed = s.alive && s.state == "CLOSED"
	if containsRune(g.flags, 'F') {
		s.finIn, s.finInAck = true, g.ack
	}
}

func (s *Socket) noteOut(g seg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if containsRune(g.flags, 'R') {
		s.rstSent = true
	}
	if containsRune(g.flags, 'F') {
		s.finSeq, s.finSent = g.seq+uint32(g.len), true
	}
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

// Listener is a listening kernel socket.
type Listener struct {
	p    *Peer
	id   string
	port uint16

	mu     sync.Mutex
	f      *os.File
	rc     syscall.RawConn
	closed bool
	// nonblock: Accept returns EAGAIN instead of waiting (SetNonblock).
	nonblock atomic.Bool
}

// ID returns the listener's name in the trace ("l1", ...).
func (l *Listener) ID() string { return l.id }

// Port returns the port the listener is bound to.
func (l *Listener) Port() uint16 { return l.port }

func (l *Listener) attach(fd int) error {
	f, rc, err := fileOf(fd, "tcp "+l.id)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.f, l.rc = f, rc
	l.mu.Unlock()
	return nil
}

func (l *Listener) detach() *os.File {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.f
	l.f, l.rc = nil, nil
	return f
}

func (l *Listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Accept blocks until a connection has completed its handshake (accept4(2))
// and returns it, or until ctx ends.
func (l *Listener) Accept(ctx context.Context) (stack.Socket, error) {
	p := l.p
	l.mu.Lock()
	f, rc := l.f, l.rc
	l.mu.Unlock()
	nfd := -1
	var sa unix.Sockaddr
	var err error
	if f == nil {
		err = unix.EBADF
	} else {
		werr := waitIO(ctx, f, rc, false, func(fd uintptr) bool {
			nfd, sa, err = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			return !errors.Is(err, unix.EAGAIN) || l.nonblock.Load()
		})
		if werr != nil {
			err = werr
		}
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if err == nil && !ok {
		unix.Close(nfd)
		err = fmt.Errorf("accepted a non-IPv4 peer %v", sa)
	}
	if err != nil {
		p.blockingCall(l.id, "accept", "", -1, err, nil)
		return nil, fmt.Errorf("kernelpeer: %s: accept on %d: %w", p.side, l.port, err)
	}
	remote := netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))
	key := connKey{localPort: l.port, remote: remote}
	p.mu.Lock()
	s := p.conns[key]
	if s == nil || s.hasFile() || s.wasAccepted() {
		s = p.newConnLocked(key, "SYN-RECEIVED")
	}
	p.mu.Unlock()
	s.update(func() {
		s.accepted, s.listener, s.alive = true, nil, true
		if s.state == "LISTEN" && p.obs == nil {
			s.setStateLocked("SYN-RECEIVED", "the listener answers the SYN")
		}
	})
	if err := s.attach(nfd); err != nil {
		unix.Close(nfd)
		p.blockingCall(l.id, "accept", "", -1, err, nil)
		return nil, fmt.Errorf("kernelpeer: %s: accept on %d: %w", p.side, l.port, err)
	}
	p.blockingCall(s.id, "accept", "", 0, nil, []byte(remote.String()))
	s.sample()
	return s, nil
}

func (s *Socket) hasFile() bool {
	f, _ := s.file()
	return f != nil
}

func (s *Socket) wasAccepted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// release closes the listener at Peer.Close, after accepting and aborting
// the connections still waiting in its queue.
func (l *Listener) release() error {
	f := l.detach()
	if f == nil {
		return nil
	}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(lfd uintptr) {
			for {
				nfd, _, err := unix.Accept4(int(lfd), unix.SOCK_CLOEXEC)
				if err != nil {
					return
				}
				unix.SetsockoptLinger(nfd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
				unix.Close(nfd)
			}
		})
	}
	return f.Close()
}

// Close stops listening, as close(2) on a listening socket: connections
// that completed the handshake but were never accepted are reset.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	done := l.p.call(l.id, "close", "")
	var err error
	if f := l.detach(); f == nil {
		err = unix.EBADF
	} else {
		err = f.Close()
	}
	done(retOf(err), err, nil)
	if err == nil && l.p.obs == nil {
		l.p.rec.Emit(trace.Event{Host: l.p.name, Kind: trace.State, Conn: l.id, From: "LISTEN", To: "CLOSED"})
	}
	return err
}
