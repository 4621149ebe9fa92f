package scenario

import (
	"testing"

	"github.com/tcplab/tcplab/stack/trace"
)

// The segments a long run's summaries count still count for expectations:
// by host, direction, connection and flags, never for a reason pattern.
func TestSummarisedSegmentsCount(t *testing.T) {
	events := []trace.Event{
		{Kind: trace.Segment, Host: "client", Conn: "c1", Dir: "out", Flags: "P."},
		{Kind: trace.Summary, Host: "client", Conn: "c1", Dir: "out", Sum: &trace.Sum{Of: "segments", Count: 12, Flags: map[string]int{".": 10, "P.": 2}}},
		{Kind: trace.Summary, Host: "server", Conn: "c1", Dir: "in", Sum: &trace.Sum{Of: "segments", Count: 12, Flags: map[string]int{".": 10, "P.": 2}}},
		{Kind: trace.Summary, Host: "client", Conn: "c2", Dir: "out", Sum: &trace.Sum{Of: "segments", Count: 3, Flags: map[string]int{"P.": 3}}},
	}
	for _, tc := range []struct {
		e     Expect
		conns map[string]bool
		want  int
	}{
		{Expect{Host: "client", What: "sent", Flags: "P."}, nil, 5},
		{Expect{Host: "client", What: "sent", Flags: "P."}, map[string]bool{"c1": true}, 2},
		{Expect{Host: "client", What: "sent", Flags: "."}, nil, 10},
		{Expect{Host: "server", What: "received", Flags: "P."}, nil, 2},
		{Expect{Host: "client", What: "sent", Flags: "F"}, nil, 0},
		{Expect{Host: "client", What: "sent", Flags: "P.", Reason: "close"}, nil, 0},
	} {
		if got := summarised(events, &tc.e, tc.conns); got != tc.want {
			t.Errorf("%s %s [%s] on %v reason %q: %d in summaries, want %d", tc.e.Host, tc.e.What, tc.e.Flags, tc.conns, tc.e.Reason, got, tc.want)
		}
	}
}
