package stack_test

import (
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
)

// TestOptionsApplied builds hosts with gVisor settings by name and reads
// them back from the stacks.
func TestOptionsApplied(t *testing.T) {
	opts := []stack.Option{
		{Key: "sack", Value: "off"}, {Key: "nagle", Value: "on"}, {Key: "congestion-control", Value: "cubic"},
		{Key: "rto-min", Value: "50ms"}, {Key: "rto-max", Value: "1s"}, {Key: "max-retries", Value: "4"},
		{Key: "syn-cookies", Value: "always"}, {Key: "moderate-receive-buffer", Value: "off"},
		{Key: "tw-reuse", Value: "global"}, {Key: "syn-retries", Value: "2"}, {Key: "rack", Value: "off"},
	}
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{Options: opts}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	for _, h := range []*stack.Host{lab.Client, lab.Server} {
		s := h.Stack()
		var sack tcpip.TCPSACKEnabled
		var delay tcpip.TCPDelayEnabled
		var cc tcpip.CongestionControlOption
		var minRTO tcpip.TCPMinRTOOption
		var maxRTO tcpip.TCPMaxRTOOption
		var retries tcpip.TCPMaxRetriesOption
		var cookies tcpip.TCPAlwaysUseSynCookies
		var moderate tcpip.TCPModerateReceiveBufferOption
		var reuse tcpip.TCPTimeWaitReuseOption
		var syn tcpip.TCPSynRetriesOption
		var rack tcpip.TCPRecovery
		for _, o := range []tcpip.GettableTransportProtocolOption{&sack, &delay, &cc, &minRTO, &maxRTO, &retries, &cookies, &moderate, &reuse, &syn, &rack} {
			if err := s.TransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
				t.Fatal(err)
			}
		}
		if bool(sack) || !bool(delay) || cc != "cubic" || time.Duration(minRTO) != 50*time.Millisecond || time.Duration(maxRTO) != time.Second ||
			retries != 4 || !bool(cookies) || bool(moderate) || reuse != tcpip.TCPTimeWaitReuseGlobal || syn != 2 || rack != 0 {
			t.Errorf("%s: sack %v nagle %v cc %v rto %v..%v retries %v cookies %v moderate %v reuse %v syn %v rack %v",
				h.Name(), sack, delay, cc, minRTO, maxRTO, retries, cookies, moderate, reuse, syn, rack)
		}
	}
}

// TestCheckOption checks the errors for unknown keys, missing knobs and
// bad values.
func TestCheckOption(t *testing.T) {
	for _, tc := range []struct {
		o    stack.Option
		want string
	}{
		{stack.Option{Key: "sack", Value: "on"}, ""},
		{stack.Option{Key: "keepalive-count", Value: "128"}, `gVisor setting keepalive-count: want a number 1-127, found "128"`},
		{stack.Option{Key: "delayed-ack", Value: "off"}, `gVisor has no setting "delayed-ack": gVisor acknowledges every segment at once`},
		{stack.Option{Key: "bogus", Value: "1"}, `unknown gVisor setting "bogus"; valid ones: congestion-control, `},
		{stack.Option{Key: "tw-reuse", Value: "on"}, `gVisor setting tw-reuse: want off or global or loopback, found "on"`},
	} {
		err := stack.CheckOption(tc.o)
		if (err == nil) != (tc.want == "") || err != nil && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("CheckOption(%v) = %v, want %q", tc.o, err, tc.want)
		}
	}
	if _, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{Options: []stack.Option{{Key: "rto-min", Value: "2s"}, {Key: "rto-max", Value: "1s"}}}, false); err == nil || !strings.Contains(err.Error(), "rto-min 2s is above its rto-max 1s") {
		t.Errorf("rto-min 2s with rto-max 1s: %v", err)
	}
	// Both orders of a valid pair work: they are applied in the order
	// gVisor accepts.
	for _, opts := range [][]stack.Option{
		{{Key: "rto-max", Value: "100ms"}, {Key: "rto-min", Value: "50ms"}},
		{{Key: "rto-min", Value: "200s"}, {Key: "rto-max", Value: "300s"}},
	} {
		lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{Options: opts}, false)
		if err != nil {
			t.Errorf("%v: %v", opts, err)
			continue
		}
		lab.Close()
	}
}
