package memwire

import "time"

// AfterFunc runs f once d has passed on the wire's clock: in virtual time
// (Config.Clock) when the clock reaches now+d, on the goroutine that moves
// it; otherwise on the wall clock. The returned function cancels it and
// reports whether it did. A scenario runner bounds a blocked call with it
// (the step timeout): in virtual time the wire moves the clock to that
// deadline while the call is blocked, and no further.
func (w *Wire) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	if w.cfg.Clock == nil {
		return time.AfterFunc(d, f).Stop
	}
	return w.cfg.Clock.AfterFunc(d, f).Stop
}

// Now reads the wire's clock: virtual time with Config.Clock, the wall
// clock otherwise.
func (w *Wire) Now() time.Time {
	if w.cfg.Clock == nil {
		return time.Now()
	}
	return w.cfg.Clock.Now()
}
