package scenario

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// Knob is one "config gvisor KEY VALUE" or "config kernel KEY VALUE"
// setting of a script.
type Knob struct {
	Pos Pos
	// Stack is "gvisor" or "kernel".
	Stack string
	// Key is the setting's name: a gVisor one (see stack.OptionKeys), or
	// a sysctl's full dotted name ("net.ipv4.tcp_rfc1337").
	Key string
	// Value as the stack takes it: for the kernel, the integer written
	// to /proc/sys.
	Value string
}

// String returns the setting as a scenario writes it.
func (k Knob) String() string { return fmt.Sprintf("config %s %s %s", k.Stack, k.Key, k.Value) }

// sysctl describes one kernel setting "config kernel" may change.
type sysctl struct {
	key     string // dotted, under /proc/sys
	lo, hi  int64
	seconds bool // takes a duration in whole seconds too ("5s")
	doc     string
}

// kernelKnobs are the Linux settings that matter for teardown, each per
// network namespace (so written in the lab's only), by short name.
var kernelKnobs = map[string]sysctl{
	"tcp_rfc1337":           {"net.ipv4.tcp_rfc1337", 0, 1, false, "1: a RST in TIME-WAIT is ignored (RFC 1337); 0 (default): it ends TIME-WAIT"},
	"tcp_abort_on_overflow": {"net.ipv4.tcp_abort_on_overflow", 0, 1, false, "1: a full accept queue answers the handshake's ACK with RST; 0 (default): drops it"},
	"tcp_fin_timeout":       {"net.ipv4.tcp_fin_timeout", 1, 86400, true, "orphaned FIN-WAIT-2 timeout, seconds (default 60)"},
	"tcp_keepalive_time":    {"net.ipv4.tcp_keepalive_time", 1, 86400, true, "idle time before the first keepalive probe, seconds (default 7200)"},
	"tcp_keepalive_intvl":   {"net.ipv4.tcp_keepalive_intvl", 1, 86400, true, "time between keepalive probes, seconds (default 75)"},
	"tcp_keepalive_probes":  {"net.ipv4.tcp_keepalive_probes", 1, 127, false, "unanswered probes before the connection is dropped (default 9)"},
	"tcp_syncookies":        {"net.ipv4.tcp_syncookies", 0, 2, false, "0 off, 1 when the SYN queue overflows (default), 2 always"},
	"tcp_tw_reuse":          {"net.ipv4.tcp_tw_reuse", 0, 2, false, "reuse TIME-WAIT ports for outgoing connections: 0 off, 1 on, 2 loopback only (default)"},
	"tcp_max_syn_backlog":   {"net.ipv4.tcp_max_syn_backlog", 1, 1 << 20, false, "half-open connections a listener may hold"},
	"somaxconn":             {"net.core.somaxconn", 1, 1 << 20, false, "cap on a listen backlog (per namespace since Linux 4.x; default 4096)"},
	"tcp_sack":              {"net.ipv4.tcp_sack", 0, 1, false, "selective acknowledgements (default 1)"},
	"tcp_timestamps":        {"net.ipv4.tcp_timestamps", 0, 2, false, "TCP timestamps: 0 off, 1 on with random offsets (default), 2 on without"},
	"tcp_window_scaling":    {"net.ipv4.tcp_window_scaling", 0, 1, false, "window scaling (default 1)"},
	"tcp_orphan_retries":    {"net.ipv4.tcp_orphan_retries", 0, 255, false, "retransmissions of an orphaned socket's FIN before it is dropped (0 means 8)"},
	"tcp_retries2":          {"net.ipv4.tcp_retries2", 1, 255, false, "retransmissions before an established connection times out (default 15)"},
}

