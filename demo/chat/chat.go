// Package chat provides the article's interactive client and server on a
// lab: the server answers every line with "Hi, <line>" after a delay, and
// the person at the client prompt types lines to send, or the socket calls
// whose effect they want to see (shutdown, close, linger 0). The trace of
// both endpoints streams under the prompt as it happens.
package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// Options configure a chat. Zero values are defaults.
type Options struct {
	// Delay is how long the server "works" before answering; 0 means 5 s
	// (the article's), a negative value means no delay.
	Delay time.Duration
	// Port is the server's port; 0 means 9527.
	Port uint16
	// Quiet hides the trace (only the conversation is shown).
	Quiet bool
}

// Help is the list of commands at the prompt.
const Help = `type a line to send it; commands:
  shutdown [wr|rd|rdwr]   shutdown(2) on the client socket (default wr)
  close                   close(2) the client socket
  linger 0 | linger off   set SO_LINGER (0: close() sends RST)
  help                    this text
  quit                    leave (also Ctrl-D)`

// Run plays the article's programs on lab until the user quits or ctx
// ends. Commands come from in, one per line; everything goes to out.
func Run(ctx context.Context, lab *stack.Lab, in io.Reader, out io.Writer, opt Options) error {
	if opt.Delay == 0 {
		opt.Delay = 5 * time.Second
	}
	if opt.Port == 0 {
		opt.Port = 9527
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// One goroutine owns out: trace lines and messages keep their order.
	lines := make(chan string, 4096)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for l := range lines {
			io.WriteString(out, l)
		}
	}()
	var closeOnce sync.Once
	stop := func() {
		cancel()
		wg.Wait()
		closeOnce.Do(func() { close(lines) })
		<-printed
	}
	defer stop()
	var mu sync.Mutex // guards sends against close(lines)
	closed := false
	emit := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if !closed {
			lines <- s
		}
	}
	defer func() { mu.Lock(); closed = true; mu.Unlock() }()
	say := func(format string, args ...any) { emit(fmt.Sprintf(format+"\n", args...)) }
	if !opt.Quiet {
		t := render.NewText(io.Discard, render.TextOptions{NoBuffers: true})
		lab.Trace.Subscribe(func(e trace.Event) {
			if text := t.Line(e); text != "" {
				// Every line of the event (a reason goes on its own line)
				// gets the trace's margin.
				var b strings.Builder
				for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
					b.WriteString("  | " + strings.TrimLeft(l, " ") + "\n")
				}
				emit(b.String())
			}
		})
	}

	l, err := lab.Server.Listen(opt.Port, 0)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); serve(ctx, &wg, l, opt.Delay, say) }()

	c, err := lab.Client.Dial(ctx, lab.ServerAddr(opt.Port))
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); receive(ctx, c, say) }()

	say("connected %v -> %v; the server answers after %v. %s", c.LocalAddr(), c.RemoteAddr(), opt.Delay, "Type help for commands.")
	sc := bufio.NewScanner(in)
	for {
		say("client> ")
		if !sc.Scan() {
			return sc.Err()
		}
		if quit := command(ctx, c, strings.TrimSpace(sc.Text()), say); quit {
			return nil
		}
	}
}

// command runs one line typed at the prompt and reports whether to quit.
func command(ctx context.Context, c *stack.Conn, line string, say func(string, ...any)) bool {
	f := strings.Fields(line)
	if len(f) == 0 {
		return false
	}
	var err error
	switch {
	case line == "quit" || line == "exit":
		return true
	case line == "help":
		say("%s", Help)
		return false
	case f[0] == "shutdown" && len(f) <= 2:
		how := map[string]stack.How{"": stack.ShutWR, "wr": stack.ShutWR, "rd": stack.ShutRD, "rdwr": stack.ShutRDWR}
		arg := ""
		if len(f) == 2 {
			arg = f[1]
		}
		h, ok := how[arg]
		if !ok {
			say("shutdown takes wr, rd or rdwr")
			return false
		}
		err = c.Shutdown(h)
	case line == "close":
		err = c.Close()
	case line == "linger 0":
		err = c.SetLinger(true, 0)
	case line == "linger off":
		err = c.SetLinger(false, 0)
	default:
		_, err = c.Write(ctx, []byte(line))
	}
	if err != nil {
		say("client: %v", stack.ErrName(err))
	}
	return false
}

// serve is the article's server: for each connection, read a message,
// work for delay, answer "Hi, <message>"; on end of stream close.
func serve(ctx context.Context, wg *sync.WaitGroup, l *stack.Listener, delay time.Duration, say func(string, ...any)) {
	for {
		c, err := l.Accept(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(ctx, buf)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						say("server: read: %s; closing", stack.ErrName(err))
						c.Close()
					}
					return
				}
				msg := string(buf[:n])
				say("server: got %q, working for %v", msg, delay)
				if delay > 0 {
					select {
					case <-time.After(delay):
					case <-ctx.Done():
						return
					}
				}
				if _, err := c.Write(ctx, []byte("Hi, "+msg)); err != nil {
					say("server: write: %s", stack.ErrName(err))
				}
			}
		}()
	}
}

// receive prints what the server sends the client.
func receive(ctx context.Context, c *stack.Conn, say func(string, ...any)) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(ctx, buf)
		if n > 0 {
			say("client: received %q", buf[:n])
		}
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				say("client: read: %s", stack.ErrName(err))
			}
			return
		}
	}
}
