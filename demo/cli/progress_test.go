package cli

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

// lockedBuilder is a strings.Builder safe for the progress goroutine.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The long-run line counts every event the recorder hands out, summarised
// or not: bytes each way, segments, the live connections' states, the
// trace's size; it is cut to the terminal's width and erased when the run
// ends.
func TestProgressLiveLine(t *testing.T) {
	rec := trace.NewRecorder(nil)
	rec.Summarise(trace.SummaryConfig{After: 1})
	var w lockedBuilder
	p := &progress{w: &w, width: 400}
	stop := p.live(rec)
	rec.Emit(trace.Event{Host: "client", Kind: trace.State, Conn: "c1", From: "SYN-SENT", To: "ESTABLISHED"})
	for i := 0; i < 3000; i++ {
		rec.Emit(trace.Event{Host: "client", Kind: trace.Segment, Conn: "c1", Dir: "out", Flags: ".", Seq: uint32(1 + i*1000), Ack: 1, Win: 10, Len: 1000})
	}
	rec.Emit(trace.Event{Host: "server", Kind: trace.Segment, Conn: "c1", Dir: "out", Flags: "P.", Seq: 1, Ack: 1, Win: 10, Len: 5})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.String(), "client->server") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	out := w.String()
	for _, want := range []string{"client->server 2.9 MiB", "server->client 5 B", "3001 segments", "client c1 ESTABLISHED", "summarised)", "heap "} {
		if !strings.Contains(out, want) {
			t.Errorf("progress line %q lacks %q", out, want)
		}
	}
	if !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("the line is not erased at the end: %q", out)
	}

	var narrow lockedBuilder
	q := &progress{w: &narrow, width: 20}
	q.showLine("# " + strings.Repeat("x", 100))
	if got := narrow.String(); got != "\r\x1b[K# "+strings.Repeat("x", 17) {
		t.Errorf("a 20-column terminal got %q", got)
	}
}

// Trace lines erase the progress line when they go to the same terminal,
// and leave it alone when the trace goes to a file.
func TestProgressWrite(t *testing.T) {
	for _, separate := range []bool{false, true} {
		var w lockedBuilder
		p := &progress{w: &w, separate: separate}
		p.showLine("# 1s")
		p.write(func() { w.Write([]byte("trace line\n")) })
		want := "\r\x1b[K# 1s\r\x1b[Ktrace line\n"
		if separate {
			want = "\r\x1b[K# 1s" + "trace line\n"
		}
		if got := w.String(); got != want {
			t.Errorf("separate=%v: %q, want %q", separate, got, want)
		}
	}
}
