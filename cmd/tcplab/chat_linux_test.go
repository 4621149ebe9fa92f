package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tcplab/tcplab/demo/chat/chattest"
)

// screen collects what a program prints on its terminal.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the screen shows want, or fails after 10 s.
func (s *screen) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(s.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("screen never showed %q; it shows:\n%s", want, s.String())
}

// TestChatInATerminal drives `tcplab chat` in a pseudo-terminal as a person
// would: send a line, close, and read the story off the screen.
func TestChatInATerminal(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tcplab")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name  string
		wire  string
		typed []string
		want  []string
	}{
		{"shutdown", "memory", []string{"aaa", "shutdown"}, []string{
			`server: got "aaa", working for 300ms`,
			`Flags [F.]`, `reason: shutdown(SHUT_WR)`,
			`client: received "Hi, aaa"`,
			`state  FIN-WAIT-2 -> TIME-WAIT`,
		}},
		{"close", "memory", []string{"aaa", "close"}, []string{
			`close() = 0`,
			`Flags [R.]`, `reason: data arrived in FIN-WAIT-2 after close()`,
		}},
		{"close-over-tun", "tun", []string{"aaa", "close"}, []string{
			`# to watch the wire: nsenter`,
			`Flags [R.]`, `reason: data arrived in FIN-WAIT-2 after close()`,
		}},
		{"linger", "memory", []string{"linger 0", "close"}, []string{
			`SO_LINGER{on=true,0s}`, `Flags [R.]`, `reason: close() with SO_LINGER 0`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wire == "tun" {
				needTUN(t)
			}
			cmd := exec.Command(bin, "chat", "--wire", tc.wire, "--delay", "300ms")
			cmd.Env = append(os.Environ(), "NO_COLOR=1")
			tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 120})
			if err != nil {
				t.Fatal(err)
			}
			defer tty.Close()
			var scr screen
			go io.Copy(&scr, tty)
			scr.waitFor(t, "client> ")
			for _, line := range tc.typed {
				io.WriteString(tty, line+"\r")
				time.Sleep(100 * time.Millisecond)
			}
			for _, w := range tc.want {
				scr.waitFor(t, w)
			}
			// The prompt stays on the last line, under the trace, with
			// what is typed so far; the commands typed stay in the history.
			io.WriteString(tty, "hel")
			time.Sleep(300 * time.Millisecond)
			lines := chattest.Screen(scr.String())
			if last := lines[len(lines)-1]; last != "client> hel" {
				t.Errorf("last line %q, want %q; screen:\n%s", last, "client> hel", strings.Join(lines, "\n"))
			}
			for _, typed := range tc.typed {
				if !slices.Contains(lines, "client> "+typed) {
					t.Errorf("history lacks %q; screen:\n%s", "client> "+typed, strings.Join(lines, "\n"))
				}
			}
			if strings.HasPrefix(tc.name, "close") {
				// The client program closed its socket: it reads no more.
				for _, l := range lines {
					if strings.Contains(l, "client c1  read(") || strings.Contains(l, "client: read") {
						t.Errorf("a client read after close: %q", l)
					}
				}
			}
			io.WriteString(tty, "\x15quit\r")
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("chat exited with %v\n%s", err, scr.String())
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("chat did not quit; screen:\n%s", scr.String())
			}
		})
	}
}
