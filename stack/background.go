package stack

import (
	"context"
	"sync"
	"sync/atomic"
)

// Waiter follows one call that an application may or may not be waiting
// for: a scenario runs a call "in the background" (the script goes on) or
// in the foreground (the script waits for it). A Host counts a waiting call
// as blocked (Host.Blocked, which lets virtual time pass for it) only while
// its Waiter is in the foreground, so a background call blocked on an empty
// socket does not make the lab's clock run ahead of the script. It also
// tells when the call first started waiting, so that a runner can let it
// get there before the script goes on.
//
// The zero value is a foreground Waiter. Its methods are safe for
// concurrent use and cost an atomic operation.
type Waiter struct {
	bg      atomic.Bool
	once    sync.Once
	waiting chan struct{}
	mu      sync.Mutex
	wake    func() // the host's Config.OnBlock, once the call waits
}

type waiterKey struct{}

// WithWaiter returns a context whose calls report to w.
func WithWaiter(ctx context.Context, w *Waiter) context.Context {
	return context.WithValue(ctx, waiterKey{}, w)
}

// waiterOf returns the Waiter of ctx, or nil.
func waiterOf(ctx context.Context) *Waiter {
	if ctx == nil {
		return nil
	}
	w, _ := ctx.Value(waiterKey{}).(*Waiter)
	return w
}

// SetBackground moves the call to the background (true: nobody waits for
// it, the clock does not move for it) or back to the foreground, which
// tells the host's wire (Config.OnBlock) that a call waits again.
func (w *Waiter) SetBackground(bg bool) {
	w.bg.Store(bg)
	if bg {
		return
	}
	w.mu.Lock()
	wake := w.wake
	w.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// setWake remembers what to call when the call returns to the
// foreground.
func (w *Waiter) setWake(f func()) {
	w.mu.Lock()
	w.wake = f
	w.mu.Unlock()
}

// Background reports whether the call is in the background.
func (w *Waiter) Background() bool { return w.bg.Load() }

// Waiting returns a channel closed once the call has started waiting for
// the peer or a timer (or NoteWaiting was called for it).
func (w *Waiter) Waiting() <-chan struct{} { return w.ch() }

func (w *Waiter) ch() chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting == nil {
		w.waiting = make(chan struct{})
	}
	return w.waiting
}

func (w *Waiter) noteWaiting() {
	ch := w.ch()
	w.once.Do(func() { close(ch) })
}

// NoteWaiting tells the Waiter of ctx, if any, that the call made with ctx
// now waits for the peer or a timer. Peers other than Host (the kernel
// peer) call it where their calls start to wait.
func NoteWaiting(ctx context.Context) {
	if w := waiterOf(ctx); w != nil {
		w.noteWaiting()
	}
}
