package explain

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/stack/trace"
)

// Summary counts what a capture held.
type Summary struct {
	// File is the capture's name.
	File string `json:"file"`
	// Packets counts the file's packets; TCP those that were TCP
	// segments; Copies the second copies of one packet left out (a
	// capture on two interfaces, tcpdump -i any on a router).
	Packets int `json:"packets"`
	TCP     int `json:"tcp"`
	Copies  int `json:"copies"`
	// Conns counts connections.
	Conns int `json:"conns"`
	// Teardown, Zeek, RST and FIN count connections by teardown kind and
	// Zeek conn_state, and RSTs and FINs by cause class.
	Teardown map[string]int `json:"teardown"`
	Zeek     map[string]int `json:"zeek"`
	RST      map[string]int `json:"rst"`
	FIN      map[string]int `json:"fin"`
	// Confidence counts the findings by confidence.
	Confidence map[string]int `json:"confidence"`
	// Near counts connections by the side the capture seems near.
	Near map[string]int `json:"near"`
	// First and Last are the times of the first and last packet.
	First time.Time `json:"-"`
	Last  time.Time `json:"-"`
}

func (s *Summary) add(c *Conn) {
	if s.Teardown == nil {
		s.Teardown, s.Zeek, s.RST, s.FIN, s.Confidence, s.Near = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	}
	s.Conns++
	s.Copies += c.Dups
	s.Teardown[c.Teardown()]++
	s.Zeek[c.Zeek()]++
	near, _ := c.Near()
	s.Near[near]++
	for _, f := range c.Findings {
		if f.Kind == "RST" {
			s.RST[f.Class]++
		} else {
			s.FIN[f.Class]++
		}
		s.Confidence[f.Confidence]++
	}
}

// Analyze reads the capture r (named name in errors) to its end and hands
// every connection, explained, to done as soon as it is over (see
// Analyzer). keep keeps each connection's packets for Timeline. Cost: one
// pass over the file; memory for the connections still open (and, with
// keep, their packets).
func Analyze(name string, r io.Reader, keep bool, done func(*Conn)) (Summary, error) {
	return AnalyzeSome(name, r, func(*Conn) bool { return keep }, done)
}

// AnalyzeSome is Analyze keeping the packets of the connections keep
// selects when their first packet is seen (see Analyzer.Keep): a filter
// on a big capture keeps only what it shows. Its Conn has its number and
// addresses then, nothing more.
func AnalyzeSome(name string, r io.Reader, keep func(*Conn) bool, done func(*Conn)) (Summary, error) {
	sum := Summary{File: name}
	rd, err := NewReader(name, r)
	if err != nil {
		return sum, err
	}
	defer rd.Close()
	a := Analyzer{Keep: keep, Done: func(c *Conn) {
		sum.add(c)
		if done != nil {
			done(c)
		}
	}}
	for {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			a.Flush()
			sum.Packets, _ = rd.Packets()
			return sum, err
		}
		if sum.TCP == 0 {
			sum.First = p.Time
		}
		sum.TCP++
		sum.Last = p.Time
		a.Add(p)
	}
	a.Flush()
	sum.Packets, _ = rd.Packets()
	return sum, nil
}

// Options select what Run writes. The zero value writes the text timeline
// of every connection and the summary.
type Options struct {
	// Format is "text" (the default), "ladder" (tcplab's sequence
	// diagram of the selected connections, drawn by demo/render from
	// Conn.Events, then the summary) or "json" (JSON lines: a
	// "segment" line per packet, sequence numbers relative to each
	// side's ISN; a "finding" line after each FIN and RST, with the
	// packet's absolute numbers as on the wire; a "conn" line per
	// connection; a "summary" line at the end).
	Format string
	// Conn, when set, selects one connection: its number ("3") or its
	// ends ("198.18.1.2:44521-198.18.2.2:9527", either order).
	Conn string
	// OnlyResets shows only connections with a RST, and only RSTs'
	// reasons.
	OnlyResets bool
	// SummaryOnly leaves out the connections: the summary table only
	// (and no packet is kept, for big captures).
	SummaryOnly bool
	// SVG, if set, receives the SVG ladder of the selected connections
	// (demo/render's, from Conn.Events), whatever the Format.
	SVG io.Writer
	// Color colours the ladder (see render.ColorWanted).
	Color bool
}

// filter is a parsed Options.Conn.
type filter struct {
	n    int
	a, b netip.AddrPort
}

// ParseConn parses a --conn value: a connection number or ADDR:PORT-ADDR:PORT
// (IPv6 addresses in brackets).
func ParseConn(s string) (n int, a, b netip.AddrPort, err error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 {
			return 0, a, b, fmt.Errorf("--conn %s: connections are numbered from 1", s)
		}
		return n, a, b, nil
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			continue
		}
		x, err1 := netip.ParseAddrPort(s[:i])
		y, err2 := netip.ParseAddrPort(s[i+1:])
		if err1 == nil && err2 == nil {
			return 0, x, y, nil
		}
	}
	return 0, a, b, fmt.Errorf("--conn %q: want a connection number or ADDR:PORT-ADDR:PORT (e.g. 10.0.0.1:40000-10.0.0.2:80)", s)
}

