package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tcplab/tcplab/stack/trace"
)

// TextOptions tune the text timeline. The zero value prints sent segments,
// calls, states, buffer levels and notes, with relative sequence numbers.
type TextOptions struct {
	// Arrivals also prints each segment as its receiver saw it ("in").
	Arrivals bool
	// Absolute prints absolute sequence numbers, as tcpdump -S.
	Absolute bool
	// NoBuffers leaves out buffer-level lines.
	NoBuffers bool
	// NoTime leaves out timestamps (for golden files of real-time runs).
	NoTime bool
	// Explain adds a plain-language note under important events.
	Explain bool
	// Peers names the host at the other end of a segment by its IP
	// address ("198.18.1.1" -> "relay"), for labs of more than a client
	// and a server (tcplab exec --side middle). Addresses it lacks, and a
	// nil map, fall back to the other of client and server.
	Peers map[string]string
}

// Text writes events as a timeline, one line per event.
type Text struct {
	w    io.Writer
	opt  TextOptions
	isn  map[string]uint32 // by "src>dst": the sender's initial sequence number
	last map[string]string // by host/conn: last state, for explanations
}

// NewText returns a Text timeline writing to w.
func NewText(w io.Writer, opt TextOptions) *Text {
	return &Text{w: w, opt: opt, isn: map[string]uint32{}, last: map[string]string{}}
}

// WriteAll writes every event of a finished trace.
func (t *Text) WriteAll(events []trace.Event) error {
	for _, e := range events {
		if err := t.Write(e); err != nil {
			return err
		}
	}
	return nil
}

// Write writes one event. Events must come in trace order.
func (t *Text) Write(e trace.Event) error {
	line := t.Line(e)
	if line == "" {
		return nil
	}
	_, err := io.WriteString(t.w, line)
	return err
}

// Line returns the text for e, ending in a newline, or "" when the options
// leave it out. It updates the sequence-number bases as a side effect.
func (t *Text) Line(e trace.Event) string {
	var body string
	switch e.Kind {
	case trace.Segment:
		body = t.segment(e)
	case trace.Call:
		body = Call(e)
	case trace.State:
		body = fmt.Sprintf("state  %s -> %s", e.From, e.To)
		if e.Text != "" {
			body += "  (" + e.Text + ")"
		}
	case trace.Buffer:
		if t.opt.NoBuffers {
			return ""
		}
		body = fmt.Sprintf("buffer send queue %d B, receive queue %d B", e.SndQueued, e.RcvQueued)
	case trace.Note:
		body = "# " + Printable(e.Text)
	case trace.Summary:
		body = t.summary(e)
	}
	if body == "" {
		return ""
	}
	conn := e.Conn
	if conn == "" {
		conn = "-"
	}
	var b strings.Builder
	if !t.opt.NoTime {
		fmt.Fprintf(&b, "%10.6f ", e.T.Seconds())
	}
	fmt.Fprintf(&b, "%-6s %-3s %s\n", e.Host, conn, body)
	if e.Kind == trace.Segment && e.Reason != "" {
		pad := 11
		if t.opt.NoTime {
			pad = 0
		}
		fmt.Fprintf(&b, "%s%-6s %-3s   reason: %s\n", strings.Repeat(" ", pad), "", "", e.Reason)
	}
	if t.opt.Explain {
		if x := Explain(e); x != "" {
			pad := 11
			if t.opt.NoTime {
				pad = 0
			}
			fmt.Fprintf(&b, "%s%-6s %-3s   ~ %s\n", strings.Repeat(" ", pad), "", "", x)
		}
	}
	return b.String()
}

// peer names the other host.
func peer(host string) string {
	if host == "client" {
		return "server"
	}
	return "client"
}

// peer names the host at remote (address:port), the other end of a
// segment of host.
func (t *Text) peer(host, remote string) string {
	if t.opt.Peers != nil {
		ip := remote
		if i := strings.LastIndexByte(remote, ':'); i >= 0 {
			ip = remote[:i]
		}
		if n, ok := t.opt.Peers[ip]; ok {
			return n
		}
	}
	return peer(host)
}

