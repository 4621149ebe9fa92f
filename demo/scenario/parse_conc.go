package scenario

import (
	"fmt"
	"sort"
	"strings"
)

// The parser's part for background calls ("&", "wait NAME") and sockets
// made before they connect ("socket as NAME", "bind").

// background marks step, whose line ended in "&" at column col, as a
// background call.
func (p *lineParser) background(step Step, col int) error {
	c, ok := step.(*Call)
	if !ok || step == nil {
		what := "this statement"
		if step != nil {
			what = fmt.Sprintf("%q", step.String())
		}
		return &Error{Pos{p.name, p.ln, col}, fmt.Sprintf("\"&\" runs a socket call in the background; %s is not a call", what)}
	}
	c.Background = true
	c.text = strings.TrimSpace(c.text)
	if l := label(c); l != "" {
		if _, seen := p.names["& "+l]; !seen {
			p.names["& "+l] = c.pos
		}
	}
	return nil
}

// label is the name "wait NAME" knows a background call by: its "as NAME",
// else its "on NAME".
func label(c *Call) string {
	if c.As != "" {
		return c.As
	}
	return c.On
}

// waitName parses "wait NAME|client|server|all" (after "wait").
func (p *lineParser) waitName(start Pos) (Step, error) {
	var labels []string
	for k := range p.names {
		if l, ok := strings.CutPrefix(k, "& "); ok {
			labels = append(labels, l)
		}
	}
	sort.Strings(labels)
	choices := append([]string{"quiet", "all", "client", "server"}, labels...)
	if !p.more() || p.toks[p.i].quoted {
		return nil, p.errorf("expected what to wait for (%s)", strings.Join(choices, ", "))
	}
	at := p.pos()
	name := p.toks[p.i].text
	p.i++
	switch {
	case name == "all" || name == "client" || name == "server":
	case p.names["& "+name] != Pos{}:
	default:
		msg := fmt.Sprintf("wait: no background call named %q before this line (a call ending in \"&\" is named by its \"as NAME\" or \"on NAME\"; "+
			"wait client|server|all waits for a host's or every background call, wait quiet [D] for a quiet lab)", name)
		if near := nearest(name, choices); near != "" {
			msg += fmt.Sprintf("; did you mean %q?", near)
		}
		return nil, &Error{at, msg}
	}
	w := &Wait{Name: name}
	w.set(start, p.text)
	return w, p.end()
}

// declared checks that host has a socket called name at this line: one
// named with "as" before, or one of the stack's own names (c1, l2, ...).
func (p *lineParser) declared(host, name string, at Pos) error {
	if autoName.MatchString(name) {
		return nil
	}
	if _, ok := p.names[host+" "+name]; ok {
		return nil
	}
	var known []string
	for k := range p.names {
		if n, ok := strings.CutPrefix(k, host+" "); ok {
			known = append(known, n)
		}
	}
	msg := fmt.Sprintf("%s has no socket named %q before this line (name one with \"%s socket as %s\", or \"as %s\" on listen, connect or accept; c1, c2, l1, ... are the stack's own names)",
		host, name, host, name, name)
	if near := nearest(name, known); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return &Error{at, msg}
}

// bindAddr parses what "bind" binds: PORT or HOST:PORT, HOST being the
// host itself (its one address); port 0 asks for an ephemeral one.
func (p *lineParser) bindAddr(c *Call) error {
	if !p.more() || p.toks[p.i].quoted {
		return p.errorf("expected what to bind: PORT or %s:PORT", c.Host)
	}
	t := p.toks[p.i].text
	if h, port, ok := strings.Cut(t, ":"); ok {
		if h != c.Host {
			return p.errorf("%s can bind only its own address: %s:%s, found %q", c.Host, c.Host, port, t)
		}
		t = port
	}
	n, err := parseNumber(t, "port", 0, 65535)
	if err != nil {
		return p.errorf("%v", err)
	}
	p.i++
	c.Port = uint16(n)
	return nil
}

// checkCall checks what a call needs once its line is parsed.
func (p *lineParser) checkCall(c *Call, start Pos) error {
	switch {
	case c.Op == "socket" && c.As == "":
		return p.errorf("socket needs a name: %s socket as NAME", c.Host)
	case c.Op == "listen" && c.Port == 0 && c.On == "":
		return &Error{start, fmt.Sprintf("expected a port: %s listen PORT, or %s listen [PORT] ... on NAME for a socket made with \"socket as NAME\"", c.Host, c.Host)}
	}
	return nil
}
