package vclock

import (
	"testing"
	"time"
)

func TestFireNextInOrder(t *testing.T) {
	c := New()
	var got []string
	c.AfterFunc(2*time.Second, func() { got = append(got, "b") })
	c.AfterFunc(time.Second, func() { got = append(got, "a1") })
	c.AfterFunc(time.Second, func() { got = append(got, "a2") })
	stopped := c.AfterFunc(1500*time.Millisecond, func() { got = append(got, "never") })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop() = false on a pending timer, or true twice")
	}
	if c.FireNext(Epoch.Add(500 * time.Millisecond)) {
		t.Fatal("FireNext fired before any deadline")
	}
	if !c.FireNext(Epoch.Add(time.Hour)) || c.Now() != Epoch.Add(time.Second) {
		t.Fatalf("after first FireNext: now = %v", c.Now().Sub(Epoch))
	}
	// A timer set by a callback at the current time + d lands in order.
	c.AfterFunc(500*time.Millisecond, func() { got = append(got, "c") })
	for c.FireNext(Epoch.Add(time.Hour)) {
	}
	want := []string{"a1", "a2", "c", "b"} // c is due at 1.5 s, b at 2 s
	if len(got) != len(want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fired %v, want %v", got, want)
		}
	}
	if _, ok := c.Next(); ok {
		t.Error("Next() reports a timer after all fired")
	}
	if c.NowMonotonic().Sub(c.NowMonotonic()) != 0 {
		t.Error("monotonic time moved without FireNext")
	}
}

func TestResetMovesDeadline(t *testing.T) {
	c := New()
	fired := 0
	tm := c.AfterFunc(time.Second, func() { fired++ })
	tm.Reset(3 * time.Second)
	if next, _ := c.Next(); next != Epoch.Add(3*time.Second) {
		t.Fatalf("Next() = %v, want +3s", next.Sub(Epoch))
	}
	c.FireNext(Epoch.Add(time.Hour))
	if fired != 1 {
		t.Fatalf("fired %d times, want 1", fired)
	}
	done := make(chan struct{})
	c.AfterFunc(0, func() { close(done) })
	<-done
}
