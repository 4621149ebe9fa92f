package view

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcplab/tcplab/stack/trace"
)

// Options tune Load. The zero value keeps every connection, up to
// DefaultMaxItems rows.
type Options struct {
	// Conn keeps one connection of a capture: its number (as explain
	// numbers them, by first packet) or ADDR:PORT-ADDR:PORT, either order.
	// "" keeps all. A trace or tcplab pcapng ignores it (the page filters).
	Conn string
	// MaxItems is the most rows (events, packets) Load lays out; a bigger
	// input is an error that says to choose a connection. 0 means
	// DefaultMaxItems, <0 no limit.
	MaxItems int
}

// DefaultMaxItems is Options.MaxItems's default: about 120 MB of page data
// (and as much again in the browser), still smooth to scroll.
const DefaultMaxItems = 200_000

// Load reads a trace (JSON lines), a pcapng file tcplab wrote, or any
// capture from r (named name in errors and on the page), telling them
// apart by their first bytes, and lays it out for the page. r is read
// from its start; tcplab's own pcapng is read twice (once to recognise
// it), hence the Seeker. Cost: the whole input is held as items.
func Load(name string, r io.ReadSeeker, opt Options) (*Data, error) {
	d, err := load(name, r, opt)
	if err != nil {
		return nil, err
	}
	if limit := opt.max(); limit > 0 && len(d.Items) > limit {
		hint := "choose one connection with --conn N (tcplab explain " + name + " --summary counts them)"
		if d.Source != "capture" {
			hint = "cut the trace first"
		}
		return nil, fmt.Errorf("view: %s: %d rows, more than the page's limit of %d: %s", name, len(d.Items), limit, hint)
	}
	return d, nil
}

func (o Options) max() int {
	if o.MaxItems == 0 {
		return DefaultMaxItems
	}
	return o.MaxItems
}

func load(name string, r io.ReadSeeker, opt Options) (*Data, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(4)
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b,
		len(head) == 4 && isPcap(head):
		return loadCapture(name, br, opt)
	case bytes.Equal(head, []byte{0x0a, 0x0d, 0x0d, 0x0a}):
		ours, err := isTcplabPcapng(br)
		if err != nil {
			return nil, fmt.Errorf("view: %s: %w", name, err)
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("view: %s: rewind: %w", name, err)
		}
		br.Reset(r)
		if ours {
			return loadTcplabPcapng(name, br)
		}
		return loadCapture(name, br, opt)
	}
	events, err := ReadTrace(br)
	if err != nil {
		return nil, fmt.Errorf("view: %s: %w", name, err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("view: %s: no events: want a trace (tcplab run --format json), a pcapng tcplab wrote, or a pcap/pcapng capture", name)
	}
	return fromTrace(name, "trace", events, "the lab's own: what the stack's rule was when it sent the segment (observed by the tracer)", nil), nil
}

// isPcap reports whether b starts like a pcap file.
func isPcap(b []byte) bool {
	switch uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24 {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		return true
	}
	return false
}

// jsonEvent is the schema of trace.Event.MarshalJSON.
type jsonEvent struct {
	T         float64 `json:"t"`
	Host      string  `json:"host"`
	Kind      string  `json:"kind"`
	Conn      string  `json:"conn"`
	Dir       string  `json:"dir"`
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	Flags     string  `json:"flags"`
	Seq       uint32  `json:"seq"`
	Ack       uint32  `json:"ack"`
	Win       uint16  `json:"win"`
	Len       int     `json:"len"`
	Reason    string  `json:"reason"`
	Verdict   string  `json:"verdict"`
	VerdictBy string  `json:"verdict_by"`
	Why       string  `json:"why"`
	Evidence  string  `json:"evidence"`
	Data      string  `json:"data"`
	Call      string  `json:"call"`
	Arg       string  `json:"arg"`
	Ret       int     `json:"ret"`
	Err       string  `json:"err"`
	From      string  `json:"from"`
	To        string  `json:"to"`
	SndQueued int     `json:"snd_queued"`
	RcvQueued int     `json:"rcv_queued"`
	Text      string  `json:"text"`
}

