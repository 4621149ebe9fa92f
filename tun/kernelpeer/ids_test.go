package kernelpeer

import "testing"

// TestIDsLanes: the zero IDs counts c1, c2, ...; two lanes interleave, so
// a relay's accepted connections are odd and those it makes even, whatever
// order they are seen in.
func TestIDsLanes(t *testing.T) {
	var one IDs
	if a, b, l := one.next("c"), one.next("c"), one.next("l"); a != "c1" || b != "c2" || l != "l1" {
		t.Errorf("zero IDs: %s %s %s, want c1 c2 l1", a, b, l)
	}
	acc, con := &IDs{Lane: 0, Lanes: 2}, &IDs{Lane: 1, Lanes: 2}
	got := []string{con.next("c"), acc.next("c"), acc.next("c"), con.next("c"), acc.next("l")}
	want := []string{"c2", "c1", "c3", "c4", "l1"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("id %d = %s, want %s (all: %v)", i, got[i], want[i], got)
		}
	}
}
