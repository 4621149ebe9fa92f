// Package replay turns one connection of a capture into a tcplab scenario
// (a .lab file) that does what the capture shows its applications did: who
// connected, who wrote how many bytes when, who read, who half-closed,
// closed or aborted. The scenario can then run in the lab, with gVisor or
// the Linux kernel on either side, to see whether the teardown (which side
// sent FIN and RST, in which order) comes out the same.
//
// # What it infers
//
// The wire shows what a stack did, never the call behind it; the calls are
// inferred, and every step of the scenario carries, as a comment, the
// packets it rests on:
//
//   - connect and accept from the handshake (a SYN answered by RST: a
//     connect to a port nobody listens on);
//   - writes from the new data each side sent, segments coalesced into one
//     write while they come back to back (a full-sized segment, or one
//     without PSH, is followed by more of the same write);
//   - reads from the receiver's advertised window growing again (a window
//     update: the application took bytes out of the receive buffer); a
//     zero window says the application stopped reading; before a close()
//     that sent FIN the side must have read everything (close() with
//     unread data sends RST); a side that had read everything reads on to
//     EOF once the peer's FIN is out (one read returns only what has
//     arrived, and a stack with other buffer sizes holds more back); a
//     read ends the writes on both sides, so that a write that waited for
//     it comes after it;
//   - shutdown(SHUT_WR) or close() from each FIN's cause as package explain
//     reads it; close() with unread data, SO_LINGER 0, or a stand-in
//     SO_LINGER 0 for an abort whose real cause a scenario cannot make
//     (a keepalive or idle timeout, a middlebox) from each RST's cause; a
//     RST that is a stack's answer (data after close(), a segment for no
//     connection) needs no call;
//   - sleeps where the capture was quiet for 200 ms or more (timers such as
//     the peer's FIN-WAIT-2 timeout depend on them).
//
// # Cost
//
// Build is linear in the connection's packets; it needs them kept
// (explain.Analyze with keep).
package replay

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tcplab/tcplab/demo/explain"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack/trace"
)

// Options tune Build. The zero value is the defaults.
type Options struct {
	// Name is the scenario's name (its first comment line); "" means
	// "replay-connN".
	Name string
	// Source names the capture in the scenario's comments.
	Source string
	// MinSleep is the shortest quiet gap of the capture that becomes a
	// sleep step; 0 means 200 ms.
	MinSleep time.Duration
}

// Replay is a connection turned into a scenario.
type Replay struct {
	// Conn is the connection's number in the capture.
	Conn int
	// Pattern is the capture's teardown: who sent FIN and RST, in order
	// (see Pattern).
	Pattern []string
	// Lab is the scenario's text, ready to be written to a .lab file.
	Lab string
	// Notes are what the scenario does not reproduce, one sentence each.
	Notes []string
}

// step is one line of the scenario.
type step struct {
	t    time.Duration
	host string
	line string
	why  string // the comment after it
	seq  int    // order among steps at the same time
}

// builder holds the inference's state per side (0 client, 1 server).
type builder struct {
	steps   []step
	notes   []string
	arrived [2]int64 // the peer's new bytes that reached the side
	read    [2]int64 // of which the application read
	win     [2]uint32
	winSet  [2]bool
	maxWin  [2]uint32
	slack   [2]uint32 // one unit of the side's window scale
	zeroWin [2]bool
	eof     [2]bool   // it read to EOF
	next    [2]uint32 // the sequence number after the side's data so far
	finDone [2]bool
	shut    [2]bool
	closed  [2]bool
	rst     [2]bool
	linger  [2]bool
	// The write being built: its step index, -1 for none.
	write      [2]int
	wrote      [2]int64
	writeFirst [2]int
	lastData   [2]explain.Segment
	mss        [2]int
}

var roles = [2]string{"client", "server"}

// minFull is the smallest segment that counts as full-sized (the minimum
// MSS of RFC 1122 less headers) when deciding whether segments with PSH
// belong to one write.
const minFull = 536

