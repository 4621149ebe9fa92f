package chat

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
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
		})
	}
}
