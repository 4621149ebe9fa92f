// Package crossing says how each FIN and RST crossed a relay (tcplab exec
// --side middle): for every FIN or RST the relay received on one leg, what
// it sent on the other leg next, and after how long.
//
// A FIN or RST the relay sent that passes nothing on (none arrived on the
// other leg that it could answer) gets a verdict of its own: the relay
// ended that direction itself (a timeout, a close() of its own, data after
// close).
//
// A verdict pairs two observed events of the trace by time: the relay's
// arrival of a FIN or RST from one host, and the first FIN or RST the relay
// sent afterwards toward the host on its other leg. That pairing is
// tcplab's inference, not something a stack reported: the relay's code may
// have sent the second segment for another reason. Verdicts say so
// (Inferred), and cite both events.
//
// The legs are the relay's connections; a connection's other end is named
// by its address, from the segments the other hosts sent. With several
// connections on a leg, a FIN or RST is paired with the connection toward
// the other host that the relay opened last before the FIN or RST arrived
// (the first one after it when there is none before). A segment of the
// relay that passed one arrival on is not paired with another. Cost: a
// pass over the events, plus a pass over the relay's few FINs and RSTs per
// FIN or RST it received.
package crossing

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/tcplab/tcplab/stack/trace"
)

// Inferred is the mark every verdict carries: it pairs two observed events
// by time.
const Inferred = "inferred: observed segments of the relay, paired by time"

// Options tune Verdicts. The zero value suits a run in which tcplab did not
// stop the relay.
type Options struct {
	// Stopped is when tcplab ended the relay program (SIGTERM), as a trace
	// time; zero when it did not. What the relay sent afterwards is said
	// to be the stop's doing.
	Stopped time.Duration
}

// Verdict is how one FIN or RST crossed the relay.
type Verdict struct {
	// From is the host whose FIN or RST the relay received, To the host
	// on the relay's other leg (its address when no segment names it;
	// "" when the relay had no connection toward another host).
	From, To string
	// Flag is what the relay received: "FIN" or "RST".
	Flag string
	// In is the relay's arrival of it.
	In trace.Event
	// Out is the first FIN or RST the relay sent toward To after In,
	// nil when it sent none.
	Out *trace.Event
	// Before is the first FIN or RST the relay sent toward To before In
	// arrived, nil when it sent none.
	Before *trace.Event
	// Own marks a FIN or RST the relay sent that passes nothing on
	// (Out): From is the relay, In is zero.
	Own bool
	// Since is, for Own, the last FIN or RST the relay received before
	// Out, on either leg; nil when none.
	Since *trace.Event
	// Answer is the first RST the relay sent back toward From after In,
	// on In's own leg, nil when it sent none.
	Answer *trace.Event
	// State is the last state of the relay's connection toward To, ""
	// when no state of it was recorded.
	State string
	// Text is the verdict in words, e.g. "client's FIN passed on to
	// server after 3.1 ms".
	Text string
}

// leg is one of the relay's connections.
type leg struct {
	conn  string
	peer  string        // the host at its other end
	first time.Duration // its first event
	sent  []trace.Event // the relay's FINs and RSTs on it, in order
	state string        // its last state
}

// Verdicts returns one verdict per FIN and RST the relay (events of host
// relay) received and accepted, and one per FIN and RST it sent that
// passes nothing on, in the order of their first event. Only the first FIN
// and the first RST of each connection count, each way: retransmissions
// are the same FIN. It needs the relay's segment events, both directions.
func Verdicts(events []trace.Event, relay string, opt Options) []Verdict {
	names := map[netip.Addr]string{}
	for _, e := range events {
		if e.Kind == trace.Segment && e.Dir == "out" && e.Host != relay {
			if a, err := netip.ParseAddrPort(e.Src); err == nil {
				names[a.Addr()] = e.Host
			}
		}
	}
	nameOf := func(addr string) string {
		a, err := netip.ParseAddrPort(addr)
		if err != nil {
			return addr
		}
		if n, ok := names[a.Addr()]; ok {
			return n
		}
		return a.Addr().String()
	}
	legs := map[string]*leg{}
	var order []*leg
	var arrivals []trace.Event
	seen := map[string]bool{} // conn + flag already counted
	for _, e := range events {
		if e.Host != relay || e.Conn == "" || !strings.HasPrefix(e.Conn, "c") {
			continue
		}
		l := legs[e.Conn]
		if l == nil {
			l = &leg{conn: e.Conn, first: e.T}
			legs[e.Conn] = l
			order = append(order, l)
		}
		switch e.Kind {
		case trace.State:
			l.state = e.To
		case trace.Segment:
			remote := e.Dst
			if e.Dir == "in" {
				remote = e.Src
			}
			if l.peer == "" {
				l.peer = nameOf(remote)
			}
			flag := flagOf(e.Flags)
			if flag == "" || e.Refused() {
				continue
			}
			if e.Dir == "out" {
				if k := e.Conn + ">" + flag; !seen[k] {
					seen[k] = true
					l.sent = append(l.sent, e)
				}
				continue
			}
			if k := e.Conn + flag; !seen[k] {
				seen[k] = true
				arrivals = append(arrivals, e)
			}
		}
	}
	var out []Verdict
	paired := map[int]bool{} // indexes of the relay's segments that pass something on
	for _, in := range arrivals {
		from := legs[in.Conn]
		v := Verdict{From: from.peer, Flag: flagOf(in.Flags), In: in}
		for i := range from.sent {
			if s := from.sent[i]; flagOf(s.Flags) == "RST" && after(s, in) {
				v.Answer = &from.sent[i]
				break
			}
		}
		if other := otherLeg(order, from, in.T); other != nil {
			v.To, v.State = other.peer, other.state
			for i := range other.sent {
				s := other.sent[i]
				if paired[s.Index] {
					continue // it passed on an earlier arrival
				}
				if !after(s, in) {
					if v.Before == nil {
						v.Before = &other.sent[i]
					}
					continue
				}
				v.Out = &other.sent[i]
				paired[s.Index] = true
				break
			}
		}
		v.Text = v.words(opt, legs)
		out = append(out, v)
	}
	for _, l := range order {
		for i, s := range l.sent {
			if paired[s.Index] || (v0(out, s) != nil) {
				continue
			}
			v := Verdict{From: relay, To: l.peer, Flag: flagOf(s.Flags), Out: &l.sent[i], Own: true, State: l.state}
			for j := range arrivals {
				if after(s, arrivals[j]) {
					v.Since = &arrivals[j]
				}
			}
			v.Text = v.words(opt, legs)
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at() < out[j].at() })
	return out
}

