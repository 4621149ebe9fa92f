package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/explain"
)

// TestExplainKeepaliveFromLinux: examples/keepalive.py (SO_KEEPALIVE, 1 s
// idle, 1 s between probes, 2 probes) against a gVisor server whose
// answers are all lost; the kernel resets with its own reason
// TCP_KEEPALIVE_TIMEOUT, and explain, given only the capture, marks the
// kernel's probes and says keepalive timeout for the RST, citing them.
func TestExplainKeepaliveFromLinux(t *testing.T) {
	needTUN(t)
	bin := buildTcplab(t)
	pc := filepath.Join(t.TempDir(), "keepalive.pcapng")
	evs, stdout, stderr, code := execJSON(t, bin, "--capture", pc, "examples/keepalive.lab", "--", "python3", "examples/keepalive.py")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if r := sent(evs, "client", "R"); len(r) != 1 || !strings.Contains(r[0].Reason, "KEEPALIVE") {
		t.Fatalf("client RSTs %+v: want one, with the kernel's TCP_KEEPALIVE_TIMEOUT", r)
	}
	file, err := os.ReadFile(pc)
	if err != nil {
		t.Fatal(err)
	}
	var fs []*explain.Finding
	if _, err := explain.Analyze("keepalive.pcapng", bytes.NewReader(file), false, func(c *explain.Conn) { fs = append(fs, c.Findings...) }); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Class != explain.ClassKeepalive || fs[0].Kind != "RST" || len(fs[0].Evidence) != 2 {
		for _, f := range fs {
			t.Logf("%s %s %s [%s]: %s", f.Kind, f.From, f.Class, f.Confidence, f.Why)
		}
		t.Fatalf("explain: want one finding, the client's RST, keepalive timeout, citing the two probes")
	}
	assertNothingLeft(t)
}