// ConnFilter returns the test a --conn value (see ParseConn) makes of a
// connection; it needs only the connection's number and addresses, so it
// can choose at the first packet what to keep (AnalyzeSome).
func ConnFilter(s string) (func(*Conn) bool, error) {
	n, a, b, err := ParseConn(s)
	if err != nil {
		return nil, err
	}
	return filter{n: n, a: a, b: b}.match, nil
}

func (f filter) match(c *Conn) bool {
	if f.n != 0 {
		return c.N == f.n
	}
	if !f.a.IsValid() {
		return true
	}
	x, y := c.side[0].addr, c.side[1].addr
	return (x == f.a && y == f.b) || (x == f.b && y == f.a)
}

// Run explains the capture r (named name) and writes the result to w as
// opt says. It returns the summary; an error when the capture could not be
// read to its end (what was read before is written) or w failed.
func Run(name string, r io.Reader, w io.Writer, opt Options) (Summary, error) {
	var flt filter
	if opt.Conn != "" {
		n, a, b, err := ParseConn(opt.Conn)
		if err != nil {
			return Summary{}, err
		}
		flt = filter{n: n, a: a, b: b}
	}
	var werr error
	var events []trace.Event // for the ladder and the SVG
	matched := 0
	enc := json.NewEncoder(w)
	keep := func(c *Conn) bool { return !opt.SummaryOnly && flt.match(c) }
	sum, err := AnalyzeSome(name, r, keep, func(c *Conn) {
		t0 := c.Origin
		if opt.SummaryOnly || !flt.match(c) || werr != nil {
			return
		}
		if opt.OnlyResets && c.firstRS == 0 {
			return
		}
		matched++
		if opt.Format == "ladder" || opt.SVG != nil {
			events = append(events, c.Events()...)
		}
		if opt.Format == "ladder" {
			return
		}
		if opt.Format == "json" {
			werr = writeConnJSON(enc, c, t0, opt.OnlyResets)
		} else {
			werr = writeConnText(w, c, t0, opt.OnlyResets)
		}
	})
	if werr != nil {
		return sum, werr
	}
	if err == nil && opt.Conn != "" && matched == 0 {
		err = fmt.Errorf("explain: %s: no connection %s (the capture has %d)", name, opt.Conn, sum.Conns)
	}
	if len(events) > 0 {
		sort.SliceStable(events, func(i, j int) bool { return events[i].T < events[j].T })
		for i := range events {
			events[i].Index = i
		}
		if opt.Format == "ladder" && werr == nil {
			werr = render.Ladder(w, events, render.LadderOptions{Color: opt.Color})
		}
		if opt.SVG != nil && werr == nil {
			werr = render.SVG(opt.SVG, events, render.SVGOptions{Title: "tcplab explain " + name})
		}
	}
	if opt.Format == "json" {
		if e := enc.Encode(struct {
			Type string `json:"type"`
			Summary
		}{"summary", sum}); e != nil && werr == nil {
			werr = e
		}
	} else if e := writeSummaryText(w, sum); e != nil && werr == nil {
		werr = e
	}
	if err != nil {
		return sum, err
	}
	return sum, werr
}

// segText formats a packet like tcplab's timeline (tcpdump's words,
// sequence numbers relative to each side's ISN).
func (c *Conn) segText(r rec) string {
	s, o := &c.side[r.from], &c.side[1-r.from]
	var b strings.Builder
	fmt.Fprintf(&b, "%s > %s Flags [%s], seq %d", s.role, o.role, FlagString(r.flags), s.rel(r.seq))
	if r.len > 0 {
		fmt.Fprintf(&b, ":%d", s.rel(r.seq)+uint32(r.len))
	}
	if r.flags&flagACK != 0 {
		fmt.Fprintf(&b, ", ack %d", o.rel(r.ack))
	}
	fmt.Fprintf(&b, ", win %d, length %d", r.win, r.len)
	if r.re {
		b.WriteString(" (retransmission)")
	}
	if r.probe {
		b.WriteString(" (keepalive probe)")
	}
	if r.missed {
		b.WriteString(" (the capture lacks the bytes before it)")
	}
	return b.String()
}

