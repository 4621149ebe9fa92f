package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/tun/kernelpeer"
)

// TestIntegrationInjectOverTUN runs blind-rst over TUN with a gVisor
// server and with a kernel server: the forged RSTs leave a raw socket in
// the lab namespace and reach the server as real packets. Each server
// refuses the first (RFC 5961: in the window, not RCV.NXT) and answers
// with a challenge ACK, and obeys the second; the trace notes each
// injection before its arrival.
func TestIntegrationInjectOverTUN(t *testing.T) {
	needTUN(t)
	for _, kernel := range []string{"", "server", "client"} {
		t.Run("kernel="+kernel, func(t *testing.T) {
			args := []string{"run", "blind-rst", "--format", "json"}
			if kernel != "" {
				args = append(args, "--kernel", kernel)
			}
			var out, errb bytes.Buffer
			code := cli.Main(context.Background(), args, cli.Env{NewTUN: newTUN, NewKernelPeer: kernelpeer.NewPeer, Stdout: &out, Stderr: &errb})
			if code != 0 {
				t.Fatalf("tcplab %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
			}
			type ev struct {
				Host, Kind, Dir, Flags, Text, Verdict, Why, Reason string
			}
			var notes, arrivals, challenges int
			var order []string
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				var e ev
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatal(err)
				}
				switch {
				case e.Kind == "note" && e.Host == "server" && strings.HasPrefix(e.Text, "inject: client > server Flags [R]"):
					notes++
					order = append(order, "note")
				case e.Kind == "segment" && e.Host == "server" && e.Dir == "in" && e.Flags == "R":
					arrivals++
					order = append(order, "R "+e.Verdict+" "+e.Why)
				case e.Kind == "segment" && e.Host == "server" && e.Dir == "out" && strings.Contains(e.Reason, "challenge"):
					challenges++
				case e.Kind == "segment" && e.Host == "client" && e.Dir == "out" && strings.HasPrefix(e.Flags, "R"):
					t.Errorf("the trace says the client sent [%s]: a forged segment taken for the client's own", e.Flags)
				}
			}
			t.Logf("server: %v", order)
			if notes != 2 || arrivals != 2 || challenges != 1 {
				t.Errorf("%d inject notes, %d RST arrivals at the server, %d challenge ACKs; want 2, 2, 1", notes, arrivals, challenges)
			}
			if len(order) == 4 && (order[0] != "note" || !strings.HasPrefix(order[1], "R refused") || order[2] != "note" || !strings.HasPrefix(order[3], "R accepted")) {
				t.Errorf("server saw %v: want note, refused RST, note, accepted RST", order)
			}
		})
	}
	assertNothingLeft(t)
}
