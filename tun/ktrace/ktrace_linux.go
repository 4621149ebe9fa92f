package ktrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/tcplab/tcplab/stack"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Observer watches one network namespace until Close. Its reader goroutine
// decodes the kernel's ring buffer and delivers Events.
type Observer struct {
	objs   ktraceObjects
	links  []link.Link
	rd     *ringbuf.Reader
	prd    *perf.Reader        // payloads in page fragments
	paged  map[pagedKey][]byte // payloads read ahead of their events
	events chan Event
	poll   time.Duration // Config.MaxDelay
	done   chan struct{} // closed by Close: the reader stops delivering
	exited chan struct{} // closed when the reader goroutine has returned
	once   sync.Once
	err    error // Close's result

	rst, drop map[uint64]string // enum values to kernel names
	clk       clock

	unseen      unseenTracker // reader goroutine only
	unseenBytes atomic.Uint64
}

// clock maps the kernel's CLOCK_MONOTONIC to wall time.
type clock struct {
	mono time.Duration // CLOCK_MONOTONIC at wall
	wall time.Time
}

// newClock reads CLOCK_MONOTONIC and the wall clock back to back, keeping
// the tightest of a few tries; the offset is then accurate to about the
// width of that window (a microsecond or less).
func newClock() (clock, error) {
	best := clock{}
	width := time.Duration(1<<63 - 1)
	for range 5 {
		var a, b unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &a); err != nil {
			return clock{}, fmt.Errorf("ktrace: read CLOCK_MONOTONIC: %w", err)
		}
		now := time.Now()
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &b); err != nil {
			return clock{}, fmt.Errorf("ktrace: read CLOCK_MONOTONIC: %w", err)
		}
		ta, tb := time.Duration(a.Nano()), time.Duration(b.Nano())
		if w := tb - ta; w < width {
			width = w
			best = clock{mono: ta + w/2, wall: now}
		}
	}
	return best, nil
}

func (c clock) at(mono time.Duration) time.Time { return c.wall.Add(mono - c.mono) }

// NetnsInode returns the inode number that identifies the network namespace
// at path: "/proc/PID/ns/net", "/proc/self/fd/N" for an open namespace
// descriptor, or a bind mount under /run/netns. It costs one stat.
func NetnsInode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("ktrace: network namespace inode: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("ktrace: network namespace inode of %s: no stat data", path)
	}
	return st.Ino, nil
}

