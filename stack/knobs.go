package stack

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// Option is one gVisor stack setting by name ("sack" "off"), as a
// scenario's "config gvisor KEY VALUE" gives it. CheckOption validates
// one; Config.Options applies them when a Host is built.
type Option struct {
	Key, Value string
}

// String returns "KEY VALUE".
func (o Option) String() string { return o.Key + " " + o.Value }

// knob is one settable gVisor option: what values it takes and how it is
// set on a stack (or kept for each socket, the keepalive ones).
type knob struct {
	values string // for messages: "on|off", "a duration", ...
	doc    string
	check  func(v string) error
	apply  func(h *Host, v string) tcpip.Error
}

// NoGVisorKnob explains the settings people look for that gVisor (this
// version) does not have, so that a scenario asking for one is told why.
var NoGVisorKnob = map[string]string{
	"delayed-ack":    "gVisor acknowledges every segment at once (it has no delayed-ACK timer; TCP_QUICKACK is stored but unused)",
	"window-scaling": "gVisor always offers window scaling, its scale follows the receive buffer (set rcvbuf on the socket instead)",
	"timestamps":     "gVisor always offers TCP timestamps (RFC 7323) and uses them when the peer does",
	"backlog":        "gVisor has no stack-wide SYN backlog: a listener's queue is its listen backlog (listen PORT backlog N)",
	"keepalive":      "keepalive is a socket option: set keepalive on (the keepalive-idle, keepalive-interval and keepalive-count settings are its timers)",
}

func onOff(v string) error {
	if v != "on" && v != "off" {
		return fmt.Errorf("want on or off, found %q", v)
	}
	return nil
}

func durationValue(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("want a duration such as 200ms or 5s (more than 0, at most 24h), found %q", v)
	}
	return d, nil
}

func countValue(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want a number %d-%d, found %q", lo, hi, v)
	}
	return n, nil
}

func oneOf(v string, choices ...string) error {
	for _, c := range choices {
		if v == c {
			return nil
		}
	}
	return fmt.Errorf("want %s, found %q", strings.Join(choices, " or "), v)
}

func setOpt(h *Host, opt tcpip.SettableTransportProtocolOption) tcpip.Error {
	return h.s.SetTransportProtocolOption(tcp.ProtocolNumber, opt)
}

