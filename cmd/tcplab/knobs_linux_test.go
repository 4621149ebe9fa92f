package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/tun/kernelpeer"
)

// TestIntegrationKnobsWithKernel runs the scenarios built on knobs and the
// finer expectations over TUN with the Linux kernel on each side: every
// expectation holds where the story is the same on Linux, the "config
// kernel" settings are noted as written in the lab namespace, and the one
// known difference (a RST ending TIME-WAIT with tcp_rfc1337 0) fails just
// the expectation that describes gVisor.
func TestIntegrationKnobsWithKernel(t *testing.T) {
	needTUN(t)
	for _, tc := range []struct {
		name, kernel string
		fails        string // the expectation that fails on Linux, "" for none
	}{
		{"keepalive-timeout", "client", ""},
		{"keepalive-timeout", "server", ""},
		{"linger-timeout", "client", ""},
		{"linger-timeout", "server", ""},
		{"rst-in-time-wait-rfc1337", "client", ""},
		{"rst-in-time-wait-rfc1337", "server", ""},
		{"rst-in-time-wait", "client", "expect client final TIME-WAIT client is in CLOSED, want TIME-WAIT"},
		{"fin-retransmit-random-loss", "client", ""},
		{"fin-retransmit-random-loss", "server", ""},
	} {
		t.Run(tc.name+"/kernel="+tc.kernel, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			args := []string{"run", tc.name, "--kernel", tc.kernel}
			code := cli.Main(context.Background(), args, cli.Env{NewTUN: newTUN, NewKernelPeer: kernelpeer.NewPeer, Stdout: &out, Stderr: &errb})
			text := out.String() + errb.String()
			if tc.fails == "" && code != 0 {
				t.Fatalf("tcplab %s: exit %d\n%s", strings.Join(args, " "), code, text)
			}
			if tc.fails != "" && (code != 1 || !strings.Contains(text, "1 of ") || !strings.Contains(strings.Join(strings.Fields(text), " "), tc.fails)) {
				t.Errorf("tcplab %s: exit %d, want exactly %q to fail:\n%s", strings.Join(args, " "), code, tc.fails, text)
			}
			if strings.Contains(text, "config kernel") && !strings.Contains(text, "written in the lab namespace (Linux plays the "+tc.kernel+")") {
				t.Errorf("the kernel settings are not noted as written:\n%s", text)
			}
		})
	}
	t.Cleanup(func() { assertNothingLeft(t) })
}

// TestIntegrationLossOverTUN runs, over TUN under 5% random loss, every
// built-in scenario that does not declare "needs exact-segments": each
// must hold all its expectations (the loss is the kernel's netem, or
// tcplab's userspace model on kernels without it). The others are
// skipped with their reason, as check does.
func TestIntegrationLossOverTUN(t *testing.T) {
	needTUN(t)
	for _, name := range scenario.Names() {
		s, err := scenario.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			if s.ExactSegments != "" {
				t.Skipf("needs exact segments: %s", s.ExactSegments)
			}
			t.Parallel()
			var out, errb bytes.Buffer
			args := []string{"run", name, "--net", "loss 5%"}
			if code := cli.Main(context.Background(), args, cli.Env{NewTUN: newTUN, Stdout: &out, Stderr: &errb}); code != 0 {
				t.Errorf("tcplab %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
			}
		})
	}
	t.Cleanup(func() { assertNothingLeft(t) })
}