func (t *Text) segment(e trace.Event) string {
	fwd := e.Src + ">" + e.Dst
	if strings.Contains(e.Flags, "S") && !e.Refused() {
		t.isn[fwd] = e.Seq
	}
	if e.Dir == "in" && !t.opt.Arrivals {
		return ""
	}
	seq, ack := e.Seq, e.Ack
	if !t.opt.Absolute {
		seq -= t.isn[fwd]
		ack -= t.isn[e.Dst+">"+e.Src]
	}
	var b strings.Builder
	if e.Dir == "out" {
		fmt.Fprintf(&b, "%s > %s ", e.Host, t.peer(e.Host, e.Dst))
	} else {
		fmt.Fprintf(&b, "%s < %s ", e.Host, t.peer(e.Host, e.Src))
	}
	fmt.Fprintf(&b, "Flags [%s], seq %d", e.Flags, seq)
	if e.Len > 0 {
		fmt.Fprintf(&b, ":%d", seq+uint32(e.Len))
	}
	if strings.Contains(e.Flags, ".") {
		fmt.Fprintf(&b, ", ack %d", ack)
	}
	fmt.Fprintf(&b, ", win %d, length %d", e.Win, e.Len)
	if e.Len > 0 && len(e.Payload) > 0 {
		b.WriteString(" " + Quote(e.Payload, 24))
	}
	if e.Refused() {
		// Accepted arrivals print as they always did.
		fmt.Fprintf(&b, "  refused: %s (%s", e.Why, e.VerdictSource())
		if e.Evidence != "" {
			b.WriteString(": " + e.Evidence)
		}
		b.WriteString(")")
	}
	return b.String()
}

// summary writes a summary event: what it counts, between when; a
// summary of arrivals only with Arrivals, like the arrivals themselves.
func (t *Text) summary(e trace.Event) string {
	s := e.Sum
	if s == nil {
		return "# " + Printable(e.Text)
	}
	since := fmt.Sprintf("since %.6f", s.Since.Seconds())
	switch s.Of {
	case "segments":
		if e.Dir == "in" && !t.opt.Arrivals {
			return ""
		}
		arrow := ">"
		if e.Dir == "in" {
			arrow = "<"
		}
		seq, end, ack := s.Seq, s.SeqEnd, s.Ack
		if !t.opt.Absolute {
			fwd := e.Src + ">" + e.Dst
			seq -= t.isn[fwd]
			end -= t.isn[fwd]
			ack -= t.isn[e.Dst+">"+e.Src]
		}
		return fmt.Sprintf("%s %s %s %d segments [%s], seq %d:%d, ack %d, win %d..%d, %d bytes, %s (summary of observed segments)",
			e.Host, arrow, peer(e.Host), s.Count, s.FlagCounts(), seq, end, ack, s.WinMin, s.WinMax, s.Bytes, since)
	case "calls":
		return fmt.Sprintf("%d x %s() = %d bytes in all, %s (summary of observed calls)", s.Count, e.Call, s.Bytes, since)
	case "buffer":
		if t.opt.NoBuffers {
			return ""
		}
		return fmt.Sprintf("buffer %d levels, send queue up to %d B, receive queue up to %d B, %s (summary)", s.Count, s.SndMax, s.RcvMax, since)
	}
	return "# " + Printable(e.Text)
}

// Call formats a call event as the C call it stands for, with its result:
// `write(3) = 3 "aaa"`, `read(64) = 0 EOF`, `shutdown(SHUT_WR) = 0`,
// `accept() = c1 from 198.18.1.2:40242`.
func Call(e trace.Event) string {
	name, arg := e.Call, e.Arg
	if name == "accept" && e.Err == "" && e.Data != "" {
		// accept(2) returns a new socket: name it and its peer.
		return fmt.Sprintf("accept() = %s from %s", e.Conn, e.Data)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s(%s) = %d", name, arg, e.Ret)
	if e.Err != "" {
		switch e.Err {
		case "EOF":
			b.WriteString(" EOF")
		case "context deadline exceeded":
			// The caller gave up (the scenario's step timeout): no errno.
			b.WriteString(" (still blocked when the step timeout ended the call)")
		case "context canceled":
			// A background call the scenario left blocked: tcplab
			// abandoned it when the script ended.
			b.WriteString(" (still blocked: abandoned at the end of the scenario)")
		default:
			b.WriteString(" " + e.Err)
		}
	}
	if e.Data != "" {
		b.WriteString(" " + Quote([]byte(e.Data), 40))
	}
	return b.String()
}

// Printable returns s with every control character (escape codes, carriage
// returns, newlines) and every invalid UTF-8 byte written as a Go escape
// (\x1b, \n, \u0085, \xff), so that text from a scenario cannot move the
// cursor or recolour a terminal. Other text, quotes included, is unchanged.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (unicode.IsControl(r) && r != '\t') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsControl(r) && r != '\t':
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Quote returns b as a Go-quoted string of at most max bytes, with "..."
// when cut.
func Quote(b []byte, max int) string {
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