var gvisorKnobs = map[string]knob{
	"congestion-control": {values: "reno|cubic", doc: "congestion control of new connections (default reno)",
		check: func(v string) error { return oneOf(v, "reno", "cubic") },
		apply: func(h *Host, v string) tcpip.Error { o := tcpip.CongestionControlOption(v); return setOpt(h, &o) }},
	"sack": {values: "on|off", doc: "offer and use selective acknowledgements (RFC 2018; default on)", check: onOff,
		apply: func(h *Host, v string) tcpip.Error { o := tcpip.TCPSACKEnabled(v == "on"); return setOpt(h, &o) }},
	"nagle": {values: "on|off", doc: "Nagle's algorithm on new sockets (gVisor's default: off; Linux's: on; set nodelay per socket)", check: onOff,
		apply: func(h *Host, v string) tcpip.Error { o := tcpip.TCPDelayEnabled(v == "on"); return setOpt(h, &o) }},
	"moderate-receive-buffer": {values: "on|off", doc: "receive buffer auto-tuning (default on)", check: onOff,
		apply: func(h *Host, v string) tcpip.Error {
			o := tcpip.TCPModerateReceiveBufferOption(v == "on")
			return setOpt(h, &o)
		}},
	"rack": {values: "on|off", doc: "RACK loss detection (RFC 8985; default on)", check: onOff,
		apply: func(h *Host, v string) tcpip.Error {
			o := tcpip.TCPRecovery(0)
			if v == "on" {
				o = tcpip.TCPRACKLossDetection
			}
			return setOpt(h, &o)
		}},
	"rto-min": {values: "a duration", doc: "lower bound of the retransmission timeout (default 200ms)",
		check: func(v string) error { _, err := durationValue(v); return err },
		apply: func(h *Host, v string) tcpip.Error {
			d, _ := durationValue(v)
			o := tcpip.TCPMinRTOOption(d)
			return setOpt(h, &o)
		}},
	"rto-max": {values: "a duration", doc: "upper bound of the retransmission timeout (default 120s)",
		check: func(v string) error { _, err := durationValue(v); return err },
		apply: func(h *Host, v string) tcpip.Error {
			d, _ := durationValue(v)
			o := tcpip.TCPMaxRTOOption(d)
			return setOpt(h, &o)
		}},
	"max-retries": {values: "1-1000", doc: "retransmissions before a connection times out (Linux's tcp_retries2; default 15)",
		check: func(v string) error { _, err := countValue(v, 1, 1000); return err },
		apply: func(h *Host, v string) tcpip.Error {
			n, _ := countValue(v, 1, 1000)
			o := tcpip.TCPMaxRetriesOption(n)
			return setOpt(h, &o)
		}},
	"syn-retries": {values: "1-255", doc: "SYN retransmissions before connect() fails (default 6)",
		check: func(v string) error { _, err := countValue(v, 1, 255); return err },
		apply: func(h *Host, v string) tcpip.Error {
			n, _ := countValue(v, 1, 255)
			o := tcpip.TCPSynRetriesOption(n)
			return setOpt(h, &o)
		}},
	"tw-reuse": {values: "off|global|loopback", doc: "reuse a port held in TIME-WAIT for a new connection (default loopback)",
		check: func(v string) error { return oneOf(v, "off", "global", "loopback") },
		apply: func(h *Host, v string) tcpip.Error {
			o := map[string]tcpip.TCPTimeWaitReuseOption{"off": tcpip.TCPTimeWaitReuseDisabled, "global": tcpip.TCPTimeWaitReuseGlobal, "loopback": tcpip.TCPTimeWaitReuseLoopbackOnly}[v]
			return setOpt(h, &o)
		}},
	"syn-cookies": {values: "auto|always", doc: "answer every SYN with a SYN cookie (always) or only when the accept queue is full (auto, the default)",
		check: func(v string) error { return oneOf(v, "auto", "always") },
		apply: func(h *Host, v string) tcpip.Error {
			o := tcpip.TCPAlwaysUseSynCookies(v == "always")
			return setOpt(h, &o)
		}},
	"keepalive-idle": {values: "a duration", doc: "idle time before the first keepalive probe of a socket with keepalive on (default 2h)",
		check: func(v string) error { _, err := durationValue(v); return err },
		apply: func(h *Host, v string) tcpip.Error { h.keepalive.idle, _ = durationValue(v); return nil }},
	"keepalive-interval": {values: "a duration", doc: "time between keepalive probes (default 75s)",
		check: func(v string) error { _, err := durationValue(v); return err },
		apply: func(h *Host, v string) tcpip.Error { h.keepalive.interval, _ = durationValue(v); return nil }},
	"keepalive-count": {values: "1-127", doc: "unanswered probes before the connection times out (default 9)",
		check: func(v string) error { _, err := countValue(v, 1, 127); return err },
		apply: func(h *Host, v string) tcpip.Error { h.keepalive.count, _ = countValue(v, 1, 127); return nil }},
}