func idx(role string) int {
	if role == "server" {
		return 1
	}
	return 0
}

func (b *builder) add(t time.Duration, host, line, why string) int {
	b.steps = append(b.steps, step{t: t, host: host, line: line, why: why, seq: len(b.steps)})
	return len(b.steps) - 1
}

// readAll makes side h read what has arrived and it has not read yet.
func (b *builder) readAll(t time.Duration, h int, why string) {
	n := b.arrived[h] - b.read[h]
	if n <= 0 {
		return
	}
	b.readN(t, h, n, why)
}

func (b *builder) readN(t time.Duration, h int, n int64, why string) {
	if n <= 0 {
		return
	}
	// The read ends the reader's write, and the peer's: what the peer
	// sends after it is a new write, after the read in the scenario (a
	// write that waited for the read would otherwise block before it).
	b.endWrite(h)
	b.endWrite(1 - h)
	all := n == b.arrived[h]-b.read[h]
	b.read[h] += n
	if all && b.finDone[1-h] && !b.eof[h] {
		// Everything up to the peer's FIN: read to EOF, so that the
		// replay drains what a stack with other buffer sizes still holds
		// back (one read returns only what has arrived).
		b.eof[h] = true
		b.add(t, roles[h], "read all", why+"; to the peer's FIN")
		return
	}
	// One read returns at most 16 MiB (the language's limit); bigger
	// backlogs take several.
	for n > 0 {
		k := min(n, 16<<20)
		b.add(t, roles[h], fmt.Sprintf("read %d", k), why)
		n -= k
		why = ""
	}
}

func (b *builder) endWrite(h int) { b.write[h] = -1 }

