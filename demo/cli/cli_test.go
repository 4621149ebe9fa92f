package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/stack"
)

// run runs the command line in-process with a fake TUN constructor.
func run(t *testing.T, newTUN func(context.Context, WireConfig) (stack.Wire, error), args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(context.Background(), args, Env{NewTUN: newTUN, Stdout: &o, Stderr: &e})
	return code, o.String(), e.String()
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.lab")
	os.WriteFile(bad, []byte("server listen 9527\nclient conect server:9527\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "clsoe", "--wire", "memory"}, 2, `no built-in scenario "clsoe"; valid names: close, shutdown,`},
		{[]string{"run", "clsoe", "--wire", "memory"}, 2, `did you mean "close"?`},
		{[]string{"run", bad, "--wire", "memory"}, 2, bad + `:2:8: expected a socket call (listen, connect, accept, write, read, shutdown, close, set, sleep, socket, bind), found "conect"; did you mean "connect"?`},
		{[]string{"run", filepath.Join(dir, "missing.lab")}, 2, "scenario file " + filepath.Join(dir, "missing.lab") + ": no such file or directory"},
		{[]string{"run", "close", "--wire", "wifi"}, 2, `--wire "wifi": want tun or memory`},
		{[]string{"run", "close", "--format", "xml"}, 2, `--format "xml": want text, json or ladder`},
		{[]string{"run", "close", "--mtu", "100"}, 2, `--mtu 100: want 576-65535`},
		{[]string{"run", "close", "--kernel", "client", "--wire", "memory"}, 2, "--kernel needs --wire tun"},
		{[]string{"run"}, 2, "run takes one scenario, got 0: a built-in NAME, a FILE.lab, or - to read standard input"},
		{[]string{"run"}, 2, "built-in: close, shutdown, "},
		{[]string{"run", "close", "shutdown"}, 2, "run takes one scenario, got 2"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"run", "close", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"run", "close", "--wire", "memory", "--net", "loss 120%"}, 2, "--net:1:6: loss 120% out of range: want 0%-100%"},
		{[]string{"check", "close", "--wire", "memory", "--net", "jitter 5ms"}, 2, `--net "jitter 5ms": jitter needs a delay`},
		{[]string{"run", "close", "--wire", "memory", "--realtime", "--net", "loss 1%"}, 2, "--net on the memory wire needs virtual time"},
	} {
		code, _, stderr := run(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("tcplab %s = exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

// A wire that cannot be built explains why, and the run fails with 1.
func TestTUNErrorsReachTheUser(t *testing.T) {
	need := errors.New("tun: needs root / CAP_NET_ADMIN to create a network namespace and TUN devices (run with sudo)")
	code, _, stderr := run(t, func(context.Context, WireConfig) (stack.Wire, error) { return nil, need }, "run", "close")
	if code != 1 || !strings.Contains(stderr, "needs root / CAP_NET_ADMIN") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run(t, nil, "run", "close")
	if code != 1 || !strings.Contains(stderr, "use --wire memory") {
		t.Errorf("without a TUN constructor: exit %d, stderr %q", code, stderr)
	}
}

func TestPortInUseIsAClearFailure(t *testing.T) {
	f := filepath.Join(t.TempDir(), "twice.lab")
	os.WriteFile(f, []byte("server listen 9527\nserver listen 9527\n"), 0o644)
	code, _, stderr := run(t, nil, "run", f, "--wire", "memory")
	if code != 1 || !strings.Contains(stderr, f+":2:1: server listen 9527") || !strings.Contains(stderr, "address already in use") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestFailedExpectationShowsWhereAndTrace(t *testing.T) {
	f := filepath.Join(t.TempDir(), "wrong.lab")
	os.WriteFile(f, []byte("server listen 9527\nclient connect server:9527\nserver accept\nclient close\nexpect client sent R\n"), 0o644)
	code, _, stderr := run(t, nil, "run", f, "--wire", "memory")
	for _, want := range []string{"FAIL " + f + ":5:1: expect client sent R", "client never sent [R]", "trace before it:", "Flags [F.]", "1 of 1 expectations failed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
}

// The JSON lines carry the documented fields for each kind.
func TestJSONSchema(t *testing.T) {
	code, stdout, stderr := run(t, nil, "run", "close", "--wire", "memory", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := map[string][]string{
		"segment": {"t", "host", "kind", "dir", "flags", "seq", "ack", "win", "len"},
		"call":    {"t", "host", "kind", "call", "ret", "err"},
		"state":   {"t", "host", "kind", "from", "to"},
		"buffer":  {"t", "host", "kind", "snd_queued", "rcv_queued"},
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		k, _ := m["kind"].(string)
		seen[k]++
		for _, f := range want[k] {
			if _, ok := m[f]; !ok {
				t.Errorf("%s event lacks %q: %s", k, f, sc.Text())
			}
		}
		if k == "segment" && m["dir"] == "out" && strings.ContainsAny(m["flags"].(string), "FR") && m["reason"] == nil {
			t.Errorf("FIN/RST without reason: %s", sc.Text())
		}
	}
	for k := range want {
		if seen[k] == 0 {
			t.Errorf("no %s events", k)
		}
	}
}

func TestCheckCountsPassedAndFailed(t *testing.T) {
	f := filepath.Join(t.TempDir(), "wrong.lab")
	os.WriteFile(f, []byte("client connect server:1 expect ok\n"), 0o644)
	code, stdout, _ := run(t, nil, "check", "--wire", "memory", "close-unread", f)
	if code != 1 || !strings.Contains(stdout, "\n1 passed, 1 failed\n") {
		t.Errorf("exit %d, stdout:\n%s", code, stdout)
	}
}

func TestListAndShow(t *testing.T) {
	code, stdout, _ := run(t, nil, "list")
	if code != 0 || !strings.HasPrefix(stdout, "close ") || !strings.Contains(stdout, "simultaneous-close") {
		t.Errorf("list: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, nil, "show", "shutdown")
	if code != 0 || !strings.Contains(stdout, "client shutdown wr") {
		t.Errorf("show: exit %d\n%s", code, stdout)
	}
}

func TestSyntaxMentionsEveryVerb(t *testing.T) {
	code, stdout, _ := run(t, nil, "syntax")
	for _, w := range []string{"listen", "connect", "accept", "write", "read", "shutdown", "close", "set linger", "sleep", "wait quiet", "wire hold", "wire drop", "config timewait", "expect HOST sent", "expect HOST final", "expect HOST buffer", "write N 0-1 TiB", "read N 1-16 MiB", "durations 0-24h"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("syntax lacks %q", w)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestNetFlag runs a scenario with --net on the memory wire: the conditions
// are in the trace before the first step, and the same seed gives the same
// trace (close's expectations may fail under loss: its story counts on
// every segment).
func TestNetFlag(t *testing.T) {
	args := []string{"run", "close", "--wire", "memory", "--net", "loss 30% delay 5ms", "--seed", "4", "--no-buffers"}
	code, a, stderr := run(t, nil, args...)
	if code != 0 && code != 1 { // the story of close may not survive the losses
		t.Fatalf("tcplab %s: exit %d\n%s%s", strings.Join(args, " "), code, a, stderr)
	}
	if !strings.Contains(a, "# net client->server: loss 30% delay 5ms") || !strings.Contains(a, "# net server->client: loss 30% delay 5ms") {
		t.Errorf("the --net conditions are not in the trace:\n%s", a)
	}
	if _, b, _ := run(t, nil, args...); a != b {
		t.Errorf("two runs with --seed 4 differ")
	}
}
