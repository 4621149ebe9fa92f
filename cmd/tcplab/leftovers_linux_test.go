package main

import (
	"strings"
	"testing"
)

// TestExecLeftovers: a program that leaves a background job running in
// the lab's namespace when it exits: the job is killed, the summary says
// so, and nothing is left behind.
func TestExecLeftovers(t *testing.T) {
	needTUN(t)
	bin := buildTcplab(t)
	_, _, stderr, code := execJSON(t, bin, "sink", "--", "sh", "-c", "sleep 60 & exit 0")
	if code != 0 || !strings.Contains(stderr, "# program sh exited with status 0") ||
		!strings.Contains(stderr, "; it left 1 process running in the lab namespace, killed then (pid ") {
		t.Fatalf("exit %d, want 0 and the leftover sleep killed\nstderr:\n%s", code, stderr)
	}
	assertNothingLeft(t)
}
