package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecUsageErrors: exec's command line and scenario are checked before
// a lab exists (no root needed), each with exit 2 and what to do.
func TestExecUsageErrors(t *testing.T) {
	dir := t.TempDir()
	both := filepath.Join(dir, "both.lab")
	os.WriteFile(both, []byte("server listen 9527\nclient connect server:9527\n"), 0o644)
	noConnect := filepath.Join(dir, "server.lab")
	os.WriteFile(noConnect, []byte("client sleep 1s\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"exec", "echo", "python3"}, 2, "exec needs the program after --"},
		{[]string{"exec", "echo", "--"}, 2, "exec needs the program after --"},
		{[]string{"exec", "echo", "sink", "--", "true"}, 2, "at most one scenario before --, got 2"},
		{[]string{"exec", "--side", "relay", "--", "true"}, 2, `--side "relay": want client, server or middle`},
		{[]string{"exec", "--wire", "memory", "--", "true"}, 2, "exec needs --wire tun"},
		{[]string{"exec", "--kernel", "client", "--", "true"}, 2, "--kernel does not apply"},
		{[]string{"exec", both, "--", "true"}, 2, both + `:2:1: "client connect server:9527": your program plays the client`},
		{[]string{"exec", "--side", "server", "--", "true"}, 2, "--side server needs a scenario"},
		{[]string{"exec", "--side", "server", "echo", "--", "true"}, 2, "the built-in peer echo is a server: use it with --side client"},
		{[]string{"exec", "--side", "server", "http:noread", "--", "true"}, 2, "the built-in peer http:noread is a server"},
		{[]string{"exec", "http:fast", "--", "true"}, 2, `built-in peer http:fast: unknown option "fast"`},
		{[]string{"exec", "http:idle=-1s", "--", "true"}, 2, "idle=-1s: want a duration above 0"},
		{[]string{"exec", "--side", "server", noConnect, "--", "true"}, 2, "never connects the client"},
		{[]string{"exec", "clsoe", "--", "true"}, 2, `no built-in scenario "clsoe"`},
		{[]string{"exec", "--", "/nonexistent/prog"}, 1, "exec is not available in this build"},
	} {
		code, _, stderr := run(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("tcplab %s = exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

// TestExecMissingProgram: a program that does not exist exits 127 with a
// clear message, before any lab is built.
func TestExecMissingProgram(t *testing.T) {
	var code int
	var stderr string
	code, _, stderr = runProgramEnv(t, "exec", "--", "tcplab-no-such-program")
	if code != ExitNoProgram || !strings.Contains(stderr, `cannot run "tcplab-no-such-program": executable file not found in $PATH`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// runProgramEnv runs the command line with an exec environment whose
// functions must not be reached.
func runProgramEnv(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var o, e strings.Builder
	code := Main(t.Context(), args, Env{Stdout: &o, Stderr: &e, Program: &ProgramEnv{}})
	return code, o.String(), e.String()
}

// TestExecMiddleUsageErrors: --side middle needs a scenario with both a
// listening server and a connecting client, no --kernel, and a renderer of
// three hosts; each mistake is named, exit 2, before a lab exists.
func TestExecMiddleUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.lab", "server listen 9000\nclient connect server:7000\n")
	onlyServer := write("server.lab", "server listen 9000\nserver accept\n")
	onlyClient := write("client.lab", "client connect server:7000\n")
	neither := write("neither.lab", "client sleep 1s\n")
	relayExp := write("relay.lab", "server listen 9000\nexpect client sent F. before relay received F.\n")
	reversed := write("reversed.lab", "client listen 9000\nserver connect client:9000\nserver listen 1\nclient connect server:7000\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "--side", "middle", "--kernel", "server", good, "--", "true"}, "--side middle puts your program between two gVisor hosts as the relay; --kernel does not apply"},
		{[]string{"exec", "--side", "middle", "--", "true"}, "--side middle needs a scenario with a client and a server"},
		{[]string{"exec", "--side", "middle", "echo", "--", "true"}, "the built-in peer echo is a server: use it with --side client (--side middle needs a scenario with both hosts)"},
		{[]string{"exec", "--side", "middle", onlyServer, "--", "true"}, "never connects the client: --side middle needs a client (client connect server:PORT)"},
		{[]string{"exec", "--side", "middle", onlyClient, "--", "true"}, "never listens on the server: --side middle needs a server (server listen PORT)"},
		{[]string{"exec", "--side", "middle", neither, "--", "true"}, "has neither a client nor a server: --side middle needs both"},
		{[]string{"exec", "--side", "middle", reversed, "--", "true"}, `reversed.lab:1:1: "client listen 9000": with --side middle the client connects (through the relay) and the server listens`},
		{[]string{"exec", "--side", "middle", "--format", "ladder", good, "--", "true"}, "three hosts (client, relay, server); the ladder and --svg draw two"},
		{[]string{"exec", "--side", "middle", "--svg", filepath.Join(dir, "x.svg"), good, "--", "true"}, "the ladder and --svg draw two"},
		{[]string{"exec", "--side", "middle", "--wire", "memory", good, "--", "true"}, "exec needs --wire tun"},
		{[]string{"run", "--wire", "memory", relayExp}, relayExp + `:2:30: "expect client sent F. before relay received F.": there is a relay only with tcplab exec --side middle`},
	} {
		code, _, stderr := run(t, nil, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("tcplab %s = exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}
