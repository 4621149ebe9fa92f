package scenario

import (
	"fmt"
	"strings"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// FlagsMatch reports whether a segment's tcpdump flags match a pattern: the
// segment must carry every flag the pattern names ("." is ACK) and no SYN,
// FIN or RST the pattern leaves out; PSH and ACK not named are ignored. A
// pattern of "." alone means a pure ACK (no SYN, FIN, RST or payload flag).
func FlagsMatch(pattern, flags string) bool {
	if pattern == "." {
		return flags == "."
	}
	for _, r := range pattern {
		if !strings.ContainsRune(flags, r) {
			return false
		}
	}
	for _, r := range "SFR" {
		if strings.ContainsRune(flags, r) && !strings.ContainsRune(pattern, r) {
			return false
		}
	}
	return true
}

// segments returns the indexes of the segment events an expectation names.
func segments(events []trace.Event, e *Expect, conns map[string]bool) []int {
	dir := "out"
	if e.What == "received" || e.What == "refused" {
		dir = "in"
	}
	var out []int
	var nums isnTable
	for i, ev := range events {
		if ev.Kind != trace.Segment || ev.Host != e.Host || ev.Dir != dir || !FlagsMatch(e.Flags, ev.Flags) {
			continue
		}
		if conns != nil && !conns[ev.Conn] {
			continue
		}
		if e.What == "refused" && ev.Verdict != trace.Refused {
			continue
		}
		if e.Reason != "" && !strings.Contains(segReason(e, ev), e.Reason) {
			continue
		}
		if len(e.Fields) > 0 && !nums.match(events, ev, e.Fields) {
			continue
		}
		out = append(out, i)
	}
	return out
}

// summarised counts the segments an expectation names among those a long
// run's summaries count (trace.Summary: they never carry a reason, a SYN,
// a FIN or a RST, and no arrival the stack refused). A summary keeps no
// per-segment numbers, so an expectation on seq/ack/win/len counts only
// the segments kept in full.
func summarised(events []trace.Event, e *Expect, conns map[string]bool) int {
	if e.What == "refused" || e.Reason != "" || len(e.Fields) > 0 {
		return 0
	}
	dir := "out"
	if e.What == "received" {
		dir = "in"
	}
	n := 0
	for _, ev := range events {
		if ev.Kind != trace.Summary || ev.Sum == nil || ev.Host != e.Host || ev.Dir != dir {
			continue
		}
		if conns != nil && !conns[ev.Conn] {
			continue
		}
		for flags, k := range ev.Sum.Flags {
			if FlagsMatch(e.Flags, flags) {
				n += k
			}
		}
	}
	return n
}

// check returns what is wrong with an expectation against the trace so far,
// or "".
func (r *runner) check(e *Expect) string {
	events := r.lab.Trace.Events()
	var conns map[string]bool
	if e.On != "" {
		s := r.socks[e.Host][e.On]
		if s == nil {
			return fmt.Sprintf("%s has no socket named %q", e.Host, e.On)
		}
		conns = map[string]bool{s.ID(): true}
	}
	switch e.What {
	case "sent", "received", "refused":
		m := segments(events, e, conns)
		n := len(m) + summarised(events, e, conns)
		switch {
		case e.Never && n > 0:
			return fmt.Sprintf("%s %s [%s] %d time(s), want never", e.Host, e.What, e.Flags, n)
		case e.Never:
		case e.Count >= 0 && n != e.Count:
			return fmt.Sprintf("%s %s [%s]%s %d time(s), want %d", e.Host, e.What, e.Flags, fieldsText(e), n, e.Count)
		case e.Count < 0 && n == 0:
			return fmt.Sprintf("%s never %s [%s]%s%s%s", e.Host, e.What, e.Flags, fieldsText(e), reasonText(e), near(events, e)) + nearFields(events, e, conns)
		}
		if e.Before != nil && len(m) > 0 {
			o := segments(events, e.Before, nil)
			if len(o) > 0 && o[0] < m[0] {
				return fmt.Sprintf("%s %s [%s] came after %s %s [%s]", e.Host, e.What, e.Flags, e.Before.Host, e.Before.What, e.Before.Flags)
			}
		}
		if msg := checkAfter(events, e, m); msg != "" {
			return msg
		}
	case "state":
		found := false
		for _, ev := range events {
			if ev.Kind == trace.State && ev.Host == e.Host && ev.To == e.State && (conns == nil || conns[ev.Conn]) {
				found = true
				break
			}
		}
		if found && e.Never {
			return fmt.Sprintf("%s reached %s, want never", e.Host, e.State)
		}
		if !found && !e.Never {
			return fmt.Sprintf("%s never reached %s (states seen: %s)", e.Host, e.State, statesSeen(events, e.Host))
		}
	case "final":
		s, msg := r.socketOf(e)
		if s == nil {
			return msg
		}
		if st := s.State(); st != e.State {
			return fmt.Sprintf("%s is in %s, want %s", e.Host, st, e.State)
		}
	case "buffer":
		s, msg := r.socketOf(e)
		if s == nil {
			return msg
		}
		l := s.Ledger()
		got := l.SndQueued
		if e.Queue == "rcv" {
			got = l.RcvQueued
		}
		if got != e.Bytes {
			return fmt.Sprintf("%s %s queue holds %d bytes, want %d", e.Host, e.Queue, got, e.Bytes)
		}
	}
	return ""
}

// socketOf returns the socket an expectation is about: the one named by
// "on", or the host's latest; with a message when there is none.
func (r *runner) socketOf(e *Expect) (stack.Socket, string) {
	name := e.On
	if name == "" {
		name = r.latest[e.Host]
	}
	if s := r.socks[e.Host][name]; s != nil {
		return s, ""
	}
	if name == "" {
		return nil, fmt.Sprintf("%s has no connected socket", e.Host)
	}
	return nil, fmt.Sprintf("%s has no socket named %q", e.Host, name)
}

func reasonText(e *Expect) string {
	if e.Reason == "" {
		return ""
	}
	return fmt.Sprintf(" with reason ~ %q", e.Reason)
}

// near lists the FIN/RST reasons the host did give, to help when a reason
// pattern does not match.
func near(events []trace.Event, e *Expect) string {
	if e.Reason == "" {
		return ""
	}
	var rs []string
	for _, ev := range events {
		if ev.Kind == trace.Segment && ev.Host == e.Host && ev.Reason != "" {
			rs = append(rs, fmt.Sprintf("[%s] %q", ev.Flags, ev.Reason))
		}
	}
	if len(rs) == 0 {
		return ""
	}
	return "; reasons given: " + strings.Join(rs, "; ")
}

func statesSeen(events []trace.Event, host string) string {
	var s []string
	for _, ev := range events {
		if ev.Kind == trace.State && ev.Host == host {
			s = append(s, ev.To)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}