// Build turns connection c (analyzed with its packets kept) into a
// scenario. It fails when the capture shows nothing a scenario could
// start from (a SYN nobody answered). Cost: linear in the connection's
// packets; the scenario's text is a few dozen bytes per step.
func Build(c *explain.Conn, opt Options) (*Replay, error) {
	segs := c.Segments()
	if len(segs) == 0 {
		return nil, fmt.Errorf("replay: connection %d: no packets kept (analyze the capture with its packets)", c.N)
	}
	if opt.MinSleep == 0 {
		opt.MinSleep = 200 * time.Millisecond
	}
	name := opt.Name
	if name == "" {
		name = fmt.Sprintf("replay-conn%d", c.N)
	}
	r := &Replay{Conn: c.N, Pattern: CapturePattern(c)}
	b := &builder{write: [2]int{-1, -1}, next: [2]uint32{1, 1}}
	cs, ss := c.WScale()
	for i, sc := range []int{cs, ss} {
		b.slack[i] = 1
		if cs > 0 && ss > 0 {
			b.slack[i] = 1 << uint(sc)
		}
	}
	port := c.Server().Port()
	if port == 0 {
		// Port 0 cannot be listened on; any other does.
		port = 9527
		b.notes = append(b.notes, "the server's port is 0 in the capture: 9527 instead")
	}

	// SO_LINGER 0 is set when the socket is made: find the sides whose
	// RST calls for it first.
	for _, s := range segs {
		if s.RST() && s.Finding != nil && lingerStandIn(s.Finding) {
			b.linger[idx(s.From)] = true
		}
	}

	var synT, estT time.Duration
	var synPkt, synAckPkt, estPkt int
	for _, s := range segs {
		switch {
		case s.SYN() && !s.ACK() && synPkt == 0:
			synT, synPkt = s.T, s.N
		case s.SYN() && s.ACK() && synAckPkt == 0:
			synAckPkt = s.N
		case s.ACK() && s.From == "client" && synAckPkt != 0 && estPkt == 0 && !s.RST():
			estT, estPkt = s.T, s.N
		}
	}
	switch {
	case c.RefusedOnSYN():
		b.add(synT, "client", fmt.Sprintf("connect server:%d  expect error ECONNREFUSED", port),
			fmt.Sprintf("#%d SYN answered by RST: nothing listens on port %d (no listen step)", synPkt, port))
		r.Lab = render(name, c, opt, r, b)
		return r, nil
	case c.MidStream():
		b.notes = append(b.notes, "the capture starts mid-stream: the handshake is assumed (the client being the side that seems to have connected)")
		b.add(0, "server", fmt.Sprintf("listen %d", port), "no handshake in the capture: assumed")
		b.add(0, "client", fmt.Sprintf("connect server:%d", port), "assumed")
		b.add(0, "server", "accept", "assumed")
	case synAckPkt == 0 && synPkt != 0:
		unanswered(b, segs, port, synPkt)
		r.Notes = b.notes
		r.Lab = render(name, c, opt, r, b)
		return r, nil
	case synAckPkt == 0:
		return nil, fmt.Errorf("replay: connection %d: no SYN and no SYN/ACK in the capture: nothing to replay", c.N)
	case closedConnecting(segs, synAckPkt, estPkt):
		closeInSynSent(b, segs, port, synPkt, synAckPkt)
		r.Notes = b.notes
		r.Lab = render(name, c, opt, r, b)
		return r, nil
	default:
		b.add(0, "server", fmt.Sprintf("listen %d", port), "the server listened before the client's SYN")
		b.add(synT, "client", fmt.Sprintf("connect server:%d", port), fmt.Sprintf("#%d SYN, #%d SYN/ACK", synPkt, synAckPkt))
		why := "the handshake completed"
		if estPkt != 0 {
			why = fmt.Sprintf("#%d completes the handshake", estPkt)
		}
		b.add(estT, "server", "accept", why)
	}
	for h := range 2 {
		if b.linger[h] {
			b.add(b.steps[len(b.steps)-1].t, roles[h], "set linger 0", "SO_LINGER 0: its close() will send RST (see the close below)")
		}
	}

	for _, s := range segs {
		b.segment(s)
	}
	// A side that half-closed and has the peer's FIN closes its socket at
	// the end: nothing goes on the wire, but a socket left open would be
	// abandoned by the lab instead.
	last := segs[len(segs)-1].T
	for h := range 2 {
		if b.shut[h] && !b.closed[h] && !b.rst[h] && !b.rst[1-h] && b.finDone[1-h] {
			b.readAll(last, h, "it read the rest and EOF")
			b.add(last, roles[h], "close", "after its half-close and the peer's FIN: sends nothing")
			b.closed[h] = true
		}
	}
	if len(b.steps) > maxSteps {
		b.notes = append(b.notes, fmt.Sprintf("the connection makes %d steps; the scenario stops after %d (the language allows %d)", len(b.steps), maxSteps, scenario.MaxSteps))
		b.steps = b.steps[:maxSteps]
	}
	r.Notes = b.notes
	r.Lab = render(name, c, opt, r, b)
	return r, nil
}

// maxSteps bounds a replay's steps, below the language's limit with room
// for sleeps and expectations.
const maxSteps = scenario.MaxSteps / 3

// lingerStandIn reports whether a RST is replayed as close() with SO_LINGER
// 0: its cause is SO_LINGER 0, or an abort a scenario cannot make
// otherwise (a timeout, a middlebox, unknown).
func lingerStandIn(f *explain.Finding) bool {
	switch f.Class {
	case explain.ClassLinger, explain.ClassTimeout, explain.ClassMiddlebox, explain.ClassUnknown, explain.ClassIdle, explain.ClassKeepalive:
		return true
	}
	return false
}

// stackAnswer reports whether a RST is a stack's answer to a segment,
// which no call makes.
func stackAnswer(f *explain.Finding) bool {
	switch f.Class {
	case explain.ClassDataAfter, explain.ClassGone, explain.ClassAlreadyReset, explain.ClassNoConnection, explain.ClassSYN:
		return true
	}
	return false
}

