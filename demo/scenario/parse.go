package scenario

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// Error is a parse error at a place in a scenario file.
type Error struct {
	Pos Pos
	Msg string
}

// Error returns "file:line:col: message".
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Verbs a host can perform, states an expectation can name, and the other
// fixed words of the language. Unknown words are matched against these to
// suggest the nearest one.
var (
	hostVerbs = []string{"listen", "connect", "accept", "write", "read", "shutdown", "close", "set", "sleep", "socket", "bind"}
	topVerbs  = []string{"client", "server", "sleep", "wait", "note", "expect", "config", "wire", "net", "inject", "needs"}
	netParams = []string{"loss", "delay", "jitter", "reorder", "duplicate", "corrupt", "rate", "clear"}
	hosts     = []string{"client", "server"}
	states    = []string{"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}
	errnos    = []string{"ECONNRESET", "EPIPE", "ECONNREFUSED", "ECONNABORTED", "ENOTCONN", "ETIMEDOUT", "EADDRINUSE", "EINVAL", "EAGAIN", "EINPROGRESS", "EALREADY", "EISCONN", "EBADF"}
	setOpts   = []string{"linger", "nodelay", "sndbuf", "rcvbuf", "keepalive", "nonblock"}
	configs   = []string{"timewait", "finwait2", "kernel", "gvisor"}
)

// Parse reads a scenario. name is used in positions (usually the file
// name); the script's Name is name without directory and ".lab".
func Parse(name string, r io.Reader) (*Script, error) {
	s := &Script{Name: strings.TrimSuffix(filepath.Base(name), ".lab")}
	lr := &io.LimitedReader{R: r, N: MaxScript + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 64*1024), MaxLine)
	names := map[string]Pos{}
	var doc []string
	inDoc := true
	ln := 1
	for ; sc.Scan(); ln++ {
		if lr.N <= 0 {
			return nil, &Error{Pos{name, ln, 1}, fmt.Sprintf("scenario longer than %d bytes (4 MiB, the limit)", MaxScript)}
		}
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if inDoc {
			if strings.HasPrefix(trimmed, "#") {
				doc = append(doc, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
				continue
			}
			if trimmed != "" || len(doc) > 0 {
				inDoc = trimmed == ""
			}
		}
		toks, err := lexLine(line)
		if err != nil {
			le := err.(*lexError)
			return nil, &Error{Pos{name, ln, le.col}, le.msg}
		}
		toks, amp := cutBackground(toks)
		if col := strayAmp(toks); col > 0 {
			return nil, &Error{Pos{name, ln, col}, `"&" must end the line: HOST CALL ... [expect ...] &`}
		}
		if len(toks) == 0 && amp == 0 {
			continue
		}
		p := &lineParser{name: name, ln: ln, toks: toks, text: trimmed, names: names}
		if i := strings.Index(p.text, " #"); i >= 0 && !strings.Contains(p.text[:i], "\"") {
			p.text = strings.TrimSpace(p.text[:i])
		}
		step, err := p.statement(s)
		if err == nil && amp > 0 {
			err = p.background(step, amp)
		}
		if err != nil {
			return nil, err
		}
		if step != nil {
			if len(s.Steps) == MaxSteps {
				return nil, &Error{step.Position(), fmt.Sprintf("more than %d steps (the limit)", MaxSteps)}
			}
			s.Steps = append(s.Steps, step)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &Error{Pos{name, ln, 1}, fmt.Sprintf("line longer than %d bytes (1 MiB, the limit)", MaxLine)}
		}
		return nil, fmt.Errorf("scenario: read %s: %w", name, err)
	}
	s.Doc = strings.TrimSpace(strings.Join(doc, "\n"))
	if err := s.checkKnobs(); err != nil {
		return nil, err
	}
	if len(s.Steps) == 0 {
		return nil, &Error{Pos{name, 1, 1}, "no steps: a scenario needs at least one call, wait or expectation (see tcplab syntax)"}
	}
	return s, nil
}

// lineParser parses one line's tokens.
type lineParser struct {
	name string
	ln   int
	toks []token
	i    int
	text string
	// names are the "as" names given so far, by "host name".
	names map[string]Pos
}

func (p *lineParser) pos() Pos {
	if p.i < len(p.toks) {
		return Pos{p.name, p.ln, p.toks[p.i].col}
	}
	if len(p.toks) == 0 {
		return Pos{p.name, p.ln, 1}
	}
	last := p.toks[len(p.toks)-1]
	return Pos{p.name, p.ln, last.col + len(last.text)}
}

func (p *lineParser) errorf(format string, args ...any) error {
	return &Error{p.pos(), fmt.Sprintf(format, args...)}
}

func (p *lineParser) more() bool { return p.i < len(p.toks) }

func (p *lineParser) peek() string {
	if p.i < len(p.toks) && !p.toks[p.i].quoted {
		return p.toks[p.i].text
	}
	return ""
}

// want consumes one word out of choices, or fails naming them (and the
// nearest one to what is there).
func (p *lineParser) want(what string, choices []string) (string, error) {
	if !p.more() {
		return "", p.errorf("expected %s (%s), found end of line", what, strings.Join(choices, ", "))
	}
	t := p.toks[p.i]
	for _, c := range choices {
		if !t.quoted && strings.EqualFold(t.text, c) {
			p.i++
			return c, nil
		}
	}
	msg := fmt.Sprintf("expected %s (%s), found %q", what, strings.Join(choices, ", "), t.text)
	if near := nearest(t.text, choices); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return "", &Error{p.pos(), msg}
}

func (p *lineParser) accept(word string) bool {
	if strings.EqualFold(p.peek(), word) {
		p.i++
		return true
	}
	return false
}

// number consumes a decimal number in [lo, hi], or fails naming the range.
func (p *lineParser) number(what string, lo, hi int64) (int64, error) {
	if !p.more() || p.toks[p.i].quoted {
		return 0, p.errorf("expected %s (a number %s)", what, span(lo, hi))
	}
	n, err := parseNumber(p.toks[p.i].text, what, lo, hi)
	if err != nil {
		return 0, p.errorf("%v", err)
	}
	p.i++
	return n, nil
}

// port consumes a port number, 1-65535.
func (p *lineParser) port(what string) (uint16, error) {
	n, err := p.number(what, 1, 65535)
	return uint16(n), err
}

// duration consumes a duration in [0, MaxDuration].
func (p *lineParser) duration(what string) (time.Duration, error) {
	if !p.more() || p.toks[p.i].quoted {
		return 0, p.errorf("expected %s (a duration such as 5s or 200ms, from 0 to %s)", what, fmtDuration(MaxDuration))
	}
	d, err := parseDuration(p.toks[p.i].text, what)
	if err != nil {
		return 0, p.errorf("%v", err)
	}
	p.i++
	return d, nil
}

func (p *lineParser) str(what string) (string, error) {
	if !p.more() || !p.toks[p.i].quoted {
		return "", p.errorf("expected %s (a \"quoted string\")", what)
	}
	p.i++
	return p.toks[p.i-1].text, nil
}

func (p *lineParser) ident(what string) (string, error) {
	if !p.more() || p.toks[p.i].quoted || p.toks[p.i].text == "" {
		return "", p.errorf("expected %s (a name such as c2)", what)
	}
	p.i++
	return p.toks[p.i-1].text, nil
}

func (p *lineParser) end() error {
	if p.more() {
		return p.errorf("unexpected %q at end of statement", p.toks[p.i].text)
	}
	return nil
}

func (p *lineParser) statement(s *Script) (Step, error) {
	start := p.pos()
	verb, err := p.want("a statement", topVerbs)
	if err != nil {
		return nil, err
	}
	switch verb {
	case "client", "server":
		return p.hostStatement(verb, start)
	case "sleep":
		return p.sleep("", start)
	case "wait":
		if !p.accept("quiet") {
			return p.waitName(start)
		}
		w := &WaitQuiet{D: 200 * time.Millisecond}
		w.set(start, p.text)
		if p.more() {
			if w.D, err = p.duration("how long the wire must be quiet"); err != nil {
				return nil, err
			}
		}
		return w, p.end()
	case "wire":
		w := &Wire{Count: 1}
		w.set(start, p.text)
		if w.Op, err = p.want("a fault", []string{"hold", "release", "drop"}); err != nil {
			return nil, err
		}
		if w.Op == "drop" {
			if w.Host, err = p.want("whose segments to drop", hosts); err != nil {
				return nil, err
			}
			if w.Flags, err = p.flags(); err != nil {
				return nil, err
			}
			if p.accept("count") {
				n, err := p.number("a count", 1, MaxCount)
				if err != nil {
					return nil, err
				}
				w.Count = int(n)
			}
		}
		return w, p.end()
	case "inject":
		in, err := p.inject(start)
		if err != nil {
			return nil, err
		}
		return in, p.end()
	case "net":
		n, err := p.net(start)
		if err != nil {
			return nil, err
		}
		return n, p.end()
	case "note":
		n := &Note{}
		n.set(start, p.text)
		if n.Text, err = p.str("the note's text"); err != nil {
			return nil, err
		}
		return n, p.end()
	case "config":
		what, err := p.want("a setting", configs)
		if err != nil {
			return nil, err
		}
		if what == "gvisor" || what == "kernel" && p.peek() != "client" && p.peek() != "server" {
			return nil, p.knob(s, what, start)
		}
		if what == "kernel" {
			if s.Kernel, err = p.want("the side the kernel plays", hosts); err != nil {
				return nil, err
			}
			return nil, p.end()
		}
		d, err := p.duration(what)
		if err != nil {
			return nil, err
		}
		switch what {
		case "timewait":
			s.TimeWait = d
		case "finwait2":
			s.FinWait2 = d
		}
		return nil, p.end()
	case "needs":
		return nil, p.needs(s, start)
	case "expect":
		e, err := p.expect(start)
		if err != nil {
			return nil, err
		}
		return e, p.end()
	}
	return nil, p.errorf("internal: verb %q", verb)
}

func (p *lineParser) sleep(host string, start Pos) (Step, error) {
	d, err := p.duration("how long to sleep")
	if err != nil {
		return nil, err
	}
	s := &Sleep{Host: host, D: d}
	s.set(start, p.text)
	return s, p.end()
}

func (p *lineParser) hostStatement(host string, start Pos) (Step, error) {
	op, err := p.want("a socket call", hostVerbs)
	if err != nil {
		return nil, err
	}
	if op == "sleep" {
		return p.sleep(host, start)
	}
	c := &Call{Host: host, Op: op}
	c.set(start, p.text)
	switch op {
	case "listen":
		if w := p.peek(); !p.more() || (w != "backlog" && w != "on" && w != "as" && w != "expect") {
			if c.Port, err = p.port("a port"); err != nil {
				return nil, err
			}
		}
		if p.accept("backlog") {
			n, err := p.number("a backlog", 0, MaxBacklog)
			if err != nil {
				return nil, err
			}
			c.Backlog = int(n)
		}
	case "connect":
		if !p.more() || p.toks[p.i].quoted {
			return nil, p.errorf("expected where to connect (server:PORT)")
		}
		target := p.toks[p.i].text
		h, port, ok := strings.Cut(target, ":")
		if !ok || (h != "server" && h != "client") || port == "" || strings.Trim(port, "0123456789") != "" {
			return nil, p.errorf("expected where to connect as HOST:PORT (e.g. server:9527), found %q", target)
		}
		n64, perr := parseNumber(port, "port", 1, 65535)
		if perr != nil {
			return nil, p.errorf("%v", perr)
		}
		n := int(n64)
		if h == host {
			return nil, p.errorf("%s cannot connect to itself; connect to %s:%d", host, peerOf(host), n)
		}
		p.i++
		c.Port = uint16(n)
		if p.accept("from") {
			if c.From, err = p.port("a local port"); err != nil {
				return nil, err
			}
		}
	case "write":
		if p.more() && p.toks[p.i].quoted {
			c.Data = []byte(p.toks[p.i].text)
			p.i++
		} else {
			if !p.more() {
				return nil, p.errorf(`expected what to write ("text" or a byte count %s)`, span(0, MaxWrite))
			}
			n, err := p.number("a write size", 0, MaxWrite)
			if err != nil {
				return nil, err
			}
			p.accept("bytes")
			c.Fill = n
		}
	case "read":
		if p.accept("all") {
			c.All = true
		} else if p.more() && p.peek() != "" && p.peek() != "on" && p.peek() != "expect" {
			n, err := p.number("a read size", 1, MaxRead)
			if err != nil {
				return nil, err
			}
			c.N = int(n)
		}
	case "shutdown":
		if c.How, err = p.want("a direction", []string{"rd", "wr", "rdwr"}); err != nil {
			return nil, err
		}
	case "close":
	case "accept":
	case "socket":
	case "bind":
		if err := p.bindAddr(c); err != nil {
			return nil, err
		}
	case "set":
		if c.Opt, err = p.want("a socket option", setOpts); err != nil {
			return nil, err
		}
		if !p.more() {
			return nil, p.errorf("expected a value for %s", c.Opt)
		}
		c.Val = p.toks[p.i].text
		switch c.Opt {
		case "linger":
			if c.Val != "off" {
				if _, err := p.number("linger off or seconds", 0, MaxLinger); err != nil {
					return nil, err
				}
				p.i--
			}
		case "nodelay", "keepalive", "nonblock":
			if c.Val != "on" && c.Val != "off" {
				return nil, p.errorf("expected %s on or off, found %q", c.Opt, c.Val)
			}
		default:
			if _, err := p.number(c.Opt+" in bytes", 1, MaxSockBuf); err != nil {
				return nil, err
			}
			p.i--
		}
		p.i++
	}
	for p.more() {
		switch {
		case p.accept("on"):
			at := p.pos()
			if c.On, err = p.ident("the socket to use"); err != nil {
				return nil, err
			}
			if err := p.declared(host, c.On, at); err != nil {
				return nil, err
			}
		case p.peek() == "as":
			if op != "listen" && op != "connect" && op != "accept" && op != "socket" {
				return nil, p.errorf("only socket, listen, connect and accept create a socket to name with \"as\"")
			}
			p.i++
			at := p.pos()
			if c.As, err = p.ident("a name for the new socket"); err != nil {
				return nil, err
			}
			key := host + " " + c.As
			if first, ok := p.names[key]; ok {
				return nil, &Error{at, fmt.Sprintf("%s already has a socket named %q (line %d); pick another name", host, c.As, first.Line)}
			}
			p.names[key] = at
		case p.peek() == "expect":
			epos := p.pos()
			p.i++
			if c.Expect, err = p.callExpect(epos); err != nil {
				return nil, err
			}
		default:
			return nil, p.errorf("unexpected %q (expected on NAME, as NAME or expect ...)", p.toks[p.i].text)
		}
	}
	if err := p.checkCall(c, start); err != nil {
		return nil, err
	}
	return c, nil
}

// callOutcome parses the outcome that follows "expect" after a call (see
// callExpect).
func (p *lineParser) callOutcome(pos Pos) (*CallExpect, error) {
	e := &CallExpect{Pos: pos, Bytes: -1}
	if p.more() && p.toks[p.i].quoted {
		s := p.toks[p.i].text
		e.Data = &s
		p.i++
		return e, nil
	}
	if p.accept("blocked") {
		e.Blocked = true
		return e, nil
	}
	w, err := p.want("an outcome", []string{"EOF", "ok", "error"})
	if err != nil {
		if p.more() && !p.toks[p.i].quoted && strings.IndexFunc(p.toks[p.i].text, isNumberRune) == 0 {
			n, nerr := p.number("a byte count", 0, MaxWrite)
			if nerr != nil {
				return nil, nerr
			}
			p.accept("bytes")
			e.Bytes = int(n)
			return e, nil
		}
		return nil, err
	}
	switch w {
	case "EOF":
		e.EOF = true
	case "ok":
		e.OK = true
	case "error":
		if e.Errno, err = p.want("an error name", errnos); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// expectHosts are the hosts an expectation may name: the relay of tcplab
// exec --side middle too, whose events are in the trace.
var expectHosts = []string{"client", "server", RelayHost}

// expect parses a stand-alone expectation (after "expect").
func (p *lineParser) expect(start Pos) (*Expect, error) {
	host, err := p.want("a host", expectHosts)
	if err != nil {
		return nil, err
	}
	e := &Expect{Host: host, Count: -1}
	e.set(start, p.text)
	if e.What, err = p.want("what to expect", []string{"sent", "received", "refused", "state", "final", "buffer"}); err != nil {
		return nil, err
	}
	switch e.What {
	case "sent", "received", "refused":
		if e.Flags, err = p.flags(); err != nil {
			return nil, err
		}
		for p.more() {
			switch {
			case p.accept("never"):
				e.Never = true
			case p.accept("count"):
				n, err := p.number("a count", 0, MaxCount)
				if err != nil {
					return nil, err
				}
				e.Count = int(n)
			case p.accept("reason"):
				p.accept("~")
				if e.Reason, err = p.str("part of the reason"); err != nil {
					return nil, err
				}
			case p.accept("before"):
				b, err := p.expect(p.pos())
				if err != nil {
					return nil, err
				}
				if b.What != "sent" && b.What != "received" && b.What != "refused" {
					return nil, p.errorf("\"before\" needs a segment: HOST sent|received|refused FLAGS")
				}
				e.Before = b
			case p.accept("on"):
				if e.On, err = p.ident("the socket"); err != nil {
					return nil, err
				}
			default:
				if ok, err := p.segmentCond(e); err != nil || !ok {
					if err == nil {
						err = p.errorf("unexpected %q (expected never, count N, reason ~ \"...\", seq|ack|win|len N, before ... or after ...)", p.toks[p.i].text)
					}
					return nil, err
				}
			}
		}
	case "state", "final":
		if e.State, err = p.want("a TCP state", states); err != nil {
			return nil, err
		}
		if e.What == "state" && p.accept("never") {
			e.Never = true
		}
	case "buffer":
		if e.Queue, err = p.want("a queue", []string{"snd", "rcv"}); err != nil {
			return nil, err
		}
		n, err := p.number("a byte count", 0, MaxWrite)
		if err != nil {
			return nil, err
		}
		e.Bytes = int(n)
	}
	if p.accept("on") {
		if e.On, err = p.ident("the socket"); err != nil {
			return nil, err
		}
	}
	if host == RelayHost && (e.What == "final" || e.What == "buffer" || e.On != "") {
		return nil, p.errorf("the relay's sockets are its program's, not the scenario's: expect relay sent|received FLAGS or expect relay state STATE, without on NAME")
	}
	return e, p.within(e)
}

// flags parses a tcpdump flag pattern such as S, S., P., F., R, R.
func (p *lineParser) flags() (string, error) {
	if !p.more() || p.toks[p.i].quoted {
		return "", p.errorf("expected TCP flags in tcpdump notation (S, S., ., P., F., R, R.)")
	}
	f := p.toks[p.i].text
	for i, r := range f {
		if !strings.ContainsRune("SFPRUEW.", r) {
			return "", p.errorf("bad TCP flags %q: use the letters S F P R U E W and . for ACK", f)
		}
		if strings.ContainsRune(f[:i], r) {
			return "", p.errorf("bad TCP flags %q: %c appears more than once", f, r)
		}
	}
	p.i++
	return f, nil
}

func peerOf(host string) string {
	if host == "client" {
		return "server"
	}
	return "client"
}

// fillAlphabet is the filler "write N" sends: byte i of the stream is
// fillAlphabet[i%len(fillAlphabet)].
const fillAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// Filler returns the n bytes of filler "write N" sends, starting at byte
// off of the stream. It allocates n bytes: the runner streams long writes
// through one chunk instead.
func Filler(off, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = fillAlphabet[(off+int64(i))%int64(len(fillAlphabet))]
	}
	return b
}

func isNumberRune(r rune) bool { return r == '-' || r == '+' || (r >= '0' && r <= '9') }

// nearest returns the choice closest to word by edit distance, if close
// enough to be a likely typo.
func nearest(word string, choices []string) string {
	best, bestD := "", 1<<30
	for _, c := range choices {
		if d := editDistance(strings.ToLower(word), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= 2 || (bestD <= len(word)/2 && bestD < len(best)) {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