// Open loads the programs, attaches them to the kernel's tracepoints and
// functions, and starts the reader goroutine; events flow until Close. It
// costs a few milliseconds (BTF parsing, verification of 11 programs) and
// RingBytes of locked kernel memory. Errors wrap ErrUnavailable when the
// machine cannot observe (not root, no BTF, kernel too old).
func Open(cfg Config) (*Observer, error) {
	if cfg.NetnsInode == 0 || cfg.NetnsInode > 1<<32-1 {
		return nil, fmt.Errorf("ktrace: Config.NetnsInode %d is not a network namespace inode", cfg.NetnsInode)
	}
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("%w: no kernel BTF (/sys/kernel/btf/vmlinux; needs a kernel built with CONFIG_DEBUG_INFO_BTF=y): %w", ErrUnavailable, err)
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 2 * time.Millisecond
	}
	o := &Observer{
		events: make(chan Event, orDefault(cfg.EventBuffer, 4096)),
		poll:   cfg.MaxDelay,
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	if o.rst, err = enumNames(kspec, "sk_rst_reason", "SK_RST_REASON_"); err != nil {
		return nil, err
	}
	if o.drop, err = enumNames(kspec, "skb_drop_reason", "SKB_DROP_REASON_"); err != nil {
		return nil, err
	}
	consumed, ok1 := enumValue(o.drop, "SKB_CONSUMED")
	notDropped, ok2 := enumValue(o.drop, "SKB_NOT_DROPPED_YET")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: kernel's enum skb_drop_reason lacks SKB_CONSUMED or SKB_NOT_DROPPED_YET (kernel too old; need 6.11 or later)", ErrUnavailable)
	}

	spec, err := loadKtrace()
	if err != nil {
		return nil, fmt.Errorf("ktrace: %w", err)
	}
	ring := ringSize(cfg.RingBytes)
	for name, v := range map[string]any{
		"netns_ino":            uint32(cfg.NetnsInode),
		"drop_consumed":        uint32(consumed),
		"drop_not_dropped_yet": uint32(notDropped),
		"wake_bytes":           uint64(ring / 4),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("ktrace: set %s: %w", name, err)
		}
	}
	spec.Maps["events"].MaxEntries = ring

	if err := spec.LoadAndAssign(&o.objs, &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kspec}}); err != nil {
		return nil, loadErr("load BPF programs", err)
	}
	progs := []*ebpf.Program{
		o.objs.InetSockSetState, o.objs.TcpSendReset, o.objs.TcpReceiveReset, o.objs.TcpRetransmitSkb,
		o.objs.TcpRetransmitSynack, o.objs.TcpDestroySock, o.objs.NetDevStartXmit, o.objs.NetifReceiveSkb, o.objs.KfreeSkb,
	}
	if !cfg.NoProbe {
		progs = append(progs, o.objs.TcpProbe)
	}
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			o.abort()
			return nil, loadErr("attach "+p.String(), err)
		}
		o.links = append(o.links, l)
	}
	if o.rd, err = ringbuf.NewReader(o.objs.Events); err != nil {
		o.abort()
		return nil, fmt.Errorf("ktrace: open ring buffer: %w", err)
	}
	// The payload buffers are only drained on demand (pagedPayload), so
	// the kernel need not wake anyone: a watermark of half the buffer.
	pbytes := int(ringSize(orDefault(cfg.PayloadBytes, 256<<10)))
	if o.prd, err = perf.NewReaderWithOptions(o.objs.Payloads, pbytes, perf.ReaderOptions{Watermark: pbytes / 2}); err != nil {
		o.abort()
		return nil, fmt.Errorf("ktrace: open payload perf buffer: %w", err)
	}
	o.paged = make(map[pagedKey][]byte)
	o.unseen.next = make(map[flowKey]sent)
	if o.clk, err = newClock(); err != nil {
		o.abort()
		return nil, err
	}
	go o.read()
	return o, nil
}

// orDefault returns n, or def when n is not positive.
func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// ringSize rounds n up to a power of two of at least one page.
func ringSize(n int) uint32 {
	if n <= 0 {
		n = 4 << 20
	}
	size := uint32(os.Getpagesize())
	for int(size) < n && size < 1<<30 {
		size <<= 1
	}
	return size
}

// loadErr wraps a load or attach error, marking it ErrUnavailable when it
// means missing privileges or kernel support.
func loadErr(op string, err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("%w: %s: the kernel's verifier rejected a program (a kernel older than 6.11 lacks tracepoint arguments it reads; last log line: %s): %w", ErrUnavailable, op, lastLine(ve), err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: not permitted (run as root, or grant CAP_BPF and CAP_PERFMON): %w", ErrUnavailable, op, err)
	case errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, btf.ErrNotFound) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: %s: kernel lacks a needed feature or tracepoint (need Linux 6.11 or later with BTF): %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("ktrace: %s: %w", op, err)
}

// lastLine returns the verifier log's last line, which usually says why.
func lastLine(ve *ebpf.VerifierError) string {
	if len(ve.Log) == 0 {
		return ve.Cause.Error()
	}
	return ve.Log[len(ve.Log)-1]
}

// enumNames maps the values of the kernel's enum name to their names
// without prefix, so reasons print as the running kernel spells them.
func enumNames(s *btf.Spec, name, prefix string) (map[uint64]string, error) {
	var e *btf.Enum
	if err := s.TypeByName(name, &e); err != nil {
		return nil, fmt.Errorf("%w: kernel BTF has no enum %s (kernel too old; need 6.11 or later): %w", ErrUnavailable, name, err)
	}
	m := make(map[uint64]string, len(e.Values))
	for _, v := range e.Values {
		m[v.Value] = strings.TrimPrefix(v.Name, prefix)
	}
	return m, nil
}

func enumValue(m map[uint64]string, name string) (uint64, bool) {
	for v, n := range m {
		if n == name {
			return v, true
		}
	}
	return 0, false
}

// Events returns the channel the observer delivers events on, in the order
// the kernel wrote them to its ring buffer (per CPU in time order; across
// CPUs nearly so: sort by Mono for a strict order). It is closed after
// Close. A consumer that falls behind makes the kernel drop events; see
// Lost.
func (o *Observer) Events() <-chan Event { return o.events }