// segment books one packet.
func (b *builder) segment(s explain.Segment) {
	h := idx(s.From)
	p := 1 - h
	if s.SYN() || b.rst[h] {
		if s.RST() && s.Finding != nil && b.rst[h] {
			b.add(s.T, "", "", fmt.Sprintf("#%d %s [%s]: %s (the stack's answer; no call)", s.N, s.From, s.Flags, s.Finding.Reason))
		}
		return
	}
	// Reads: the window grew again, or it is zero.
	if s.ACK() && !s.RST() {
		w := s.Window
		if b.winSet[h] && w > b.win[h] && b.arrived[h] > b.read[h] {
			unread := b.arrived[h] - b.read[h]
			n := unread
			if w+b.slack[h] < b.maxWin[h] {
				n = min(unread, int64(w-b.win[h]))
			}
			b.readN(s.T, h, n, fmt.Sprintf("#%d: its window grew from %d to %d: the application read", s.N, b.win[h], w))
		}
		if w == 0 && !b.zeroWin[h] && b.arrived[h] > b.read[h] {
			b.add(s.T, "", "", fmt.Sprintf("#%d: %s's window is 0: its application stopped reading (%d bytes unread)", s.N, s.From, b.arrived[h]-b.read[h]))
		}
		b.zeroWin[h] = w == 0
		b.win[h], b.winSet[h] = w, true
		b.maxWin[h] = max(b.maxWin[h], w)
	}
	// Data: the sequence space beyond what the side had sent, including
	// a gap the capture lacks before it (sent, not captured); a
	// retransmission adds only what is new in it.
	end := s.Seq + uint32(s.Len)
	if s.Len > 0 && int32(end-b.next[h]) > 0 {
		n := int(end - b.next[h])
		if gap := int32(s.Seq - b.next[h]); gap > 0 {
			b.add(s.T, "", "", fmt.Sprintf("#%d: the capture lacks %d bytes %s sent before it; the write below counts them", s.N, gap, s.From))
		}
		b.next[h] = end
		cont := false
		if b.write[h] >= 0 {
			ld := b.lastData[h]
			// A segment without PSH, or a full-sized one followed at
			// once by more: the same write.
			full := ld.Len >= b.mss[h] && ld.Len >= minFull
			cont = !ld.PSH() || (full && s.T-ld.T < 5*time.Millisecond)
		}
		b.mss[h] = max(b.mss[h], s.Len)
		if cont {
			st := &b.steps[b.write[h]]
			b.wrote[h] += int64(n)
			st.line = fmt.Sprintf("write %d", b.wrote[h])
			st.why = fmt.Sprintf("#%d-#%d (new data)", b.writeFirst[h], s.N)
		} else {
			b.write[h] = b.add(s.T, s.From, fmt.Sprintf("write %d", n), fmt.Sprintf("#%d (new data)", s.N))
			b.wrote[h], b.writeFirst[h] = int64(n), s.N
		}
		b.lastData[h] = s
		b.arrived[p] += int64(n)
	}
	if s.FIN() && !b.finDone[h] {
		b.finDone[h] = true
		b.endWrite(h)
		defer func() {
			// The peer had read all the capture shows: it reads on to
			// EOF once this FIN is sent.
			if !b.closed[p] && !b.rst[p] && !b.eof[p] && b.arrived[p] == b.read[p] && b.arrived[p] > 0 {
				b.eof[p] = true
				b.add(s.T, roles[p], "read all", fmt.Sprintf("it had read all %d bytes (its windows); after #%d FIN it reads to EOF", b.arrived[p], s.N))
			}
		}()
		f := s.Finding
		if f != nil && f.Class == explain.ClassShutWR {
			b.add(s.T, s.From, "shutdown wr", fmt.Sprintf("#%d FIN: %s [%s]", s.N, f.Class, f.Confidence))
			b.shut[h] = true
		} else {
			b.readAll(s.T, h, "close() with unread data would send RST, and it sent FIN: it read them")
			why := fmt.Sprintf("#%d FIN", s.N)
			if f != nil {
				why += fmt.Sprintf(": %s [%s]", f.Class, f.Confidence)
				if len(f.Alternatives) > 0 {
					why += "; or " + strings.Join(f.Alternatives, "; or ")
				}
			}
			b.add(s.T, s.From, "close", why)
			b.closed[h] = true
		}
	}
	if s.RST() {
		b.rst[h] = true
		b.endWrite(h)
		f := s.Finding
		switch {
		case f == nil:
		case stackAnswer(f):
			b.add(s.T, "", "", fmt.Sprintf("#%d %s [%s]: %s (the stack's answer; no call)", s.N, s.From, s.Flags, f.Reason))
		case b.closed[h]:
			b.add(s.T, "", "", fmt.Sprintf("#%d %s [%s] after its close(): %s", s.N, s.From, s.Flags, f.Reason))
		case f.Class == explain.ClassUnread || f.Class == explain.ClassListener:
			b.add(s.T, s.From, "close", fmt.Sprintf("#%d [%s]: %s; %d bytes unread [%s]", s.N, s.Flags, f.Class, b.arrived[h]-b.read[h], f.Confidence))
			if b.arrived[h] == b.read[h] {
				b.notes = append(b.notes, fmt.Sprintf("#%d: explain says close() with unread data, but the replay has read everything (a window update after the data): the close will send FIN", s.N))
			}
			b.closed[h] = true
		case lingerStandIn(f):
			why := fmt.Sprintf("#%d [%s]: %s [%s]", s.N, s.Flags, f.Reason, f.Confidence)
			if f.Class != explain.ClassLinger {
				why = fmt.Sprintf("#%d [%s]: stand-in: SO_LINGER 0 and close() for %s [%s]", s.N, s.Flags, f.Reason, f.Confidence)
				b.notes = append(b.notes, fmt.Sprintf("#%d: %s: replayed with SO_LINGER 0 and close(), which sends the same RST at once", s.N, f.Reason))
			}
			b.add(s.T, s.From, "close", why)
			b.closed[h] = true
		default:
			b.add(s.T, "", "", fmt.Sprintf("#%d %s [%s]: %s (not replayed)", s.N, s.From, s.Flags, f.Reason))
			b.notes = append(b.notes, fmt.Sprintf("#%d: %s: not replayed", s.N, f.Reason))
		}
	}
}

