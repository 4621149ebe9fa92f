package render

import (
	"sync"

	"github.com/tcplab/tcplab/stack/trace"
)

// Async hands events to a writer on a goroutine of its own, in order, so
// that a slow consumer (a terminal, a paused pager) never holds up the
// lab: trace subscribers run under the recorder's lock, inside the stacks'
// packet paths. The queue is unbounded; Push costs one append under a
// mutex.
type Async struct {
	write func(trace.Event)

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []trace.Event
	closed bool
	done   chan struct{}
}

// NewAsync starts the goroutine that calls write for every pushed event.
// Close stops it.
func NewAsync(write func(trace.Event)) *Async {
	a := &Async{write: write, done: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	go a.run()
	return a
}

// Push queues e; it never blocks on the writer.
func (a *Async) Push(e trace.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.queue = append(a.queue, e)
	a.cond.Signal()
}

// Close writes what is still queued, then stops the goroutine. Events
// pushed afterwards are dropped. It is safe to call more than once.
func (a *Async) Close() {
	a.mu.Lock()
	a.closed = true
	a.cond.Signal()
	a.mu.Unlock()
	<-a.done
}

func (a *Async) run() {
	defer close(a.done)
	for {
		a.mu.Lock()
		for len(a.queue) == 0 && !a.closed {
			a.cond.Wait()
		}
		batch := a.queue
		a.queue = nil
		closed := a.closed
		a.mu.Unlock()
		for _, e := range batch {
			a.write(e)
		}
		if closed && len(batch) == 0 {
			return
		}
	}
}