// OptionKeys returns the names CheckOption accepts, sorted.
func OptionKeys() []string {
	keys := make([]string, 0, len(gvisorKnobs))
	for k := range gvisorKnobs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// OptionHelp returns "KEY VALUES: what it does" for each key, sorted.
func OptionHelp() []string {
	var out []string
	for _, k := range OptionKeys() {
		out = append(out, fmt.Sprintf("%s %s: %s", k, gvisorKnobs[k].values, gvisorKnobs[k].doc))
	}
	return out
}

// CheckOption reports whether o names a gVisor setting with a valid value;
// the error says which keys or values are valid. It costs a map lookup.
func CheckOption(o Option) error {
	k, ok := gvisorKnobs[o.Key]
	if !ok {
		if why, ok := NoGVisorKnob[o.Key]; ok {
			return fmt.Errorf("gVisor has no setting %q: %s", o.Key, why)
		}
		return fmt.Errorf("unknown gVisor setting %q; valid ones: %s", o.Key, strings.Join(OptionKeys(), ", "))
	}
	if err := k.check(o.Value); err != nil {
		return fmt.Errorf("gVisor setting %s: %v", o.Key, err)
	}
	return nil
}

// keepaliveKnobs are the keepalive timers a Host gives each socket on
// which keepalive is turned on (gVisor keeps them per socket, not per
// stack); zero fields keep gVisor's defaults.
type keepaliveKnobs struct {
	idle, interval time.Duration
	count          int
}

// applyOptions sets opts on h's stack, in order, except that rto-min and
// rto-max are set together, in the order gVisor accepts (it refuses a
// minimum above the maximum in effect, and the other way round).
func (h *Host) applyOptions(opts []Option) error {
	var rto []Option
	for _, o := range opts {
		if err := CheckOption(o); err != nil {
			return err
		}
		if o.Key == "rto-min" || o.Key == "rto-max" {
			rto = append(rto, o)
			continue
		}
		if err := gvisorKnobs[o.Key].apply(h, o.Value); err != nil {
			return fmt.Errorf("set %s: %s", o, err)
		}
	}
	if lo, hi, err := RTOBounds(opts); err != nil {
		return err
	} else if len(rto) == 2 && lo > tcp.MaxRTO {
		rto[0], rto[1] = Option{"rto-max", hi.String()}, Option{"rto-min", lo.String()}
	} else if len(rto) == 2 {
		rto[0], rto[1] = Option{"rto-min", lo.String()}, Option{"rto-max", hi.String()}
	}
	for _, o := range rto {
		if err := gvisorKnobs[o.Key].apply(h, o.Value); err != nil {
			return fmt.Errorf("set %s: %s", o, err)
		}
	}
	return nil
}

// RTOBounds returns the retransmission timeout's bounds opts leave in
// effect (gVisor's defaults, 200ms and 120s, where they say nothing; the
// last setting wins), and an error when the minimum is above the maximum.
func RTOBounds(opts []Option) (lo, hi time.Duration, err error) {
	lo, hi = tcp.MinRTO, tcp.MaxRTO
	for _, o := range opts {
		switch o.Key {
		case "rto-min":
			lo, _ = durationValue(o.Value)
		case "rto-max":
			hi, _ = durationValue(o.Value)
		}
	}
	if lo > hi {
		return lo, hi, fmt.Errorf("gVisor's rto-min %s is above its rto-max %s (defaults 200ms and 120s)", lo, hi)
	}
	return lo, hi, nil
}

// KeepaliveSetter is a socket whose SO_KEEPALIVE can be set (the gVisor
// Conn and the kernel peer's sockets).
type KeepaliveSetter interface {
	SetKeepalive(on bool) error
}

var _ KeepaliveSetter = (*Conn)(nil)

// SetKeepalive sets SO_KEEPALIVE, with the host's keepalive timers
// (Config.Options keepalive-idle, -interval, -count) when on.
func (c *Conn) SetKeepalive(on bool) error {
	ka := c.h.keepalive
	arg := fmt.Sprintf("SO_KEEPALIVE=%v", on)
	if on && ka != (keepaliveKnobs{}) {
		arg += fmt.Sprintf(" (TCP_KEEPIDLE %s, TCP_KEEPINTVL %s, TCP_KEEPCNT %d)", orDefault(ka.idle, tcp.DefaultKeepaliveIdle), orDefault(ka.interval, tcp.DefaultKeepaliveInterval), orDefaultN(ka.count, tcp.DefaultKeepaliveCount))
	}
	done := c.call("setsockopt", arg)
	ep := c.ep.Load()
	var err tcpip.Error
	if on {
		if ka.idle > 0 {
			o := tcpip.KeepaliveIdleOption(ka.idle)
			err = ep.SetSockOpt(&o)
		}
		if ka.interval > 0 && err == nil {
			o := tcpip.KeepaliveIntervalOption(ka.interval)
			err = ep.SetSockOpt(&o)
		}
		if ka.count > 0 && err == nil {
			err = ep.SetSockOptInt(tcpip.KeepaliveCountOption, ka.count)
		}
	}
	if err != nil {
		e := fmt.Errorf("stack: set keepalive timers: %s", err)
		done(0, e, nil)
		return e
	}
	ep.SocketOptions().SetKeepAlive(on)
	done(0, nil, nil)
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func orDefaultN(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
