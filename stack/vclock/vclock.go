// Package vclock provides a virtual clock for gVisor stacks: time stands
// still until the owner fires the next timer, so a lab can fast-forward
// through TIME-WAIT or a FIN-WAIT-2 timeout in microseconds of real time,
// and two runs with the same inputs see the same times.
//
// Unlike a clock that jumps by a duration and fires every timer on the way,
// Clock fires one deadline at a time (FireNext): the owner lets the stacks
// react to each timer (queue and deliver segments) before the next one, as
// real time would.
//
// # Cost
//
// AfterFunc, Stop and Reset are O(log n) heap operations under one mutex.
package vclock

import (
	"container/heap"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Epoch is the virtual time a new Clock starts at.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Clock is a virtual tcpip.Clock. The zero value is not usable; use New.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers timerHeap
	seq    uint64

	// running counts callbacks of timers set to fire immediately, which
	// run on their own goroutines as with a real clock.
	running atomic.Int64
}

var _ tcpip.Clock = (*Clock)(nil)

// New returns a clock standing at Epoch.
func New() *Clock { return &Clock{now: Epoch} }

// Now implements tcpip.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NowMonotonic implements tcpip.Clock.
func (c *Clock) NowMonotonic() tcpip.MonotonicTime {
	var m tcpip.MonotonicTime
	return m.Add(c.Now().Sub(Epoch))
}

// AfterFunc implements tcpip.Clock: f runs when the clock reaches now+d.
// With d <= 0 it runs at once on a new goroutine (see Busy).
func (c *Clock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	t := &timer{c: c, f: f, idx: -1}
	t.Reset(d)
	return t
}

// Busy reports whether a timer callback started by AfterFunc(0) is still
// running.
func (c *Clock) Busy() bool { return c.running.Load() > 0 }

// Next returns the earliest pending deadline, if any.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	return c.timers[0].when, true
}

// FireNext moves the clock to the earliest pending deadline if it is not
// after limit, and runs every timer due then, in the order they were set,
// on the calling goroutine. It returns false, leaving the clock alone, when
// no timer is due by limit.
func (c *Clock) FireNext(limit time.Time) bool {
	c.mu.Lock()
	if len(c.timers) == 0 || c.timers[0].when.After(limit) {
		c.mu.Unlock()
		return false
	}
	when := c.timers[0].when
	c.now = when
	var due []*timer
	for len(c.timers) > 0 && c.timers[0].when.Equal(when) {
		due = append(due, heap.Pop(&c.timers).(*timer))
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
	return true
}

// Set moves the clock forward to t without firing anything; a pending
// timer due before t is fired by the next FireNext at its own deadline's
// place in the order, but late. Callers fire timers up to t first.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

type timer struct {
	c    *Clock
	f    func()
	when time.Time
	seq  uint64
	idx  int // position in the heap, -1 when not pending
}

// Stop implements tcpip.Timer.
func (t *timer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.idx < 0 {
		return false
	}
	heap.Remove(&c.timers, t.idx)
	return true
}

// Reset implements tcpip.Timer.
func (t *timer) Reset(d time.Duration) {
	c := t.c
	c.mu.Lock()
	if t.idx >= 0 {
		heap.Remove(&c.timers, t.idx)
	}
	if d <= 0 {
		c.mu.Unlock()
		c.running.Add(1)
		go func() {
			defer c.running.Add(-1)
			t.f()
		}()
		return
	}
	c.seq++
	t.when, t.seq = c.now.Add(d), c.seq
	heap.Push(&c.timers, t)
	c.mu.Unlock()
}

// timerHeap orders timers by deadline, then by the order they were set.
type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}