func writeConnText(w io.Writer, c *Conn, t0 time.Time, onlyRST bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "conn %d  client %v  server %v\n", c.N, c.side[0].addr, c.side[1].addr)
	byPkt := map[int]*Finding{}
	for _, f := range c.Findings {
		byPkt[f.Packet] = f
	}
	for _, r := range c.recs {
		fmt.Fprintf(&b, "%10.6f %-6s c%-2d #%-4d %s\n", r.t.Sub(t0).Seconds(), c.side[r.from].role, c.N, r.n, c.segText(r))
		f := byPkt[r.n]
		if f == nil || (onlyRST && f.Kind != "RST") {
			continue
		}
		pad := strings.Repeat(" ", 11+7+4+6)
		fmt.Fprintf(&b, "%sreason: %s [%s]\n", pad, f.Reason, f.Confidence)
		fmt.Fprintf(&b, "%sevidence: %s\n", pad, evidenceText(f))
		if len(f.Alternatives) > 0 {
			fmt.Fprintf(&b, "%sor: %s\n", pad, strings.Join(f.Alternatives, "; or "))
		}
		fmt.Fprintf(&b, "%sstate: %s %s, %s %s\n", pad, f.From, f.State, other(f.From), f.PeerState)
	}
	cs, ss := c.States()
	near, why := c.Near()
	fmt.Fprintf(&b, "# teardown: %s (Zeek %s); end states: client %s, server %s\n", c.Teardown(), c.Zeek(), cs, ss)
	fmt.Fprintf(&b, "# capture near: %s (%s)\n", near, why)
	fmt.Fprintf(&b, "# bytes    sent   acked  retransmitted\n")
	for _, l := range c.Ledgers() {
		fmt.Fprintf(&b, "# %-6s %6d  %6d  %d segments, %d bytes", l.From, l.Sent, l.Acked, l.Retransmitted, l.RetransmittedBytes)
		if l.Missed > 0 {
			fmt.Fprintf(&b, "; %d bytes not in the capture", l.Missed)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// evidenceText is a finding's evidence: the packets, then what they show.
func evidenceText(f *Finding) string {
	if len(f.Evidence) == 0 {
		return f.Why
	}
	return refs(f.Evidence) + ": " + f.Why
}

func other(role string) string {
	if role == "client" {
		return "server"
	}
	return "client"
}

func writeConnJSON(enc *json.Encoder, c *Conn, t0 time.Time, onlyRST bool) error {
	byPkt := map[int]*Finding{}
	for _, f := range c.Findings {
		byPkt[f.Packet] = f
	}
	type segment struct {
		Type   string  `json:"type"`
		Conn   int     `json:"conn"`
		Packet int     `json:"packet"`
		T      float64 `json:"t"`
		From   string  `json:"from"`
		Flags  string  `json:"flags"`
		Seq    uint32  `json:"seq"`
		Ack    uint32  `json:"ack"`
		Win    uint16  `json:"win"`
		Len    int     `json:"len"`
	}
	type finding struct {
		Type string  `json:"type"`
		T    float64 `json:"t"`
		*Finding
	}
	for _, r := range c.recs {
		s, o := &c.side[r.from], &c.side[1-r.from]
		if err := enc.Encode(segment{"segment", c.N, r.n, r.t.Sub(t0).Seconds(), s.role, FlagString(r.flags), s.rel(r.seq), o.rel(r.ack), r.win, r.len}); err != nil {
			return err
		}
		if f := byPkt[r.n]; f != nil && (!onlyRST || f.Kind == "RST") {
			if err := enc.Encode(finding{"finding", f.Time.Sub(t0).Seconds(), f}); err != nil {
				return err
			}
		}
	}
	cs, ss := c.States()
	near, why := c.Near()
	return enc.Encode(struct {
		Type        string    `json:"type"`
		Conn        int       `json:"conn"`
		Client      string    `json:"client"`
		Server      string    `json:"server"`
		Packets     int       `json:"packets"`
		Copies      int       `json:"copies"`
		Teardown    string    `json:"teardown"`
		Zeek        string    `json:"zeek"`
		ClientState string    `json:"client_state"`
		ServerState string    `json:"server_state"`
		Near        string    `json:"near"`
		NearWhy     string    `json:"near_why"`
		Ledger      [2]Ledger `json:"ledger"`
	}{"conn", c.N, c.side[0].addr.String(), c.side[1].addr.String(), c.Packets, c.Dups, c.Teardown(), c.Zeek(), cs, ss, near, why, c.Ledgers()})
}

// sortedKeys returns m's keys, most frequent first.
func sortedKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	return ks
}

func writeSummaryText(w io.Writer, s Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# summary of %s: %d packets, %d TCP (%d second copies left out), %d connections, %.3f s\n",
		s.File, s.Packets, s.TCP, s.Copies, s.Conns, s.Last.Sub(s.First).Seconds())
	table := func(title string, m map[string]int) {
		if len(m) == 0 {
			return
		}
		fmt.Fprintf(&b, "# %-28s %6s\n", title, "count")
		for _, k := range sortedKeys(m) {
			fmt.Fprintf(&b, "#   %-26s %6d\n", k, m[k])
		}
	}
	table("teardown", s.Teardown)
	table("Zeek conn_state", s.Zeek)
	table("RST by cause", s.RST)
	table("FIN by cause", s.FIN)
	table("findings by confidence", s.Confidence)
	table("capture near", s.Near)
	_, err := io.WriteString(w, b.String())
	return err
}
