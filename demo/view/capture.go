package view

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tcplab/tcplab/demo/explain"
)

// loadCapture reads any capture with package explain and lays out its
// connections: every packet a row between the client's and the server's
// lane, each FIN and RST with explain's inferred reason, the states the
// wire shows, and the time-sequence series.
// With opt.Conn, only that connection is kept (the others are analysed
// and forgotten as they end).
func loadCapture(name string, r io.Reader, opt Options) (*Data, error) {
	keep := func(*explain.Conn) bool { return true }
	if opt.Conn != "" {
		n, a, b, err := explain.ParseConn(opt.Conn)
		if err != nil {
			return nil, fmt.Errorf("view: %w", err)
		}
		keep = func(c *explain.Conn) bool {
			if n != 0 {
				return c.N == n
			}
			x, y := c.Client(), c.Server()
			return (x == a && y == b) || (x == b && y == a)
		}
	}
	var conns []*explain.Conn
	kept, limit := 0, opt.max()
	sum, err := explain.Analyze(name, r, true, func(c *explain.Conn) {
		// Past the limit, only count: Load reports it.
		if keep(c) && (limit <= 0 || kept <= limit) {
			conns = append(conns, c)
			kept += c.Packets
		}
	})
	if err != nil {
		return nil, fmt.Errorf("view: %w", err)
	}
	if limit > 0 && kept > limit {
		return nil, fmt.Errorf("view: %s: more than %d packets in the connections chosen, the page's limit: choose one connection with --conn N (tcplab explain %s --summary counts them)", name, limit, name)
	}
	if len(conns) == 0 {
		if opt.Conn != "" {
			return nil, fmt.Errorf("view: %s: no connection %s (the capture has %d)", name, opt.Conn, sum.Conns)
		}
		return nil, fmt.Errorf("view: %s: no TCP connection in the capture (%d packets)", name, sum.Packets)
	}
	sort.Slice(conns, func(i, j int) bool { return conns[i].N < conns[j].N })
	origin := sum.First
	sec := func(t time.Time) float64 { return t.Sub(origin).Seconds() }
	d := &Data{File: name, Source: "capture"}

	type pkt struct {
		seg  explain.Segment
		conn int
	}
	var all []pkt
	for ci, c := range conns {
		role := [2]string{"client", "server"}
		addrs := [2]string{c.Client().String(), c.Server().String()}
		cs, ss := c.States()
		near, why := c.Near()
		dc := &Conn{ID: strconv.Itoa(c.N), Lanes: role, Addrs: addrs, First: sec(c.First), Last: sec(c.Last),
			Label: fmt.Sprintf("client %s ⇄ server %s", addrs[0], addrs[1])}
		dc.Summary = []Field{
			{"teardown", fmt.Sprintf("%s (Zeek %s)", c.Teardown(), c.Zeek())},
			{"end states", fmt.Sprintf("client %s, server %s (inferred from the wire)", cs, ss)},
			{"capture near", fmt.Sprintf("%s (%s)", near, why)},
			{"packets", fmt.Sprintf("%d (%d second copies left out)", c.Packets, c.Dups)},
		}
		for _, l := range c.Ledgers() {
			v := fmt.Sprintf("sent %d, acked %d, retransmitted %d segments (%d bytes)", l.Sent, l.Acked, l.Retransmitted, l.RetransmittedBytes)
			if l.Missed > 0 {
				v += fmt.Sprintf(", %d bytes not in the capture", l.Missed)
			}
			dc.Summary = append(dc.Summary, Field{"bytes from " + l.From, v})
		}
		dc.Dirs = [2]*Dir{{From: "client", To: "server", Segs: [][5]float64{}, Acks: [][4]float64{}},
			{From: "server", To: "client", Segs: [][5]float64{}, Acks: [][4]float64{}}}
		for i, r := range role {
			dir := dc.Dirs[1-i] // r's windows bound the other direction
			if s, ok := c.WindowScale(r); ok {
				dir.WScale, dir.WScaleBy = s, fmt.Sprintf("%d, from the %s's SYN (window scale option)", s, r)
			} else {
				dir.WScaleBy = "none: no window scale option on both SYNs in the capture (windows drawn as on the wire)"
			}
		}
		dc.States, dc.Buffers = []Band{}, []BufferPoint{}
		d.Conns = append(d.Conns, dc)
		for _, s := range c.Segments() {
			all = append(all, pkt{s, ci})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].seg.N < all[j].seg.N })

	byPkt := map[[2]int]*explain.Finding{}
	for ci, c := range conns {
		for _, f := range c.Findings {
			byPkt[[2]int{ci, f.Packet}] = f
		}
	}
	itemOf := map[[2]int]int{} // conn, packet -> item
	for _, p := range all {
		c, dc, s := conns[p.conn], d.Conns[p.conn], p.seg
		lane, other := 0, "server"
		if s.From == "server" {
			lane, other = 1, "client"
		}
		seq, ack := s.Seq, s.Ack // relative to each side's first sequence number
		flags := s.Flags
		it := &Item{I: len(d.Items), T: sec(s.Time), Kind: "segment", Conn: p.conn, Host: s.From, Lane: lane, Dir: "wire",
			Flags: flags, Label: segLabel(flags, seq, ack, s.Win, s.Len, nil), Arrive: -1, Of: -1}
		itemOf[[2]int{p.conn, s.N}] = it.I
		add := func(k, v string) {
			if v != "" {
				it.Fields = append(it.Fields, Field{k, v})
			}
		}
		add("packet", fmt.Sprintf("#%d in the file", s.N))
		add("time", fmt.Sprintf("%.6f s", it.T))
		add("connection", dc.ID)
		add("from", s.From)
		src, dst := dc.Addrs[lane], dc.Addrs[1-lane]
		add("src", src)
		add("dst", dst)
		add("flags", flags)
		add("seq", fmt.Sprintf("%d (relative %d)", seq+c.Base(s.From), seq))
		if s.ACK() {
			add("ack", fmt.Sprintf("%d (relative %d)", ack+c.Base(other), ack))
		}
		add("win", fmt.Sprintf("%d (as on the wire, unscaled)", s.Win))
		add("len", strconv.Itoa(s.Len))
		if s.Retrans {
			add("retransmission", "yes: it carries sequence space sent before")
			it.Label += " (retransmission)"
		}
		if s.Missed {
			add("missed", "the capture lacks sequence space before it")
		}
		if f := byPkt[[2]int{p.conn, s.N}]; f != nil {
			it.Reason = f.Reason
			it.ReasonBy = fmt.Sprintf("inferred from the wire by explain, confidence %s", f.Confidence)
			add("reason", f.Reason)
			add("reason from", it.ReasonBy)
			add("cause class", f.Class)
			var ev []string
			for _, n := range f.Evidence {
				ev = append(ev, "#"+strconv.Itoa(n))
			}
			add("evidence", strings.TrimSpace(strings.Join(ev, " ")+": "+f.Why))
			if len(f.Alternatives) > 0 {
				add("or", strings.Join(f.Alternatives, "; or "))
			}
			add("states before", fmt.Sprintf("%s %s, peer %s (inferred)", f.From, f.State, f.PeerState))
		}
		d.Items = append(d.Items, it)
		d.End = max(d.End, it.T)

		// The time-sequence series.
		dir := dc.Dirs[lane]
		syn, fin, rst := s.SYN(), s.FIN(), s.RST()
		if s.Len > 0 || syn || fin || rst {
			end := seq + uint32(s.Len)
			kind := segData
			switch {
			case rst:
				kind = segRST
			case syn:
				kind, end = segSYN, end+1
			case fin:
				kind, end = segFIN, end+1
			}
			if s.Retrans && kind == segData {
				kind = segRetrans
			}
			dir.Segs = append(dir.Segs, [5]float64{it.T, float64(it.I), float64(int32(seq)), float64(int32(end)), float64(kind)})
		}
		if s.ACK() && !rst {
			w := uint64(s.Win)
			od := dc.Dirs[1-lane]
			if !syn {
				w <<= uint(od.WScale)
			}
			od.Acks = append(od.Acks, [4]float64{it.T, float64(it.I), float64(int32(ack)), float64(int32(ack)) + float64(w)})
		}
	}

	// State bands, from the changes the wire shows.
	for ci, c := range conns {
		dc := d.Conns[ci]
		for _, ch := range c.StateChanges() {
			lane := 0
			if ch.Side == "server" {
				lane = 1
			}
			item := itemOf[[2]int{ci, ch.Packet}]
			if ch.From != "" && !hasBand(dc.States, lane) {
				dc.States = append(dc.States, Band{Lane: lane, State: ch.From, T0: dc.First, T1: sec(ch.Time), Item: -1})
			}
			dc.States = append(dc.States, Band{Lane: lane, State: ch.To, T0: sec(ch.Time), T1: -1, Item: item})
		}
		closeBands(dc.States, d.End)
	}
	d.Notes = append(d.Notes,
		fmt.Sprintf("A capture (%d packets, %d TCP, %d connections): each row is a packet on the wire. The states and the reasons of FINs and RSTs are inferred from the wire by tcplab explain (with a confidence); a capture shows no socket call and no buffer.", sum.Packets, sum.TCP, sum.Conns))
	return d, nil
}
