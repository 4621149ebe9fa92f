package cli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// progress shows, on a terminal, how far a long real-time sleep has got
// ("# sleeping 12s of 60s") on one line of stderr that trace lines clear
// before they print. Cost: one timer tick per second while sleeping.
type progress struct {
	w      io.Writer
	mu     sync.Mutex
	active bool
}

// clear erases the progress line, if shown, before other output.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active {
		io.WriteString(p.w, "\r\x1b[K")
		p.active = false
	}
}

func (p *progress) show(done, total time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\x1b[K# sleeping %s of %s", done.Round(time.Second), total)
	p.active = true
}

// sleep waits d in real time, updating the line every second when d is
// long enough to be worth it.
func (p *progress) sleep(ctx context.Context, d time.Duration) error {
	start := time.Now()
	done := time.NewTimer(d)
	defer done.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer p.clear()
	for {
		select {
		case <-done.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if d >= 2*time.Second {
				p.show(time.Since(start), d)
			}
		}
	}
}