// Lost returns how many events the kernel could not write because the ring
// buffer was full, plus how many payloads in page fragments the perf buffer
// had no room for (their events arrive without Payload). Both are counted by
// the programs when the write fails, so the count is current. It costs one
// map lookup.
func (o *Observer) Lost() (uint64, error) {
	select {
	case <-o.done:
		return 0, ErrClosed
	default:
	}
	var per []uint64
	if err := o.objs.Lost.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("ktrace: read lost counter: %w", err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Close detaches every program, stops the reader goroutine, closes the
// Events channel and frees the kernel objects. Events still in the ring
// buffer are discarded. It is safe to call more than once.
func (o *Observer) Close() error {
	o.once.Do(func() {
		close(o.done)
		o.err = o.closeKernel()
		<-o.exited
		if err := o.objs.Close(); err != nil && o.err == nil {
			o.err = fmt.Errorf("ktrace: close BPF objects: %w", err)
		}
	})
	return o.err
}

// closeKernel detaches the programs and closes the ring buffer reader,
// which makes a blocked read return.
func (o *Observer) closeKernel() error {
	var errs []error
	for _, l := range o.links {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	o.links = nil
	if o.prd != nil {
		if err := o.prd.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.rd != nil {
		if err := o.rd.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ktrace: detach: %w", err)
	}
	return nil
}

// abort undoes a failed Open.
func (o *Observer) abort() {
	o.closeKernel()
	o.objs.Close()
}

// read is the reader goroutine: it decodes records until the ring buffer
// reader is closed.
func (o *Observer) read() {
	defer close(o.exited)
	defer close(o.events)
	var rec ringbuf.Record
	for {
		o.rd.SetDeadline(time.Now().Add(o.poll))
		err := o.rd.ReadInto(&rec)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return // closed
		}
		// Holes older than unseenWait were never filled: report them
		// (their Time is earlier than what follows, like any event of
		// another CPU that lagged).
		if len(o.unseen.holes) > 0 && !o.sendUnseen(o.unseen.due(monoNow()-unseenWait, false)) {
			return
		}
		if err != nil || len(rec.RawSample) < int(unsafe.Sizeof(ktraceEvent{})) {
			continue // the ring is empty
		}
		var raw ktraceEvent
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&raw)), unsafe.Sizeof(raw)), rec.RawSample)
		e := o.decode(&raw)
		o.unseen.track(&e)
		select {
		case o.events <- e:
		case <-o.done:
			return
		}
	}
}

// sendUnseen delivers an Unseen event for each hole and counts its bytes.
// It returns false when the observer is closing.
func (o *Observer) sendUnseen(holes []hole) bool {
	for _, h := range holes {
		o.unseenBytes.Add(uint64(h.end - h.seq))
		select {
		case o.events <- o.unseenEvent(h):
		case <-o.done:
			return false
		}
	}
	return true
}

// decode turns the kernel's record into an Event.
func (o *Observer) decode(r *ktraceEvent) Event {
	mono := time.Duration(r.Ts)
	e := Event{
		Kind:     Kind(r.Kind),
		Time:     o.clk.at(mono),
		Mono:     mono,
		Sock:     r.Sk,
		NewState: stateName(r.Newstate),
		Ifindex:  int(r.Ifindex),
	}
	if r.Flags&flagHaveSock != 0 {
		e.Local = netip.AddrPortFrom(addr(r.Family, r.Laddr), r.Lport)
		e.Remote = netip.AddrPortFrom(addr(r.Family, r.Raddr), r.Rport)
	}
	if r.Flags&flagHavePkt != 0 {
		o.decodeSegment(&e, r)
	}
	switch e.Kind {
	case State:
		e.OldState = stateName(r.Oldstate)
	case SendReset:
		e.Reason = name(o.rst, r.Reason)
	case Dropped:
		e.Reason = name(o.drop, r.Reason)
		e.Originated = r.Flags&flagLocal != 0
	case Sent:
		e.Originated = r.Flags&flagLocal != 0
	case Retransmit:
		e.Seq, e.Len = r.SndNxt, int(r.SndUna-r.SndNxt)
		e.Flags = stack.FlagString(header.TCPFlags(r.Tcp[13]))
		if r.Reason != 0 {
			e.Reason = unix.ErrnoName(syscall.Errno(-int32(r.Reason)))
		}
	case Probe:
		e.SndNxt, e.SndUna, e.RcvNxt = r.SndNxt, r.SndUna, r.RcvNxt
		e.SndWnd, e.RcvWnd, e.Cwnd, e.Ssthresh = r.SndWnd, r.RcvWnd, r.SndCwnd, r.Ssthresh
		e.Srtt = time.Duration(r.SrttUs) * time.Microsecond
		e.PacketsOut, e.RetransOut, e.MSS, e.Cookie = r.PacketsOut, r.RetransOut, r.Mss, r.Cookie
	}
	return e
}