// render writes the scenario's text.
func render(name string, c *explain.Conn, opt Options, r *Replay, b *builder) string {
	var w strings.Builder
	src := opt.Source
	if src == "" {
		src = "the capture"
	}
	fmt.Fprintf(&w, "# %s: connection %d of %s, replayed.\n#\n", name, c.N, src)
	fmt.Fprintf(&w, "# client %v -> server %v, %d packets over %.3f s; teardown %s (Zeek %s).\n",
		c.Client(), c.Server(), c.Packets, c.Last.Sub(c.First).Seconds(), c.Teardown(), c.Zeek())
	fmt.Fprintf(&w, "# Written by tcplab replay from the capture alone: every step is an inferred\n")
	fmt.Fprintf(&w, "# call, its comment names the packets (#N, as explain numbers them) it rests on.\n")
	fmt.Fprintf(&w, "# Writes are the new data each side sent, coalesced while back to back; reads\n")
	fmt.Fprintf(&w, "# are where a window grew again (or before a close() that sent FIN); sleeps\n")
	fmt.Fprintf(&w, "# are the capture's quiet gaps. Edit freely.\n")
	if len(r.Pattern) > 0 {
		fmt.Fprintf(&w, "# The capture's teardown: %s.\n", strings.Join(r.Pattern, ", then "))
	} else {
		fmt.Fprintf(&w, "# The capture has no FIN or RST.\n")
	}
	for _, n := range b.notes {
		fmt.Fprintf(&w, "# Not as captured: %s.\n", n)
	}
	steps := b.steps
	sort.SliceStable(steps, func(i, j int) bool {
		if steps[i].t != steps[j].t {
			return steps[i].t < steps[j].t
		}
		return steps[i].seq < steps[j].seq
	})
	var at time.Duration
	width := 0
	for _, s := range steps {
		width = max(width, len(s.host)+1+len(s.line))
	}
	width = min(max(width, 24), 44)
	for _, s := range steps {
		if s.t-at >= opt.MinSleep && s.host != "" {
			d := min((s.t - at).Round(time.Millisecond), scenario.MaxDuration)
			sleep := "sleep " + fmtDur(d)
			if s.host == "client" || s.host == "server" {
				sleep = s.host + " " + sleep
			}
			fmt.Fprintf(&w, "%-*s # the capture is quiet for %s\n", width, sleep, fmtDur(d))
		}
		if s.host != "" {
			at = max(at, s.t)
		}
		if s.host == "" {
			fmt.Fprintf(&w, "# %s\n", s.why)
			continue
		}
		line := s.host + " " + s.line
		if s.why != "" {
			fmt.Fprintf(&w, "%-*s # %s\n", width, line, s.why)
		} else {
			fmt.Fprintf(&w, "%s\n", line)
		}
	}
	// The pattern as expectations, so that `tcplab run` checks it too.
	w.WriteString("# the capture's teardown, as expectations:\n")
	for _, e := range expectations(r.Pattern) {
		w.WriteString(e + "\n")
	}
	return w.String()
}

