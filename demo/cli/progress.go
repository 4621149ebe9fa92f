package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/stack/trace"
)

// progress shows, on a terminal, one line of stderr that trace lines clear
// before they print: how far a long real-time sleep has got ("# sleeping
// 12s of 60s"), or, for a long run (live), how much the run has moved so
// far. Cost: one timer tick per second while it shows.
type progress struct {
	w     io.Writer
	width int // the terminal's columns, 0 when unknown
	// separate says the trace goes elsewhere (a file, a pipe): its lines
	// need not erase the progress line.
	separate bool
	mu       sync.Mutex
	active   bool
}

// clear erases the progress line, if shown, before other output.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *progress) clearLocked() {
	if p.active {
		io.WriteString(p.w, "\r\x1b[K")
		p.active = false
	}
}

// write runs out (which writes trace output to the same terminal) with the
// progress line erased, so that the two never share a line; the line is
// drawn again at the next tick.
func (p *progress) write(out func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.separate {
		p.clearLocked()
	}
	out()
}

// toTerminal reports whether w (under Main's checkedWriters) is a terminal.
func toTerminal(w io.Writer) bool {
	for {
		c, ok := w.(*checkedWriter)
		if !ok {
			break
		}
		w = c.w
	}
	f, ok := w.(*os.File)
	return ok && render.IsTerminal(f)
}

// showLine draws text as the progress line, cut to the terminal's width.
func (p *progress) showLine(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 1 && len(text) > p.width-1 {
		text = text[:p.width-1]
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", text)
	p.active = true
}

func (p *progress) show(done, total time.Duration) {
	p.showLine(fmt.Sprintf("# sleeping %s of %s", done.Round(time.Second), total))
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

// runCounts is what the live line of a long run counts, from every event
// the recorder hands out (Recorder.Tap: summarised ones too).
type runCounts struct {
	mu     sync.Mutex
	sent   map[string]int64  // payload bytes by sending host
	segs   int64             // segments sent, all hosts
	states map[string]string // the latest state by "host conn"
}

func (c *runCounts) add(e trace.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case e.Kind == trace.Segment && e.Dir == "out":
		c.sent[e.Host] += int64(e.Len)
		c.segs++
	case e.Kind == trace.State && e.Conn != "" && e.Conn[0] == 'c':
		c.states[e.Host+" "+e.Conn] = e.To
	}
}

// line says how far the run has got: time, bytes each way, segments,
// connection states, the trace's size and tcplab's heap.
func (c *runCounts) line(elapsed time.Duration, st trace.Stats, heap uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s  client->server %s  server->client %s  %d segments", elapsed.Round(time.Second), size(c.sent["client"]), size(c.sent["server"]), c.segs)
	keys := make([]string, 0, len(c.states))
	for k, s := range c.states {
		if s != "CLOSED" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i == 2 {
			fmt.Fprintf(&b, " +%d more", len(keys)-i)
			break
		}
		fmt.Fprintf(&b, "  %s %s", k, c.states[k])
	}
	fmt.Fprintf(&b, "  trace %d events (%d summarised)  heap %s", st.Kept-st.Dropped, st.Summarised, size(int64(heap)))
	return b.String()
}

// size writes n bytes with a binary unit.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// live shows the long-run line every second from now on, counting what
// rec records, until the returned function is called (which erases it).
// Cost: a map update per event, and a runtime.ReadMemStats per second.
func (p *progress) live(rec *trace.Recorder) (stop func()) {
	c := &runCounts{sent: map[string]int64{}, states: map[string]string{}}
	rec.Tap(c.add)
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				p.showLine(c.line(time.Since(start), rec.Stats(), ms.HeapAlloc))
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			p.clear()
		})
	}
}