// Flags of struct event, as in bpf/ktrace.c.
const (
	flagLocal       = 1
	flagHavePkt     = 4
	flagHaveSock    = 8
	flagPayloadPerf = 16
)

// pagedKey names a payload sample: the skb and the event's kernel time.
type pagedKey struct{ skb, ts uint64 }

// pagedPayload returns the payload the kernel wrote to the perf array for
// the event k. The sample was written before the event was submitted, so
// it is readable now: the perf buffers are drained without waiting until it
// turns up. It returns nil when the sample was lost.
func (o *Observer) pagedPayload(k pagedKey) []byte {
	if p, ok := o.paged[k]; ok {
		delete(o.paged, k)
		return p
	}
	if len(o.paged) > 1<<14 { // forget samples whose events were lost
		for pk := range o.paged {
			if pk.ts < k.ts-uint64(time.Second) {
				delete(o.paged, pk)
			}
		}
	}
	o.prd.SetDeadline(time.Now().Add(-time.Second))
	var rec perf.Record
	for {
		if err := o.prd.ReadInto(&rec); err != nil {
			break // drained (deadline) or closed
		}
		if rec.LostSamples > 0 {
			// Already counted by the program whose bpf_skb_output
			// failed (see Lost); the perf ring's count is only a
			// later echo of it.
			continue
		}
		b := rec.RawSample
		if len(b) < 24 {
			continue
		}
		key := pagedKey{binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])}
		off, n := int(binary.NativeEndian.Uint32(b[16:])), int(binary.NativeEndian.Uint32(b[20:]))
		if 24+off+n > len(b) {
			continue
		}
		o.paged[key] = append([]byte(nil), b[24+off:24+off+n]...)
	}
	// Drained to the end: the reader reloads every CPU's head next time
	// (stopping early would leave it reading stale heads).
	p := o.paged[k]
	delete(o.paged, k)
	return p
}

// decodeSegment fills the segment fields from the raw headers.
func (o *Observer) decodeSegment(e *Event, r *ktraceEvent) {
	ip := r.Ip[:]
	tcp := r.Tcp[:]
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	if ip[0]>>4 == 6 {
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	}
	sport, dport := binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:])
	doff := int(tcp[12]>>4) * 4
	e.HasSegment = true
	e.Skb = r.Skb
	e.Seq = binary.BigEndian.Uint32(tcp[4:])
	e.Ack = binary.BigEndian.Uint32(tcp[8:])
	e.Flags = stack.FlagString(header.TCPFlags(tcp[13]))
	e.Win = binary.BigEndian.Uint16(tcp[14:])
	if doff > 20 && doff <= 60 {
		e.Options = append([]byte(nil), tcp[20:doff]...)
	}
	e.Len = max(int(r.Iplen)-int(r.Ihl)-doff, 0)
	if r.Caplen > 0 {
		e.Payload = append([]byte(nil), r.Payload[:min(int(r.Caplen), len(r.Payload))]...)
	} else if r.Flags&flagPayloadPerf != 0 {
		e.Payload = o.pagedPayload(pagedKey{r.Skb, r.Ts})
	}
	e.SkbLen = int(r.GsoLen)
	if r.Flags&flagHaveSock != 0 {
		return // a socket's addresses already say Local/Remote
	}
	if e.Kind == Sent || e.Kind == Dropped && r.Flags&flagLocal != 0 {
		e.Local, e.Remote = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	} else {
		e.Local, e.Remote = netip.AddrPortFrom(dst, dport), netip.AddrPortFrom(src, sport)
	}
}

func addr(family uint8, b [16]byte) netip.Addr {
	if family == unix.AF_INET6 {
		return netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

func name(m map[uint64]string, v uint32) string {
	if n, ok := m[uint64(v)]; ok {
		return n
	}
	return fmt.Sprintf("%d", v)
}