// KernelKnobKeys returns the short names "config kernel" accepts, sorted.
func KernelKnobKeys() []string {
	keys := make([]string, 0, len(kernelKnobs))
	for k := range kernelKnobs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// kernelKnob finds a kernel setting by its short or dotted name.
func kernelKnob(name string) (short string, k sysctl, ok bool) {
	for short, k := range kernelKnobs {
		if name == short || name == k.key {
			return short, k, true
		}
	}
	return "", sysctl{}, false
}

// knob parses what follows "config gvisor" or "config kernel": KEY VALUE.
func (p *lineParser) knob(s *Script, stk string, start Pos) error {
	keyPos := p.pos()
	if !p.more() || p.toks[p.i].quoted {
		valid := stack.OptionKeys()
		if stk == "kernel" {
			valid = KernelKnobKeys()
		}
		return p.errorf("expected a %s setting (%s)", stackName(stk), strings.Join(valid, ", "))
	}
	key := strings.ToLower(p.toks[p.i].text)
	p.i++
	valPos := p.pos()
	if !p.more() || p.toks[p.i].quoted {
		return p.errorf("expected a value for %s", key)
	}
	val := p.toks[p.i].text
	p.i++
	k := Knob{Pos: start, Stack: stk, Key: key, Value: val}
	if stk == "gvisor" {
		if err := stack.CheckOption(stack.Option{Key: key, Value: val}); err != nil {
			at := valPos
			if _, known := stackKeyKnown(key); !known {
				at = keyPos
			}
			msg := err.Error()
			if _, known := stackKeyKnown(key); !known {
				if n := nearest(key, stack.OptionKeys()); n != "" {
					msg += fmt.Sprintf("; did you mean %q?", n)
				}
			}
			return &Error{at, msg}
		}
	} else {
		short, sk, ok := kernelKnob(key)
		if !ok {
			msg := fmt.Sprintf("unknown kernel setting %q; valid ones: %s", key, strings.Join(KernelKnobKeys(), ", "))
			if n := nearest(strings.TrimPrefix(key, "net.ipv4."), KernelKnobKeys()); n != "" {
				msg += fmt.Sprintf("; did you mean %q?", n)
			}
			return &Error{keyPos, msg}
		}
		n, err := sysctlValue(sk, val)
		if err != nil {
			return &Error{valPos, fmt.Sprintf("%s: %v", short, err)}
		}
		k.Key, k.Value = sk.key, strconv.FormatInt(n, 10)
	}
	for i, old := range s.Knobs {
		if old.Stack == k.Stack && old.Key == k.Key {
			return &Error{keyPos, fmt.Sprintf("%s %s set twice (first at line %d)", stk, key, s.Knobs[i].Pos.Line)}
		}
	}
	s.Knobs = append(s.Knobs, k)
	return p.end()
}

func stackKeyKnown(key string) (string, bool) {
	for _, k := range stack.OptionKeys() {
		if k == key {
			return k, true
		}
	}
	return "", false
}

func stackName(stk string) string {
	if stk == "kernel" {
		return "Linux kernel"
	}
	return "gVisor"
}

// sysctlValue reads a kernel setting's value: an integer in its range, or
// for a time in seconds a duration of whole seconds ("5s").
func sysctlValue(k sysctl, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && k.seconds {
		d, derr := time.ParseDuration(v)
		if derr == nil && d%time.Second == 0 {
			n, err = int64(d/time.Second), nil
		} else if derr == nil {
			return 0, fmt.Errorf("%s is not a whole number of seconds (the kernel counts in seconds)", v)
		}
	}
	if err != nil {
		unit := ""
		if k.seconds {
			unit = " (seconds, or a duration such as 5s)"
		}
		return 0, fmt.Errorf("want a number %d-%d%s, found %q", k.lo, k.hi, unit, v)
	}
	if n < k.lo || n > k.hi {
		return 0, fmt.Errorf("%d out of range: want %d-%d", n, k.lo, k.hi)
	}
	return n, nil
}

// checkKnobs checks what only the settings together can show: the
// retransmission timeout's bounds (at the last of them).
func (s *Script) checkKnobs() error {
	var last *Knob
	for i, k := range s.Knobs {
		if k.Stack == "gvisor" && (k.Key == "rto-min" || k.Key == "rto-max") {
			last = &s.Knobs[i]
		}
	}
	if last == nil {
		return nil
	}
	if _, _, err := stack.RTOBounds(s.GVisorOptions()); err != nil {
		return &Error{last.Pos, err.Error()}
	}
	return nil
}

// needs parses what follows "needs": exact-segments "why".
func (p *lineParser) needs(s *Script, start Pos) error {
	if _, err := p.want("a requirement", []string{"exact-segments"}); err != nil {
		return err
	}
	why, err := p.str("why the story depends on exact segment counts")
	if err != nil {
		return err
	}
	if s.ExactSegments != "" {
		return &Error{start, "needs exact-segments given twice"}
	}
	s.ExactSegments = why
	return p.end()
}

// HostConfig returns the gVisor hosts' configuration the script asks for:
// its TIME-WAIT and FIN-WAIT-2 timeouts and its "config gvisor" settings.
// Every lab that runs the script starts from it (the CLI, Simulate, the
// tests), so a setting cannot be forgotten on one path.
func (s *Script) HostConfig() stack.Config {
	return stack.Config{TimeWait: s.TimeWait, FinWait2Timeout: s.FinWait2, Options: s.GVisorOptions()}
}

// GVisorOptions returns the script's "config gvisor" settings for
// stack.Config.Options.
func (s *Script) GVisorOptions() []stack.Option {
	var out []stack.Option
	for _, k := range s.Knobs {
		if k.Stack == "gvisor" {
			out = append(out, stack.Option{Key: k.Key, Value: k.Value})
		}
	}
	return out
}

// KernelSettings returns the script's "config kernel" settings, as
// dotted sysctl names and values, in order.
func (s *Script) KernelSettings() [][2]string {
	var out [][2]string
	for _, k := range s.Knobs {
		if k.Stack == "kernel" {
			out = append(out, [2]string{k.Key, k.Value})
		}
	}
	return out
}

// noteKnobs records the script's settings in the trace, so that a reader
// knows what the run ran with: each gVisor setting on the gVisor hosts,
// and each kernel setting as written in the lab namespace, or as not
// applied when no kernel plays a side (a scenario is run both ways: the
// same file with and without --kernel).
func (r *runner) noteKnobs(s *Script) {
	gv := []string{}
	for _, h := range hosts {
		if h != r.lab.Kernel {
			gv = append(gv, h)
		}
	}
	for _, k := range s.Knobs {
		var text, host string
		switch {
		case k.Stack == "gvisor" && len(gv) > 0:
			host = gv[0]
			text = fmt.Sprintf("config gvisor %s %s: set on the gVisor stack of %s", k.Key, k.Value, strings.Join(gv, " and "))
		case k.Stack == "gvisor":
			continue
		case r.lab.Kernel != "":
			host = r.lab.Kernel
			text = fmt.Sprintf("config kernel %s = %s: written in the lab namespace (Linux plays the %s)", k.Key, k.Value, r.lab.Kernel)
		default:
			host = "client"
			text = fmt.Sprintf("config kernel %s = %s: not applied, no Linux kernel plays a side in this run (--kernel client|server)", k.Key, k.Value)
		}
		r.lab.Trace.Emit(trace.Event{Host: host, Kind: trace.Note, Text: text})
	}
	if s.ExactSegments != "" && r.opt.Net != nil {
		r.note("client", "this scenario needs exact segments ("+s.ExactSegments+"), and --net changes them")
	}
}
