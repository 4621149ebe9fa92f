package scenario

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcplab/tcplab/stack"
)

// rateUnits are the units of "rate R", tc's bit rates (SI: kbit is 1000
// bit/s).
var rateUnits = []struct {
	name string
	mult uint64
}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

// ParseNet parses the SPEC of --net (what follows "net" in a scenario,
// e.g. "loss 5% delay 100ms" or "client->server loss 5%"); errors name
// the place as --net:1:COL.
func ParseNet(spec string) (*Net, error) {
	const prefix = "net "
	toks, err := lexLine(prefix + spec)
	if err != nil {
		le := err.(*lexError)
		return nil, &Error{Pos{"--net", 1, le.col - len(prefix)}, le.msg}
	}
	for i := range toks {
		toks[i].col -= len(prefix)
	}
	p := &lineParser{name: "--net", ln: 1, toks: toks, text: strings.TrimSpace(spec), i: 1}
	n, err := p.net(Pos{"--net", 1, 1})
	if err == nil {
		err = p.end()
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// net parses what follows "net": an optional direction, then clear and
// parameters.
func (p *lineParser) net(start Pos) (*Net, error) {
	n := &Net{Dirs: []stack.Direction{stack.ClientToServer, stack.ServerToClient}}
	n.set(start, p.text)
	switch strings.ToLower(p.peek()) {
	case "client->server":
		n.Dirs = []stack.Direction{stack.ClientToServer}
		p.i++
	case "server->client":
		n.Dirs = []stack.Direction{stack.ServerToClient}
		p.i++
	}
	if !p.more() {
		return nil, p.errorf("expected network conditions (%s), found end of line", strings.Join(netParams, ", "))
	}
	for p.more() {
		if strings.Contains(p.peek(), "->") {
			return nil, p.errorf("expected a direction client->server or server->client (first, after net), found %q", p.peek())
		}
		at := p.pos()
		what, err := p.want("a network condition", netParams)
		if err != nil {
			return nil, err
		}
		if what == "clear" {
			if n.Clear || len(n.Fields) > 0 {
				return nil, &Error{at, "clear comes first, once: it resets the conditions before the others apply"}
			}
			n.Clear = true
			continue
		}
		if slices.Contains(n.Fields, what) {
			return nil, &Error{at, fmt.Sprintf("%s given twice on one line", what)}
		}
		n.Fields = append(n.Fields, what)
		switch what {
		case "loss":
			n.Cond.Loss, err = p.percent(what)
		case "reorder":
			n.Cond.Reorder, err = p.percent(what)
		case "duplicate":
			n.Cond.Duplicate, err = p.percent(what)
		case "corrupt":
			n.Cond.Corrupt, err = p.percent(what)
		case "delay":
			n.Cond.Delay, err = p.netDelay(what)
		case "jitter":
			n.Cond.Jitter, err = p.netDelay(what)
		case "rate":
			n.Cond.Rate, err = p.rate()
		}
		if err != nil {
			return nil, err
		}
	}
	return n, nil
}

// percent consumes a percentage such as 5% or 0.5%, 0-100.
func (p *lineParser) percent(what string) (float64, error) {
	if !p.more() || p.toks[p.i].quoted {
		return 0, p.errorf("expected %s as a percentage (e.g. 5%% or 0.5%%, 0%%-100%%)", what)
	}
	t := p.toks[p.i].text
	num, ok := strings.CutSuffix(t, "%")
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.errorf("expected %s as a percentage (e.g. 5%% or 0.5%%, 0%%-100%%), found %q", what, t)
	}
	if v < 0 || v > 100 {
		return 0, p.errorf("%s %s out of range: want 0%%-100%%", what, t)
	}
	p.i++
	return v, nil
}

// netDelay consumes a delay or jitter, 0-10 s.
func (p *lineParser) netDelay(what string) (time.Duration, error) {
	if !p.more() || p.toks[p.i].quoted {
		return 0, p.errorf("expected %s (a duration such as 100ms, from 0 to %s)", what, stack.MaxNetDelay)
	}
	t := p.toks[p.i].text
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, p.errorf("expected %s (a duration such as 100ms, from 0 to %s), found %q", what, stack.MaxNetDelay, t)
	}
	if d < 0 || d > stack.MaxNetDelay {
		return 0, p.errorf("%s %s out of range: want 0-%s", what, t, stack.MaxNetDelay)
	}
	p.i++
	return d, nil
}

// rate consumes a bit rate such as 1mbit, 1kbit to 100gbit.
func (p *lineParser) rate() (uint64, error) {
	lim := fmt.Sprintf("%s-%s", stack.FormatRate(stack.MinNetRate), stack.FormatRate(stack.MaxNetRate))
	if !p.more() || p.toks[p.i].quoted {
		return 0, p.errorf("expected a rate (e.g. 1mbit; units bit, kbit, mbit, gbit; %s)", lim)
	}
	t := p.toks[p.i].text
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(strings.ToLower(t), u.name)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil && !isRange(err) {
			break
		}
		if err != nil || n > stack.MaxNetRate/u.mult || n*u.mult < stack.MinNetRate {
			return 0, p.errorf("rate %s out of range: want %s", t, lim)
		}
		p.i++
		return n * u.mult, nil
	}
	return 0, p.errorf("expected a rate (e.g. 1mbit; units bit, kbit, mbit, gbit; %s), found %q", lim, t)
}
