package chat

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/chat/chattest"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// syncBuffer is a bytes.Buffer safe for the chat's writer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestConversation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		typed []string
		want  []string
	}{
		{"shutdown", []string{"aaa", "shutdown"}, []string{`server: got "aaa"`, `client: received "Hi, aaa"`, "reason: shutdown(SHUT_WR)", "client: read: EOF"}},
		{"close", []string{"aaa", "close"}, []string{"close() = 0", "Flags [R.]", "data arrived in FIN-WAIT-2 after close()"}},
		{"bad command", []string{"shutdown sideways"}, []string{"shutdown takes wr, rd or rdwr"}},
		{"help", []string{"help"}, []string{"linger 0 | linger off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
			if err != nil {
				t.Fatal(err)
			}
			defer lab.Close()
			in, typing := io.Pipe()
			var out syncBuffer
			done := make(chan error, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The server answers after 300 ms: long after the commands are typed.
			go func() { done <- Run(ctx, lab, in, &out, Options{Delay: 300 * time.Millisecond}) }()
			for _, l := range tc.typed {
				io.WriteString(typing, l+"\n")
				time.Sleep(50 * time.Millisecond)
			}
			deadline := time.Now().Add(5 * time.Second)
			for _, w := range tc.want {
				for !strings.Contains(out.String(), w) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			io.WriteString(typing, "quit\n")
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
			typing.Close() // ends Run's input reader
		})
	}
}

// chatRun starts Run on a fresh in-memory lab and returns a way to type,
// the output, and a function that quits and waits for Run.
func chatRun(t *testing.T, opt Options) (lab *stack.Lab, typ func(string), out *syncBuffer, quit func()) {
	t.Helper()
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	in, typing := io.Pipe()
	out = &syncBuffer{}
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	go func() { done <- Run(ctx, lab, in, out, opt) }()
	typ = func(s string) { io.WriteString(typing, s) }
	quit = func() {
		t.Helper()
		typ("quit\n")
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		typing.Close()
		cancel()
		lab.Close()
	}
	return lab, typ, out, quit
}

// waitOut waits until out contains want.
func waitOut(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTerminalPromptStays: on a terminal, the prompt and what is typed so
// far stay on the last line while the trace scrolls above them, and the
// lines typed stay in the history after their prompt.
func TestTerminalPromptStays(t *testing.T) {
	_, typ, out, quit := chatRun(t, Options{Delay: 200 * time.Millisecond, Terminal: true})
	waitOut(t, out, "Type help")
	typ("aab\x7fa\r") // Backspace edits the line
	typ("clo")        // typed, not yet sent, while the answer arrives
	waitOut(t, out, `client: received "Hi, aaa"`)
	time.Sleep(50 * time.Millisecond)
	scr := chattest.Screen(out.String())
	if last := scr[len(scr)-1]; last != "client> clo" {
		t.Errorf("last line %q, want the prompt with what is typed: %q\n%s", last, "client> clo", strings.Join(scr, "\n"))
	}
	if !contains(scr, "client> aaa") {
		t.Errorf("the line typed is not in the history:\n%s", strings.Join(scr, "\n"))
	}
	for _, l := range scr[:len(scr)-1] {
		if strings.Contains(l, "client> ") && l != "client> aaa" {
			t.Errorf("a prompt was left behind in the trace: %q", l)
		}
	}
	typ("se\r")
	waitOut(t, out, "close() = 0")
	quit()
	scr = chattest.Screen(out.String())
	if !contains(scr, "client> close") || !contains(scr, "client> quit") {
		t.Errorf("history lacks the commands typed:\n%s", strings.Join(scr, "\n"))
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// TestCloseRecordsOnlyTheApplication: after close the client program reads
// no more (its socket is gone), so the trace holds no client read after
// close() and the chat prints no "client: read: EOF", which read like a FIN
// from the server. Repeated, because the chat's lines used to come out
// twice now and then.
func TestCloseRecordsOnlyTheApplication(t *testing.T) {
	for i := range 5 {
		lab, typ, out, quit := chatRun(t, Options{Delay: 200 * time.Millisecond})
		waitOut(t, out, "Type help")
		typ("aaa\n")
		waitOut(t, out, `server: got "aaa"`)
		typ("close\n")
		waitOut(t, out, "reason: data arrived in FIN-WAIT-2 after close()")
		waitOut(t, out, "server: read: EOF; closing")
		time.Sleep(100 * time.Millisecond)
		quit()
		closed := false
		for _, e := range lab.Trace.Events() {
			if e.Kind != trace.Call || e.Host != "client" {
				continue
			}
			if e.Call == "close" {
				closed = true
			} else if closed && e.Call == "read" {
				t.Errorf("run %d: the trace has a client read after close(): %s = %d %s", i, e.Call, e.Ret, e.Err)
			}
		}
		o := out.String()
		if strings.Contains(o, "client: read") {
			t.Errorf("run %d: the chat says the client read after close:\n%s", i, o)
		}
		// The chat's own lines come once each. (State lines are the
		// stack's: a stale state sample can still repeat one, see
		// stack.Conn.sample.)
		seen := map[string]bool{}
		for _, l := range strings.Split(o, "\n") {
			if strings.HasPrefix(l, "server: ") || strings.HasPrefix(l, "client: ") {
				if seen[l] {
					t.Errorf("run %d: %q printed twice:\n%s", i, l, o)
				}
				seen[l] = true
			}
		}
	}
}