// v0 returns the verdict whose Answer is s, if any: a RST answering an
// arrival on its own leg is told with that arrival.
func v0(vs []Verdict, s trace.Event) *Verdict {
	for i := range vs {
		if a := vs[i].Answer; a != nil && a.Index == s.Index {
			return &vs[i]
		}
	}
	return nil
}

// at is when the verdict's first event happened.
func (v Verdict) at() time.Duration {
	if v.Own {
		return v.Out.T
	}
	return v.In.T
}

// after reports whether s comes after in in the trace.
func after(s, in trace.Event) bool {
	return s.T > in.T || (s.T == in.T && s.Index > in.Index)
}

// otherLeg returns the relay's connection toward another host than from's
// to pair an arrival at t with: the last opened before t, else the first
// opened after.
func otherLeg(order []*leg, from *leg, t time.Duration) *leg {
	var before, after []*leg
	for _, l := range order {
		if l == from || l.peer == "" || l.peer == from.peer {
			continue
		}
		if l.first <= t {
			before = append(before, l)
		} else {
			after = append(after, l)
		}
	}
	if len(before) > 0 {
		sort.SliceStable(before, func(i, j int) bool { return before[i].first < before[j].first })
		return before[len(before)-1]
	}
	if len(after) > 0 {
		return after[0]
	}
	return nil
}

// flagOf names the teardown flag of a segment: "RST", "FIN" or "".
func flagOf(flags string) string {
	switch {
	case strings.Contains(flags, "R"):
		return "RST"
	case strings.Contains(flags, "F"):
		return "FIN"
	}
	return ""
}

// words writes the verdict as a sentence.
func (v Verdict) words(opt Options, legs map[string]*leg) string {
	if v.Own {
		text := fmt.Sprintf("the relay's own %s toward %s at %.3fs", v.Flag, v.To, v.Out.T.Seconds())
		if v.Since != nil {
			text += fmt.Sprintf(", %s after %s's %s reached it", Duration(v.Out.T-v.Since.T), legs[v.Since.Conn].peer, flagOf(v.Since.Flags))
		}
		text += ": it passes nothing on (no FIN or RST from the other leg was left to pass)"
		if v.Out.Reason != "" {
			text += " (its reason: " + v.Out.Reason + ")"
		}
		if opt.Stopped > 0 && v.Out.T >= opt.Stopped {
			text += fmt.Sprintf(", once tcplab stopped the relay (SIGTERM at %.3fs)", opt.Stopped.Seconds())
		}
		return text
	}
	what := fmt.Sprintf("%s's %s", v.From, v.Flag)
	if v.To == "" {
		return what + " never passed on: the relay had no connection toward another host"
	}
	var b strings.Builder
	b.WriteString(what)
	switch {
	case v.Before != nil && v.Out == nil:
		fmt.Fprintf(&b, " arrived after the relay had already sent a %s toward %s (%s earlier): nothing left to pass on",
			flagOf(v.Before.Flags), v.To, Duration(v.In.T-v.Before.T))
	case v.Out == nil:
		fmt.Fprintf(&b, " never passed on to %s", v.To)
		if v.State != "" {
			fmt.Fprintf(&b, " (the relay's connection toward %s was still %s when the run ended)", v.To, v.State)
		} else {
			b.WriteString(" (the relay sent no FIN or RST toward it before the run ended)")
		}
	case flagOf(v.Out.Flags) == v.Flag:
		fmt.Fprintf(&b, " passed on to %s after %s", v.To, Duration(v.Out.T-v.In.T))
	default:
		fmt.Fprintf(&b, " turned into a %s toward %s after %s", flagOf(v.Out.Flags), v.To, Duration(v.Out.T-v.In.T))
	}
	if v.Out != nil && v.Out.Reason != "" && flagOf(v.Out.Flags) == "RST" {
		fmt.Fprintf(&b, " (the relay's RST: %s)", v.Out.Reason)
	}
	if v.Out != nil && v.Before != nil {
		fmt.Fprintf(&b, " (the relay had already sent a %s toward %s %s before it arrived)", flagOf(v.Before.Flags), v.To, Duration(v.In.T-v.Before.T))
	}
	if a := v.Answer; a != nil {
		fmt.Fprintf(&b, "; the relay answered it with a RST toward %s after %s", v.From, Duration(a.T-v.In.T))
		if a.Reason != "" {
			fmt.Fprintf(&b, " (%s)", a.Reason)
		}
	}
	if v.Out != nil && opt.Stopped > 0 && v.Out.T >= opt.Stopped {
		fmt.Fprintf(&b, ", only once tcplab stopped the relay (SIGTERM at %.3fs)", opt.Stopped.Seconds())
	}
	return b.String()
}

// Duration writes d for a verdict: "0.42 ms", "3.1 ms", "503 ms", "1.50 s".
func Duration(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
