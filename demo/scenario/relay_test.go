package scenario

import (
	"strings"
	"testing"
)

// TestParseRelayExpectations: expectations may name the relay of tcplab
// exec --side middle for what the trace holds (segments, states), not for
// the scenario's own sockets.
func TestParseRelayExpectations(t *testing.T) {
	s, err := Parse("x.lab", strings.NewReader("expect relay received F.\nexpect relay sent F. reason ~ \"SHUT_WR\" before server received F.\nexpect client sent F. before relay received F.\nexpect relay state CLOSE-WAIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	e0, e1, e2 := s.Steps[0].(*Expect), s.Steps[1].(*Expect), s.Steps[2].(*Expect)
	if e0.Host != RelayHost || e0.What != "received" || e0.Flags != "F." {
		t.Errorf("step 1 = %+v", e0)
	}
	if e1.Host != RelayHost || e1.Reason != "SHUT_WR" || e1.Before == nil || e1.Before.Host != "server" {
		t.Errorf("step 2 = %+v", e1)
	}
	if e2.Before == nil || e2.Before.Host != RelayHost {
		t.Errorf("step 3 = %+v", e2)
	}
	for _, tc := range []struct{ src, want string }{
		{"expect relay final CLOSED", `x.lab:1:26: the relay's sockets are its program's, not the scenario's`},
		{"expect relay buffer snd 0", `x.lab:1:26: the relay's sockets are its program's`},
		{"expect relay sent F. on c1", `the relay's sockets are its program's`},
		{"expect relai sent F.", `x.lab:1:8: expected a host (client, server, relay), found "relai"; did you mean "relay"?`},
		{"relay close", `x.lab:1:1: expected a statement`},
	} {
		_, err := Parse("x.lab", strings.NewReader(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.src, err, tc.want)
		}
	}
}
