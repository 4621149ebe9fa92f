package scenario

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/stack/trace"
)

func TestParseInject(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want Inject
	}{
		{"inject server R", Inject{Host: "server", Flags: "R"}},
		{"inject client R. seq 1000 ack 5 win 0 on c2", Inject{Host: "client", Flags: "R.", Seq: 1000, HasSeq: true, Ack: 5, HasAck: true, Win: 0, HasWin: true, On: "c2"}},
		{"inject server P. data \"hi\" abs seq 4294967295", Inject{Host: "server", Flags: "P.", Data: []byte("hi"), Abs: true, Seq: 4294967295, HasSeq: true}},
		{"inject server S seq -1", Inject{Host: "server", Flags: "S", Seq: -1, HasSeq: true}},
	} {
		s, err := Parse("x.lab", strings.NewReader(tc.src))
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.src, err)
			continue
		}
		got := *s.Steps[0].(*Inject)
		got.base = base{}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.src, got, tc.want)
		}
	}
}

func TestParseInjectErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"inject", `x.lab:1:7: expected the host that receives the segment (client, server), found end of line`},
		{"inject serve R", `x.lab:1:8: expected the host that receives the segment (client, server), found "serve"; did you mean "server"?`},
		{"inject server", `x.lab:1:14: expected TCP flags in tcpdump notation`},
		{"inject server RR", `x.lab:1:15: bad TCP flags "RR": R appears more than once`},
		{"inject server R sequence 5", `x.lab:1:17: expected a field of the segment (seq, ack, win, data, on, abs), found "sequence"`},
		{"inject server R seq 4294967296", `x.lab:1:21: sequence number 4294967296 out of range: want -2147483648-4294967295`},
		{"inject server R. win 65536", `x.lab:1:22: window 65536 out of range: want 0-65535`},
		{"inject server R seq 1 seq 2", `x.lab:1:23: seq given twice`},
		{"inject server R ack 5", `x.lab:1:1: ack N needs the ACK flag (.) in FLAGS`},
		{"inject server P. data x", `x.lab:1:23: expected the payload (a "quoted string")`},
		{"inject server P. data \"" + strings.Repeat("x", MaxInjectData+1) + "\"", `x.lab:1:`},
	} {
		_, err := Parse("x.lab", strings.NewReader(tc.src))
		if err == nil {
			t.Errorf("Parse(%.50q) = nil error, want %q", tc.src, tc.want)
			continue
		}
		if _, ok := err.(*Error); !ok || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%.50q) error:\n got %s\nwant %s", tc.src, err, tc.want)
		}
	}
}

// TestInjectOnTheMemoryWire injects segments into a live connection on the
// memory wire and checks the trace: the note with relative and absolute
// numbers, the arrival with the stack's verdict, and what the stack did.
func TestInjectOnTheMemoryWire(t *testing.T) {
	res, ev, text := simulateText(t, netPrologue+`client write "aaa"
server read expect "aaa"
inject server P. data "zz" seq 100000
wait quiet
inject client P. data "hi"
client read expect "hi"
expect client final ESTABLISHED
inject server F.
wait quiet
expect server final CLOSE-WAIT
server read expect EOF
`, SimConfig{})
	if !res.OK() {
		t.Errorf("failures %v\n%s", res.Failures, text)
	}
	for _, want := range []string{
		"# inject: client > server Flags [P.], seq 100000, ack 1, win 65535, length 2 (crafted by tcplab as if from client 198.18.0.1:",
		"# inject: server > client Flags [P.], seq 1, ack 4, win 65535, length 2",
		"# inject: client > server Flags [F.], seq 4, ack 1, win 65535, length 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("trace lacks %q:\n%s", want, text)
		}
	}
	// The out-of-window data is refused; the injected FIN is accepted.
	var verdicts []string
	for _, e := range ev {
		if e.Kind == trace.Segment && e.Host == "server" && e.Dir == "in" && (e.Len == 2 || e.Flags == "F.") {
			verdicts = append(verdicts, e.Flags+" "+e.Verdict+" "+e.Why)
		}
	}
	if len(verdicts) != 2 || !strings.Contains(verdicts[0], string(trace.Refused)) || !strings.Contains(verdicts[1], string(trace.Accepted)) {
		t.Errorf("server's verdicts on the injected segments: %q, want refused then accepted", verdicts)
	}
}

func TestInjectNeedsAConnection(t *testing.T) {
	res, _, _ := simulateText(t, "server listen 9527\ninject server R\n", SimConfig{})
	if !res.Stopped || !strings.Contains(res.Failures[0].Msg, "server has no connection yet") {
		t.Errorf("inject before any connection: %+v", res.Failures)
	}
	res, _, _ = simulateText(t, netPrologue+"inject server R on c9\n", SimConfig{})
	if !res.Stopped || !strings.Contains(res.Failures[0].Msg, `no socket named "c9"`) {
		t.Errorf("inject on an unknown socket: %+v", res.Failures)
	}
}
