package main

import (
	"strings"
	"testing"
)

// TestExecHTTPPeer: examples/bigpost.py (1 MiB POST, then read the answer)
// against the built-in http peer: with http the body is read and answered
// 200, no RST; with http:noread the answer comes without the body being
// read, the gVisor server resets the connection for it, the program's send
// fails, and it still reads the answer.
func TestExecHTTPPeer(t *testing.T) {
	needTUN(t)
	bin := buildTcplab(t)

	evs, stdout, stderr, code := execJSON(t, bin, "http", "--", "python3", "examples/bigpost.py")
	if code != 0 || stdout != "sent the whole body\nanswer: HTTP/1.1 200 OK\n" {
		t.Fatalf("http: exit %d, output %q\nstderr:\n%s", code, stdout, stderr)
	}
	if r := append(sent(evs, "server", "R"), sent(evs, "client", "R")...); len(r) != 0 {
		t.Errorf("http: RSTs %+v, want none", r)
	}
	read := 0
	for _, e := range evs {
		if e.Host == "server" && e.Kind == "call" && e.Call == "read" && e.Ret > 0 {
			read += e.Ret
		}
		if e.Host == "server" && e.Kind == "summary" && e.Call == "read" && e.Summary != nil && e.Summary.Of == "calls" {
			read += int(e.Summary.Bytes) // reads a long run's trace counts in a summary
		}
	}
	if want := 61 + 1<<20; read != want { // the headers and the body
		t.Errorf("http: the server read %d bytes, want %d", read, want)
	}

	evs, stdout, stderr, code = execJSON(t, bin, "http:noread", "--", "python3", "examples/bigpost.py")
	if code != 0 || !strings.HasPrefix(stdout, "sending the body failed: ") || !strings.HasSuffix(stdout, "answer: HTTP/1.1 200 OK\n") {
		t.Fatalf("http:noread: exit %d, output %q, want a failed send and the answer\nstderr:\n%s", code, stdout, stderr)
	}
	r := sent(evs, "server", "R")
	if len(r) == 0 || (!strings.Contains(r[0].Reason, "unread") && !strings.Contains(r[0].Reason, "after close()")) {
		t.Errorf("http:noread: server RSTs %+v, want the first for the unread body", r)
	}
	noted := false
	for _, e := range evs {
		noted = noted || (e.Host == "server" && e.Kind == "note" && strings.Contains(e.Text, "answering without reading the body"))
	}
	if !noted {
		t.Error("http:noread: no note that the body was not read")
	}
	assertNothingLeft(t)
}