// ReadTrace reads a trace as `tcplab run --format json` writes it: one
// JSON object per line (trace.Event.MarshalJSON); blank lines and lines
// starting with '#' (tcplab's comments) are skipped. It fails on the first
// line that is not such an object, naming it. Cost: the events in memory.
func ReadTrace(r io.Reader) ([]trace.Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 16<<20)
	var out []trace.Event
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		// A comment can follow an event on one line when stderr and
		// stdout were sent to one file.
		if i := bytes.Index(b, []byte("}#")); i > 0 {
			b = b[:i+1]
		}
		var j jsonEvent
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, fmt.Errorf("line %d is not a trace event (JSON lines as tcplab run --format json writes): %v", line, err)
		}
		if j.Kind == "" {
			return nil, fmt.Errorf("line %d: no \"kind\": not a tcplab trace event", line)
		}
		e := trace.Event{Index: len(out), T: time.Duration(math.Round(j.T * float64(time.Second))), Host: j.Host, Kind: trace.Kind(j.Kind), Conn: j.Conn,
			Dir: j.Dir, Src: j.Src, Dst: j.Dst, Flags: j.Flags, Seq: j.Seq, Ack: j.Ack, Win: j.Win, Len: j.Len, Reason: j.Reason,
			Verdict: j.Verdict, Observed: j.VerdictBy == "observed", Why: j.Why, Evidence: j.Evidence,
			Call: j.Call, Arg: j.Arg, Ret: j.Ret, Err: j.Err, From: j.From, To: j.To,
			SndQueued: j.SndQueued, RcvQueued: j.RcvQueued, Text: j.Text}
		if e.Kind == trace.Segment {
			e.Payload = []byte(j.Data)
		} else {
			e.Data = j.Data
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

// isTcplabPcapng reports whether the pcapng file r begins was written by
// tcplab (package demo/pcapng).
func isTcplabPcapng(r io.Reader) (bool, error) {
	ng, err := pcapgo.NewNgReader(r, pcapgo.NgReaderOptions{})
	if err != nil {
		return false, fmt.Errorf("bad pcapng header: %w", err)
	}
	return ng.SectionInfo().Application == "tcplab", nil
}

// loadTcplabPcapng reads a pcapng tcplab wrote back into segment events:
// the interface is the host, the packet comment gives the direction, the
// state and the reason (demo/pcapng.Comments), the bytes the rest. The
// state changes the comments record ("state A -> B") become state events
// after their packet, marked as taken from the comment.
func loadTcplabPcapng(name string, r io.Reader) (*Data, error) {
	ng, err := pcapgo.NewNgReader(r, pcapgo.NgReaderOptions{})
	if err != nil {
		return nil, fmt.Errorf("view: %s: bad pcapng header: %w", name, err)
	}
	var events []trace.Event
	var t0 time.Time
	var ip4 layers.IPv4
	var tcp layers.TCP
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &ip4, &tcp)
	parser.IgnoreUnsupported = true
	decoded := make([]gopacket.LayerType, 0, 2)
	scales := map[string]int{}
	state := map[string]string{} // host/tuple -> state the comments last gave
	n := 0
	for {
		data, ci, opts, err := ng.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("view: %s: packet %d: %w", name, n+1, err)
		}
		n++
		if n == 1 {
			t0 = ci.Timestamp
		}
		intf, err := ng.Interface(ci.InterfaceIndex)
		if err != nil {
			return nil, fmt.Errorf("view: %s: packet %d: %w", name, n, err)
		}
		decoded = decoded[:0]
		_ = parser.DecodeLayers(data, &decoded)
		if len(decoded) < 2 {
			continue // not TCP over IPv4: tcplab writes nothing else
		}
		e := trace.Event{T: ci.Timestamp.Sub(t0), Host: intf.Name, Kind: trace.Segment, Dir: "out",
			Src: fmt.Sprintf("%v:%d", ip4.SrcIP, tcp.SrcPort), Dst: fmt.Sprintf("%v:%d", ip4.DstIP, tcp.DstPort),
			Flags: flagString(&tcp), Seq: tcp.Seq, Ack: tcp.Ack, Win: tcp.Window, Len: len(tcp.Payload)}
		if len(tcp.Payload) > 0 {
			e.Payload = append([]byte(nil), tcp.Payload[:min(len(tcp.Payload), trace.PayloadPreview)]...)
		}
		if tcp.SYN {
			for _, o := range tcp.Options {
				if o.OptionType == layers.TCPOptionKindWindowScale && len(o.OptionData) == 1 {
					scales[e.Src] = int(o.OptionData[0])
				}
			}
		}
		var change *trace.Event
		for _, c := range opts.Comments {
			e.Text = c
			parseComment(c, &e)
			key := e.Host + "/" + tupleOf(e)
			if from, to, ok := commentState(c); ok && to != state[key] {
				if from == "" {
					from = state[key]
				}
				change = &trace.Event{T: e.T, Host: e.Host, Kind: trace.State, From: from, To: to, Text: "(from the packet comment)"}
				state[key] = to
			}
		}
		events = append(events, e)
		if change != nil {
			events = append(events, *change)
		}
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("view: %s: no TCP packets", name)
	}
	for i := range events {
		events[i].Index = i
	}
	// State events have no connection of their own: give them their
	// packet's, by host (a state follows the packet that shows it).
	d := fromTrace(name, "tcplab pcapng", assignConns(events), "tcplab's, from the packet comments the lab wrote (observed by its tracer)", scales)
	d.Notes = append(d.Notes, "A pcapng tcplab wrote: each segment as its host sent or received it (the packet's interface), with the host's state and the reason from the packet comment.")
	return d, nil
}

