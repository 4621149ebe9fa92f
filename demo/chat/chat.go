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
	// Terminal says that in and out are one terminal that the caller has
	// put in cbreak mode (no echo, no line buffering; see Cbreak). Run
	// then edits the input line itself and keeps the prompt, with what is
	// typed so far, on the last line under the scrolling trace, as a chat
	// program does: each line printed clears the prompt line, prints, and
	// redraws the prompt.
	Terminal bool
}

// Help is the list of commands at the prompt.
const Help = `type a line to send it; commands:
  shutdown [wr|rd|rdwr]   shutdown(2) on the client socket (default wr)
  close                   close(2) the client socket
  linger 0 | linger off   set SO_LINGER (0: close() sends RST)
  help                    this text
  quit                    leave (also Ctrl-D)`

// prompt is what the client's input line starts with.
const prompt = "client> "

// Run plays the article's programs on lab until the user quits, in ends,
// or ctx ends. Commands come from in, one per line; everything goes to
// out. Run starts one goroutine that reads in and returns without waiting
// for it when it is blocked in a read: it ends when in does (EOF, an
// error, or the caller closing it).
func Run(ctx context.Context, lab *stack.Lab, in io.Reader, out io.Writer, opt Options) error {
	if opt.Delay == 0 {
		opt.Delay = 5 * time.Second
	}
	if opt.Port == 0 {
		opt.Port = 9527
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	scr := newScreen(out, opt.Terminal)
	typed := make(chan string)
	go readInput(ctx, in, typed, scr, opt.Terminal)
	stop := func() {
		// The conversation is over: what quitting interrupts (the
		// server's accept, its read) is not shown.
		scr.close()
		cancel()
		wg.Wait()
	}
	defer stop()
	say := func(format string, args ...any) { scr.line(fmt.Sprintf(format+"\n", args...)) }
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
				scr.line(b.String())
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
	r := &receiver{c: c}
	wg.Add(1)
	go func() { defer wg.Done(); r.run(ctx, say) }()

	say("connected %v -> %v; the server answers after %v. %s", c.LocalAddr(), c.RemoteAddr(), opt.Delay, "Type help for commands.")
	for {
		scr.showPrompt()
		var line string
		var ok bool
		select {
		case line, ok = <-typed:
		case <-ctx.Done():
			return nil
		}
		if !ok {
			return nil
		}
		if quit := command(ctx, c, r, strings.TrimSpace(line), say); quit {
			return nil
		}
	}
}

// readInput sends the lines typed on in to typed until in ends, then
// closes typed. On a terminal (cbreak mode) the screen edits the line and
// echoes it; otherwise in is read a line at a time.
func readInput(ctx context.Context, in io.Reader, typed chan<- string, scr *screen, terminal bool) {
	defer close(typed)
	send := func(l string) bool {
		select {
		case typed <- l:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !terminal {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if !send(sc.Text()) {
				return
			}
		}
		return
	}
	buf := make([]byte, 256)
	for {
		n, err := in.Read(buf)
		for _, l := range scr.keys(buf[:n]) {
			if !send(l) {
				return
			}
		}
		if err != nil || scr.eof() {
			return
		}
	}
}

// receiver is the client's reading side: it reads what the server sends
// and prints it. Like a program that polls its socket before it reads, it
// calls read only when there is something to read (data, end of stream,
// an error), so the trace records only reads that returned what arrived;
// once the person closes the socket, it stops reading (the socket is gone).
type receiver struct {
	c       *stack.Conn
	mu      sync.Mutex // held across a read; close waits for it
	stopped bool
}

// stop ends the reading before the socket is closed.
func (r *receiver) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

// ready tells whether a read would return at once: bytes have arrived
// that were not read, or the peer's FIN or RST has (the connection is
// past ESTABLISHED on the receiving side).
func (r *receiver) ready() bool {
	if l := r.c.Ledger(); l.RcvQueued > 0 || l.Received > l.Read {
		return true
	}
	switch r.c.State() {
	case "CLOSE-WAIT", "LAST-ACK", "CLOSING", "TIME-WAIT", "CLOSED":
		return true
	}
	return false
}

// run polls every 5 ms and reads when ready, until the end of the stream,
// an error, stop or ctx.
func (r *receiver) run(ctx context.Context, say func(string, ...any)) {
	buf := make([]byte, 4096)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return
		}
		if !r.ready() {
			r.mu.Unlock()
			continue
		}
		n, err := r.c.Read(ctx, buf)
		r.mu.Unlock()
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

// command runs one line typed at the prompt and reports whether to quit.
func command(ctx context.Context, c *stack.Conn, r *receiver, line string, say func(string, ...any)) bool {
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
		r.stop() // the program reads no more from a socket it closed
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
