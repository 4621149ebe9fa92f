//go:build linux && amd64

package calltrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Tracer delivers the socket calls of one namespace's processes. Create it
// with Open, read Events, and Close it.
type Tracer struct {
	objs   calltraceObjects
	links  []link.Link
	rd     *ringbuf.Reader
	events chan Call
	poll   time.Duration // Config.MaxDelay
	// wall - mono at Open: the kernel's stamps to the wall clock.
	offset    time.Duration
	closeOnce sync.Once
	exited    chan struct{}
}

// ringBytes is the size of the calls ring buffer (bpf/calltrace.c).
const ringBytes = 1 << 20

var callNames = [...]string{"", "read", "write", "close", "connect", "accept", "sendto", "recvfrom", "shutdown", "accept4",
	"bind", "listen", "setsockopt", "sendmsg", "recvmsg", "readv", "writev"}

// Open loads and attaches the tracer. Cost: a few milliseconds (BTF,
// verification of two programs), 1 MiB of ring buffer, and a few hundred
// nanoseconds on every syscall of the machine until Close (about 0.2 µs,
// BenchmarkSyscallOverhead: two tracing programs run on each); a traced
// socket call of the namespace's processes costs a microsecond or two more
// (BenchmarkCallLatency), and the reader polls the ring every
// Config.MaxDelay.
func Open(cfg Config) (*Tracer, error) {
	if cfg.NetnsInode == 0 || cfg.NetnsInode > 1<<32-1 {
		return nil, fmt.Errorf("calltrace: Config.NetnsInode %d is not a network namespace inode", cfg.NetnsInode)
	}
	if cfg.ExcludeTGID == 0 {
		cfg.ExcludeTGID = os.Getpid()
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 2 * time.Millisecond
	}
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("%w: no kernel BTF: %w", ErrUnavailable, err)
	}
	spec, err := loadCalltrace()
	if err != nil {
		return nil, fmt.Errorf("calltrace: %w", err)
	}
	vars := map[string]any{
		"netns_ino": uint32(cfg.NetnsInode), "self_tgid": uint32(cfg.ExcludeTGID), "wake_bytes": uint64(ringBytes / 4),
		"nr_read": int64(unix.SYS_READ), "nr_write": int64(unix.SYS_WRITE), "nr_close": int64(unix.SYS_CLOSE),
		"nr_connect": int64(unix.SYS_CONNECT), "nr_accept": int64(unix.SYS_ACCEPT), "nr_sendto": int64(unix.SYS_SENDTO),
		"nr_recvfrom": int64(unix.SYS_RECVFROM), "nr_shutdown": int64(unix.SYS_SHUTDOWN), "nr_accept4": int64(unix.SYS_ACCEPT4),
		"nr_bind": int64(unix.SYS_BIND), "nr_listen": int64(unix.SYS_LISTEN), "nr_setsockopt": int64(unix.SYS_SETSOCKOPT),
		"nr_sendmsg": int64(unix.SYS_SENDMSG), "nr_recvmsg": int64(unix.SYS_RECVMSG), "nr_readv": int64(unix.SYS_READV),
		"nr_writev": int64(unix.SYS_WRITEV),
	}
	for name, v := range vars {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("calltrace: set %s: %w", name, err)
		}
	}
	t := &Tracer{events: make(chan Call, 4096), exited: make(chan struct{}), poll: cfg.MaxDelay}
	if err := spec.LoadAndAssign(&t.objs, &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kspec}}); err != nil {
		return nil, loadErr("load BPF programs", err)
	}
	for _, p := range []*ebpf.Program{t.objs.SysEnter, t.objs.SysExit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			t.abort()
			return nil, loadErr("attach "+p.String(), err)
		}
		t.links = append(t.links, l)
	}
	if t.rd, err = ringbuf.NewReader(t.objs.Calls); err != nil {
		t.abort()
		return nil, fmt.Errorf("calltrace: open ring buffer: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.abort()
		return nil, fmt.Errorf("calltrace: read CLOCK_MONOTONIC: %w", err)
	}
	t.offset = time.Duration(time.Now().UnixNano() - ts.Nano())
	go t.read()
	return t, nil
}

