package tun

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tcplab/tcplab/stack"
)

// userNet applies network conditions in userspace where the kernel has no
// netem: on the path from the kernel into each host's TUN device, where
// netem would sit (the device's egress), and, for what a host sends to a
// kernel peer (which never reaches the other device), on the path from the
// host into its own device. Packets of a conditioned
// direction wait in one schedule, by due time, and a goroutine owned by
// the Lab delivers them. Without conditions packets do not touch it.
type userNet struct {
	mu     sync.Mutex
	model  *stack.NetModel
	on     [2]bool
	sched  schedule
	n      uint64
	active atomic.Bool // some direction is conditioned
	wake   chan struct{}
	note   atomic.Pointer[func(host, text string)]
}

func newUserNet() *userNet {
	return &userNet{model: stack.NewNetModel(uint64(time.Now().UnixNano())), wake: make(chan struct{}, 1)}
}

// set imposes c on dir; the zero value lifts it.
func (u *userNet) set(dir stack.Direction, c stack.Conditions) {
	u.mu.Lock()
	u.model.Set(dir, c)
	u.on[dir&1] = !c.IsZero()
	u.active.Store(u.on[0] || u.on[1])
	u.mu.Unlock()
}

// offer takes pkt, travelling in direction dir, if dir is conditioned: it
// draws its fate, notes it, and schedules its copies for deliver. It
// returns false when the packet should go on at once, untouched.
func (u *userNet) offer(dir stack.Direction, pkt []byte, deliver func([]byte)) bool {
	if !u.active.Load() && !isSYN(pkt) {
		return false
	}
	u.mu.Lock()
	if !u.on[dir&1] {
		if isSYN(pkt) {
			u.model.Describe(pkt) // learns the ISN, for relative numbers in notes
		}
		u.mu.Unlock()
		return false
	}
	b := append([]byte(nil), pkt...)
	now := time.Now()
	f := u.model.Decide(dir, b, now)
	if !f.Lost {
		for i := 0; i < f.Copies; i++ {
			heap.Push(&u.sched, scheduled{due: now.Add(f.Delay), n: u.n, deliver: deliver, b: b})
			u.n++
		}
	}
	u.mu.Unlock()
	if f.Note != "" {
		if note := u.note.Load(); note != nil {
			(*note)(dir.From(), f.Note)
		}
	}
	select {
	case u.wake <- struct{}{}:
	default:
	}
	return true
}

// isSYN reports whether pkt is an IPv4 TCP segment with SYN set.
func isSYN(pkt []byte) bool {
	if len(pkt) < header.IPv4MinimumSize || header.IPv4(pkt).Protocol() != uint8(header.TCPProtocolNumber) {
		return false
	}
	off := int(header.IPv4(pkt).HeaderLength()) + 13 // TCP flags
	return off < len(pkt) && pkt[off]&uint8(header.TCPFlagSyn) != 0
}

// run delivers scheduled packets when due, until ctx is done; what is
// still scheduled then is dropped with the lab.
func (u *userNet) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		u.mu.Lock()
		var next *scheduled
		for len(u.sched) > 0 && !u.sched[0].due.After(time.Now()) {
			s := heap.Pop(&u.sched).(scheduled)
			u.mu.Unlock()
			s.deliver(s.b)
			u.mu.Lock()
		}
		if len(u.sched) > 0 {
			next = &u.sched[0]
			t.Reset(time.Until(next.due))
		}
		u.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
		case <-t.C:
		}
	}
}

// scheduled is a packet waiting for its due time.
type scheduled struct {
	due     time.Time
	n       uint64 // order of scheduling: breaks ties of due
	deliver func([]byte)
	b       []byte
}

// schedule is a heap of scheduled packets, earliest due first.
type schedule []scheduled

func (s schedule) Len() int { return len(s) }
func (s schedule) Less(i, j int) bool {
	if s[i].due.Equal(s[j].due) {
		return s[i].n < s[j].n
	}
	return s[i].due.Before(s[j].due)
}
func (s schedule) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s *schedule) Push(x any)   { *s = append(*s, x.(scheduled)) }
func (s *schedule) Pop() any {
	old := *s
	x := old[len(old)-1]
	*s = old[:len(old)-1]
	return x
}

// SetNetNotes makes the userspace conditions (see SetConditions) report
// what they do to each packet (lost, delayed, reordered, duplicated,
// corrupted) to note, as a note of the sending host; nil stops it. netem
// reports nothing.
func (l *Lab) SetNetNotes(note func(host, text string)) {
	if note == nil {
		l.un.note.Store(nil)
		return
	}
	l.un.note.Store(&note)
}

// NetInUserspace reports whether SetConditions applies conditions in
// userspace (Config.UserspaceNet, or a kernel without netem) rather than
// with the kernel's netem.
func (l *Lab) NetInUserspace() bool { return l.userspaceNet.Load() }
