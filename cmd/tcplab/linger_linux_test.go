package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecLinger: a Python client sets SO_LINGER {l_onoff 1, l_linger 0}
// (after connect, before it, or on the listener of a server) and closes: the trace shows the
// setsockopt with its values, and the RST its close() sends is explained by
// it (the kernel's own reason, TCP_STATE, says only "tcp_disconnect").
func TestExecLinger(t *testing.T) {
	needTUN(t)
	bin := buildTcplab(t)
	const prelude = `
import os, socket, struct
host, port = os.environ["TCPLAB_PEER"].rsplit(":", 1)
linger = struct.pack("ii", 1, 0)
`
	for _, tc := range []struct{ name, src string }{
		{"after connect", prelude + `
s = socket.create_connection((host, int(port)))
s.sendall(b"hello")
assert s.recv(10) == b"hello"
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
s.close()
`},
		{"before connect", prelude + `
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
s.connect((host, int(port)))
s.sendall(b"hello")
assert s.recv(10) == b"hello"
s.close()
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, _, stderr, code := execJSON(t, bin, "echo", "--", "python3", "-c", tc.src)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			if !callsTraced(evs) {
				t.Skip("skipping: the program's calls are not traced on this machine")
			}
			if got := programCalls(evs, "client"); !strings.Contains(got, "setsockopt=0") {
				t.Errorf("the program's calls %q lack its setsockopt", got)
			}
			set := false
			for _, e := range evs {
				set = set || (e.Kind == "call" && e.Call == "setsockopt" && strings.Contains(e.Text, "observed with syscall tracepoints"))
			}
			if !set {
				t.Error("no traced setsockopt call")
			}
			r := sent(evs, "client", "R")
			if len(r) != 1 || !strings.HasPrefix(r[0].Reason, "close() with SO_LINGER 0: abortive close") {
				t.Errorf("client RSTs %+v: want one, explained by SO_LINGER 0", r)
			}
			if f := sent(evs, "client", "F"); len(f) != 0 {
				t.Errorf("client FINs %+v: want none", f)
			}
		})
	}

	// On the listener: the accepted socket inherits it.
	t.Run("on the listener", func(t *testing.T) {
		dir := t.TempDir()
		lab := filepath.Join(dir, "client.lab")
		os.WriteFile(lab, []byte("client connect server:8080\nclient write \"ping\"\nclient read\nclient shutdown wr\nclient read expect error ECONNRESET\n"), 0o644)
		src := `
import os, socket, struct
host, port = os.environ["TCPLAB_LISTEN"].rsplit(":", 1)
ls = socket.socket()
ls.bind((host, int(port)))
ls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
ls.listen()
c, _ = ls.accept()
while True:
    data = c.recv(4096)
    if not data:
        break
    c.sendall(data)
c.close()
ls.close()
`
		evs, _, stderr, code := execJSON(t, bin, "--side", "server", lab, "--", "python3", "-c", src)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if !callsTraced(evs) {
			t.Skip("skipping: the program's calls are not traced on this machine")
		}
		r := sent(evs, "server", "R")
		if len(r) != 1 || !strings.HasPrefix(r[0].Reason, "close() with SO_LINGER 0: abortive close") {
			t.Errorf("server RSTs %+v: want one, explained by the listener's SO_LINGER 0", r)
		}
	})
	assertNothingLeft(t)
}