func loadErr(op string, err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("%w: %s: the kernel's verifier rejected a program: %w", ErrUnavailable, op, err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: not permitted (run as root, or grant CAP_BPF and CAP_PERFMON): %w", ErrUnavailable, op, err)
	case errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, btf.ErrNotFound) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: %s: kernel lacks a needed feature: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("calltrace: %s: %w", op, err)
}

// abort releases what Open made so far.
func (t *Tracer) abort() {
	for _, l := range t.links {
		l.Close()
	}
	t.objs.Close()
}

// Events returns the channel calls are delivered on, in the order the
// kernel wrote them; it is closed after Close.
func (t *Tracer) Events() <-chan Call { return t.events }

// Close detaches the programs, delivers the calls still in the ring (the
// reader is not woken for every call) on Events, then stops the reader and
// closes Events: it returns once Events has been drained that far. It is
// safe to call more than once.
func (t *Tracer) Close() error {
	var err error
	t.closeOnce.Do(func() {
		for _, l := range t.links {
			err = errors.Join(err, l.Close())
		}
		if ferr := t.rd.Flush(); ferr != nil {
			err = errors.Join(err, ferr, t.rd.Close()) // stop at once
		}
		<-t.exited
		err = errors.Join(err, t.rd.Close())
		err = errors.Join(err, t.objs.Close())
	})
	return err
}

// Lost returns how many calls the ring buffer had no room for since Open
// (its reader fell behind a program making calls faster than Events is
// drained): they are missing from Events. Cost: one map lookup.
func (t *Tracer) Lost() (uint64, error) {
	var perCPU []uint64
	if err := t.objs.Lost.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("calltrace: read the lost count: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// read is the tracer's goroutine: ring buffer to Events, until Close.
func (t *Tracer) read() {
	defer close(t.exited)
	defer close(t.events)
	var rec ringbuf.Record
	for {
		t.rd.SetDeadline(time.Now().Add(t.poll))
		err := t.rd.ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // the ring is empty
		} else if err != nil {
			return // flushed by Close, or closed
		}
		var e calltraceCallEvent
		if len(rec.RawSample) < int(unsafe.Sizeof(e)) {
			continue
		}
		// The kernel's layout is the host's (structs.HostLayout).
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e)), rec.RawSample)
		t.events <- t.decode(&e)
	}
}

// decode turns a kernel record into a Call.
func (t *Tracer) decode(e *calltraceCallEvent) Call {
	c := Call{
		Enter: time.Unix(0, int64(e.Enter)).Add(t.offset), Entry: e.Phase == 0,
		Pid: int(e.Tgid), Tid: int(e.Tid), Fd: int(e.Fd), Arg: e.Arg, Ret: e.Ret, Unread: int(e.Unread),
	}
	if int(e.Call) < len(callNames) {
		c.Name = callNames[e.Call]
	}
	switch c.Name {
	case "readv", "writev":
		c.Buffers = int(e.Arg2)
	case "sendmsg", "recvmsg":
		c.Buffers, c.Flags = int(e.Arg2), int(e.Arg3)
	case "setsockopt":
		c.Option, c.OptLen, c.Value = int(int32(e.Arg2)), int(e.Arg3), e.Val
	}
	if e.Exit != 0 {
		c.Exit = time.Unix(0, int64(e.Exit)).Add(t.offset)
	}
	if e.HaveSock != 0 {
		c.Local = netip.AddrPortFrom(addr4(e.Saddr), e.Sport)
		c.Remote = netip.AddrPortFrom(addr4(e.Daddr), e.Dport)
	}
	return c
}

// addr4 turns an address as the kernel stores it (network order in a
// native-endian word) into a netip.Addr.
func addr4(a uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], a)
	return netip.AddrFrom4(b)
}
