package render

import (
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

func TestAsyncKeepsOrderAndNeverBlocksThePusher(t *testing.T) {
	release := make(chan struct{})
	var got []int
	a := NewAsync(func(e trace.Event) {
		<-release // a stalled consumer
		got = append(got, e.Index)
	})
	pushed := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			a.Push(trace.Event{Index: i})
		}
		close(pushed)
	}()
	select {
	case <-pushed:
	case <-time.After(10 * time.Second):
		t.Fatal("Push blocked behind a stalled writer")
	}
	close(release)
	a.Close()
	if len(got) != 1000 {
		t.Fatalf("wrote %d events, want 1000", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d written as %d: order lost", i, v)
		}
	}
	a.Push(trace.Event{}) // after Close: dropped, no panic
	a.Close()
}