// fmtDur formats d the way the language reads it: 5s, 200ms, 1.5s.
func fmtDur(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// expectations turns a teardown pattern into expect lines: each side sent
// FIN and RST or never did, and the order of the first ones.
func expectations(pat []string) []string {
	var out []string
	has := map[string]bool{}
	for _, p := range pat {
		has[p] = true
	}
	for _, h := range roles {
		for _, k := range []string{"FIN", "RST"} {
			fl := k[:1]
			line := fmt.Sprintf("expect %s sent %s", h, fl)
			if !has[h+" "+k] {
				line += " never"
			}
			out = append(out, line)
		}
	}
	for i := 1; i < len(pat); i++ {
		a, b := strings.Fields(pat[i-1]), strings.Fields(pat[i])
		out = append(out, fmt.Sprintf("expect %s sent %s before %s sent %s", a[0], a[1][:1], b[0], b[1][:1]))
	}
	return out
}

// CapturePattern returns the capture's teardown of c: the first FIN and the
// first RST of each side, in the order they appear, as "client FIN",
// "server RST". Cost: one pass over c's findings.
func CapturePattern(c *explain.Conn) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range c.Findings {
		k := f.From + " " + f.Kind
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Pattern returns a trace's teardown in the same form as CapturePattern:
// the first FIN and first RST each host sent, in order. Cost: one pass
// over the events.
func Pattern(events []trace.Event) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range events {
		if e.Kind != trace.Segment || e.Dir != "out" || (e.Host != "client" && e.Host != "server") {
			continue
		}
		for _, k := range []string{"FIN", "RST"} {
			if !strings.Contains(e.Flags, k[:1]) {
				continue
			}
			key := e.Host + " " + k
			if !seen[key] {
				seen[key] = true
				out = append(out, key)
			}
		}
	}
	return out
}

// Reason returns the reason of the first segment a trace's Pattern names
// key ("client RST"), "" when there is none. Cost: one pass over the
// events at most.
func Reason(events []trace.Event, key string) string {
	host, kind, _ := strings.Cut(key, " ")
	for _, e := range events {
		if e.Kind == trace.Segment && e.Dir == "out" && e.Host == host && kind != "" && strings.Contains(e.Flags, kind[:1]) {
			return e.Reason
		}
	}
	return ""
}

// Differ says where pattern got differs from want, or "" when they are
// the same: the first position where they part. Cost: linear in the
// patterns' length.
func Differ(want, got []string) string {
	for i := 0; i < max(len(want), len(got)); i++ {
		switch {
		case i >= len(want):
			return fmt.Sprintf("then %s, which the capture does not have", strings.Join(got[i:], ", then "))
		case i >= len(got):
			return fmt.Sprintf("no %s (the capture has it)", strings.Join(want[i:], ", then "))
		case want[i] != got[i]:
			return fmt.Sprintf("%s where the capture has %s", got[i], want[i])
		}
	}
	return ""
}
