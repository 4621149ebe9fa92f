package stack

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Direction is one direction of a wire.
type Direction int

// The two directions of a lab's wire.
const (
	ClientToServer Direction = iota
	ServerToClient
)

// String returns "client->server" or "server->client".
func (d Direction) String() string {
	if d == ServerToClient {
		return "server->client"
	}
	return "client->server"
}

// From returns the host that sends in direction d.
func (d Direction) From() string {
	if d == ServerToClient {
		return "server"
	}
	return "client"
}

// To returns the host that receives in direction d.
func (d Direction) To() string {
	if d == ServerToClient {
		return "client"
	}
	return "server"
}

// Limits of Conditions (see Conditions.Validate).
const (
	// MaxNetDelay bounds Conditions.Delay and Conditions.Jitter: 10 s.
	MaxNetDelay = 10 * time.Second
	// MinNetRate and MaxNetRate bound Conditions.Rate: 1 kbit/s to
	// 100 Gbit/s.
	MinNetRate = 1000
	MaxNetRate = 100_000_000_000
)

// Conditions are what the network does to the packets of one direction of
// a wire, modelled on Linux's netem qdisc (tc-netem(8)): each packet is
// lost with probability Loss; otherwise it is delayed by Delay plus a
// uniform jitter in [-Jitter, +Jitter] (never below 0, which may reorder
// packets), except that with probability Reorder it skips the delay (so it
// overtakes the packets before it); it is duplicated with probability
// Duplicate and has one bit flipped with probability Corrupt; and with
// Rate set it leaves no faster than Rate bits per second. Probabilities
// are percentages, 0-100. The zero value is a perfect wire.
type Conditions struct {
	Loss      float64       // percent of packets lost
	Delay     time.Duration // fixed one-way delay added
	Jitter    time.Duration // uniform variation of Delay, ±
	Reorder   float64       // percent of packets sent at once, ahead of the delayed ones (needs Delay)
	Duplicate float64       // percent of packets sent twice
	Corrupt   float64       // percent of packets with one bit flipped
	Rate      uint64        // bits per second; 0: unlimited
}

// IsZero reports whether c changes nothing.
func (c Conditions) IsZero() bool { return c == Conditions{} }

// Validate returns an error naming the first value out of its range:
// percentages 0-100, delay and jitter 0-10 s, a rate of 0 (unlimited) or
// 1 kbit/s to 100 Gbit/s, and a jitter or a reorder without a delay.
func (c Conditions) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", c.Loss}, {"reorder", c.Reorder}, {"duplicate", c.Duplicate}, {"corrupt", c.Corrupt}} {
		if !(p.v >= 0 && p.v <= 100) {
			return fmt.Errorf("%s %g%% out of range: want 0%%-100%%", p.name, p.v)
		}
	}
	if c.Delay < 0 || c.Delay > MaxNetDelay {
		return fmt.Errorf("delay %s out of range: want 0-%s", c.Delay, MaxNetDelay)
	}
	if c.Jitter < 0 || c.Jitter > MaxNetDelay {
		return fmt.Errorf("jitter %s out of range: want 0-%s", c.Jitter, MaxNetDelay)
	}
	if c.Rate != 0 && (c.Rate < MinNetRate || c.Rate > MaxNetRate) {
		return fmt.Errorf("rate %s out of range: want %s-%s", FormatRate(c.Rate), FormatRate(MinNetRate), FormatRate(MaxNetRate))
	}
	if c.Jitter > 0 && c.Delay == 0 {
		return errors.New("jitter needs a delay: it varies the delay (add delay D)")
	}
	if c.Reorder > 0 && c.Delay == 0 {
		return errors.New("reorder needs a delay: the reordered packets are the ones that skip it (add delay D)")
	}
	return nil
}

// String writes c in the .lab language's words, e.g. "loss 5% delay
// 100ms jitter 10ms", or "clear" for the zero value.
func (c Conditions) String() string {
	var w []string
	pct := func(name string, v float64) {
		if v != 0 {
			w = append(w, name+" "+strconv.FormatFloat(v, 'f', -1, 64)+"%")
		}
	}
	pct("loss", c.Loss)
	if c.Delay != 0 {
		w = append(w, "delay "+c.Delay.String())
	}
	if c.Jitter != 0 {
		w = append(w, "jitter "+c.Jitter.String())
	}
	pct("reorder", c.Reorder)
	pct("duplicate", c.Duplicate)
	pct("corrupt", c.Corrupt)
	if c.Rate != 0 {
		w = append(w, "rate "+FormatRate(c.Rate))
	}
	if len(w) == 0 {
		return "clear"
	}
	return strings.Join(w, " ")
}

// FormatRate writes a rate in bits per second as tc does: 1500 as
// "1500bit", 2000000 as "2mbit".
func FormatRate(bps uint64) string {
	for _, u := range []struct {
		n    uint64
		name string
	}{{1e9, "gbit"}, {1e6, "mbit"}, {1e3, "kbit"}} {
		if bps >= u.n && bps%u.n == 0 {
			return strconv.FormatUint(bps/u.n, 10) + u.name
		}
	}
	return strconv.FormatUint(bps, 10) + "bit"
}

// Conditioner is a Wire that can impose Conditions on each direction (the
// memory wire in virtual time, and the TUN wire through the kernel's
// netem). SetConditions replaces the conditions of dir; the zero value
// removes them. It fails when c is invalid (see Conditions.Validate) or
// the wire cannot apply it.
type Conditioner interface {
	SetConditions(dir Direction, c Conditions) error
}
