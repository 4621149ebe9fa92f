package chat

import (
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// screen owns the output of a chat: one goroutine writes everything, in
// order, so that a trace line (emitted while the trace's lock is held) never
// waits for the terminal. On a terminal it also owns the input line: the
// prompt and what is typed so far stay on the last line, redrawn under every
// line printed.
type screen struct {
	out      io.Writer
	terminal bool
	ops      chan func(*screenState)
	done     chan struct{}

	mu     sync.Mutex // guards closed and sends on ops
	closed bool

	// Input editing, on the reading goroutine (keys).
	input []byte // what is typed so far, UTF-8
	esc   int    // 0, or inside an escape sequence: 1 after ESC, 2 after ESC [
	ended bool   // Ctrl-D on an empty line
}

// screenState is what the writing goroutine alone touches.
type screenState struct {
	prompt bool   // the prompt line is shown
	input  string // as shown after the prompt
}

func newScreen(out io.Writer, terminal bool) *screen {
	s := &screen{out: out, terminal: terminal, ops: make(chan func(*screenState), 4096), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var st screenState
		for op := range s.ops {
			op(&st)
		}
		if s.terminal && st.prompt {
			io.WriteString(s.out, "\r\x1b[K") // the conversation is over: no prompt
		}
	}()
	return s
}

// do queues op for the writing goroutine; after close it does nothing.
func (s *screen) do(op func(*screenState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.ops <- op
	}
}

// close stops the screen once everything queued is written.
func (s *screen) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.ops)
	}
	s.mu.Unlock()
	<-s.done
}

// redraw is the prompt line as it should look now.
func (st *screenState) redraw() string {
	if !st.prompt {
		return ""
	}
	return prompt + st.input
}

// line prints text (whole lines, each ending in "\n"). On a terminal the
// prompt line is cleared first and redrawn after.
func (s *screen) line(text string) {
	s.do(func(st *screenState) {
		if !s.terminal {
			io.WriteString(s.out, text)
			return
		}
		io.WriteString(s.out, "\r\x1b[K"+strings.ReplaceAll(text, "\n", "\r\n")+st.redraw())
	})
}

// showPrompt shows the prompt: on a terminal it stays from now on; on
// anything else it is printed once, before each line is read.
func (s *screen) showPrompt() {
	s.do(func(st *screenState) {
		if !s.terminal {
			io.WriteString(s.out, prompt)
			return
		}
		if !st.prompt {
			st.prompt = true
			io.WriteString(s.out, "\r\x1b[K"+st.redraw())
		}
	})
}

// setInput shows in as the line being typed.
func (s *screen) setInput(in string) {
	s.do(func(st *screenState) {
		st.input = in
		if st.prompt {
			io.WriteString(s.out, "\r\x1b[K"+st.redraw())
		}
	})
}

// keys takes bytes typed on the terminal, edits the input line and
// returns the lines completed by Enter. It understands Backspace, Ctrl-U
// (erase the line), Ctrl-D on an empty line (end of input), and ignores
// other control characters and escape sequences (arrow keys). Each
// completed line stays on the screen after the prompt it was typed at.
func (s *screen) keys(b []byte) []string {
	var lines []string
	changed := false
	for _, c := range b {
		switch {
		case s.esc == 1:
			s.esc = 0
			if c == '[' || c == 'O' {
				s.esc = 2
			}
			continue
		case s.esc == 2:
			if c >= 0x40 && c <= 0x7e {
				s.esc = 0
			}
			continue
		}
		switch c {
		case '\r', '\n':
			l := string(s.input)
			s.input = s.input[:0]
			lines = append(lines, l)
			s.do(func(st *screenState) {
				st.input = ""
				io.WriteString(s.out, "\r\x1b[K"+prompt+l+"\r\n"+st.redraw())
			})
			changed = false
		case 0x7f, 0x08:
			if len(s.input) > 0 {
				_, n := utf8.DecodeLastRune(s.input)
				s.input = s.input[:len(s.input)-n]
				changed = true
			}
		case 0x15:
			s.input = s.input[:0]
			changed = true
		case 0x04:
			if len(s.input) == 0 {
				s.ended = true
				return lines
			}
		case 0x1b:
			s.esc = 1
		default:
			if c >= 0x20 {
				s.input = append(s.input, c)
				changed = true
			}
		}
	}
	if changed {
		s.setInput(string(s.input))
	}
	return lines
}

// eof tells whether Ctrl-D ended the input.
func (s *screen) eof() bool { return s.ended }
