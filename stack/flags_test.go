package stack

import "testing"

// ParseFlags reads what FlagString writes, and refuses other letters.
func TestParseFlagsRoundTrip(t *testing.T) {
	for _, s := range []string{"S", "S.", ".", "P.", "F.", "FP.", "R", "R.", "SEW"} {
		f, ok := ParseFlags(s)
		if !ok || FlagString(f) != s {
			t.Errorf("ParseFlags(%q) = %v, %v; FlagString gives %q", s, f, ok, FlagString(f))
		}
	}
	for _, s := range []string{"X", "S.x", "é"} {
		if _, ok := ParseFlags(s); ok {
			t.Errorf("ParseFlags(%q) accepted", s)
		}
	}
}
