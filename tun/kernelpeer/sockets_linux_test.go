package kernelpeer

import (
	"context"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/scenario"
)

// A kernel socket made before it listens takes its options first, and the
// sockets it accepts inherit them as Linux copies a listener: SO_LINGER 0
// set on the listener makes the accepted socket's close() reset. O_NONBLOCK
// is not inherited (accept4 without SOCK_NONBLOCK), and a background read
// returns once the data comes.
func TestFreshListenerOptionsInherited(t *testing.T) {
	s, err := scenario.Parse("inherit.lab", strings.NewReader(`server socket as L
server set linger 0 on L
server set nonblock on on L
server listen 9527 backlog 4 on L
server accept on L expect error EAGAIN
client connect server:9527
server accept on L as s expect ok
server read on s expect "x" &
client write "x"
wait s
server close on s
expect server sent R
expect server sent F never
`))
	if err != nil {
		t.Fatal(err)
	}
	k := newKernelLab(t, "server", s)
	res := scenario.Run(context.Background(), s, k.scenarioLab(), scenario.Options{})
	for _, f := range res.Failures {
		t.Errorf("%v", f)
	}
	if res.Checked != 5 {
		t.Errorf("checked %d expectations, want 5", res.Checked)
	}
}
