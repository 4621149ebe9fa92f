package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/tun/kernelpeer"
)

// TestIntegrationReplay replays captures of the wire (--capture over TUN)
// made with the Linux kernel as client, so that the capture is partly
// Linux's, with `tcplab replay --wire tun`: the gVisor run and the runs
// with the kernel as client and as server each send the capture's FINs
// and RSTs in the capture's order. close-syn-sent's replay needs a
// non-blocking connect, a close while it waits and the wire held.
func TestIntegrationReplay(t *testing.T) {
	needTUN(t)
	for _, name := range []string{"close", "shutdown", "linger-zero", "close-unread", "connect-refused", "close-syn-sent"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := runWitnessed(t, name, arrangement{name: "replay", kernel: "client"})
			p := filepath.Join(t.TempDir(), name+".pcapng")
			if err := os.WriteFile(p, w.file, 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := cli.Main(context.Background(), []string{"replay", p, "--conn", "1", "--wire", "tun"}, cli.Env{
				NewTUN: newTUN, NewKernelPeer: kernelpeer.NewPeer, Stdout: &out, Stderr: &errb,
			})
			if code != 0 {
				t.Fatalf("replay: exit %d: %s\n%s", code, errb.String(), out.String())
			}
			for _, run := range []string{"gVisor on both sides (tun wire)", "Linux as client (tun wire)", "Linux as server (tun wire)"} {
				if !strings.Contains(out.String(), "# "+run+": reproduces: ") {
					t.Errorf("%s does not reproduce the capture's teardown:\n%s", run, out.String())
				}
			}
		})
	}
	t.Cleanup(func() { assertNothingLeft(t) })
}