// assignConns gives every event a connection name: a segment that of its
// 4-tuple ("c1", "c2", … by first packet); a state event that of the
// segment before it on its host.
func assignConns(events []trace.Event) []trace.Event {
	names := map[string]string{}
	last := map[string]string{}
	for i := range events {
		e := &events[i]
		switch e.Kind {
		case trace.Segment:
			tu := tupleOf(*e)
			if names[tu] == "" {
				names[tu] = fmt.Sprintf("c%d", len(names)+1)
			}
			e.Conn = names[tu]
			last[e.Host] = e.Conn
		default:
			e.Conn = last[e.Host]
		}
	}
	return events
}

// parseComment reads what a tcplab packet comment says into e:
// "client out [F.] state FIN-WAIT-1; reason: …" or
// "server in [R.] state CLOSE-WAIT -> CLOSED; refused: … (inferred: …)".
func parseComment(c string, e *trace.Event) {
	f := strings.Fields(c)
	if len(f) >= 2 {
		for _, w := range f[1:3] {
			if w == "in" || w == "out" {
				e.Dir = w
			}
		}
	}
	if i := strings.Index(c, "; reason: "); i >= 0 {
		e.Reason = c[i+len("; reason: "):]
	}
	if i := strings.Index(c, "; refused: "); i >= 0 {
		e.Verdict = trace.Refused
		rest := c[i+len("; refused: "):]
		if j := strings.Index(rest, "; reason: "); j >= 0 {
			rest = rest[:j]
		}
		if j := strings.Index(rest, " ("); j >= 0 {
			e.Why, e.Evidence = rest[:j], strings.TrimSuffix(rest[j+2:], ")")
			e.Observed = strings.HasPrefix(e.Evidence, "observed")
		} else {
			e.Why = rest
		}
	}
}

// commentState returns the state a comment gives its host: after the
// packet ("state A -> B": from A, to B) or at it ("state A": to A).
func commentState(c string) (from, to string, ok bool) {
	i := strings.Index(c, " state ")
	if i < 0 {
		return "", "", false
	}
	s := c[i+len(" state "):]
	if j := strings.Index(s, ";"); j >= 0 {
		s = s[:j]
	}
	a, b, ok := strings.Cut(s, " -> ")
	if !ok {
		return "", strings.TrimSpace(s), s != ""
	}
	return strings.TrimSpace(a), strings.TrimSpace(b), true
}

// flagString formats TCP flags in tcpdump notation.
func flagString(t *layers.TCP) string {
	var b strings.Builder
	for _, f := range []struct {
		on bool
		c  byte
	}{{t.SYN, 'S'}, {t.FIN, 'F'}, {t.PSH, 'P'}, {t.RST, 'R'}, {t.URG, 'U'}, {t.ECE, 'E'}, {t.CWR, 'W'}} {
		if f.on {
			b.WriteByte(f.c)
		}
	}
	if t.ACK {
		b.WriteByte('.')
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
