package explain

import (
	"bytes"
	"strings"
	"testing"
)

// The timeline of the close experiment: every packet once, in order, with
// its sender and relative numbers; the states both sides went through; the
// window scale both SYNs agreed on.
func TestTimeline(t *testing.T) {
	cs, _ := analyze(t, pcapOf(t, linkEthernet, closeConv))
	c := cs[0]
	segs := c.Segments()
	if len(segs) != len(closeConv.pkts) || len(segs) != c.Packets {
		t.Fatalf("%d segments, want %d (Packets %d)", len(segs), len(closeConv.pkts), c.Packets)
	}
	for i, s := range segs {
		p := closeConv.pkts[i]
		from, base := "client", closeConv.cisn
		if p.fromServer {
			from, base = "server", closeConv.sisn
		}
		if s.N != i+1 || s.From != from || s.Bits != p.flags || s.Seq != p.seq || s.Seq+c.Base(from) != base+p.seq || s.Len != p.len {
			t.Errorf("segment %d = %+v, want packet #%d from %s flags %s seq %d len %d", i, s, i+1, from, FlagString(p.flags), p.seq, p.len)
		}
	}
	var client, server []string
	for _, ch := range c.StateChanges() {
		if ch.Side == "client" {
			client = append(client, ch.To)
		} else {
			server = append(server, ch.From+">"+ch.To)
		}
		if ch.Packet < 1 || ch.Packet > len(segs) || !ch.Time.Equal(segs[ch.Packet-1].Time) {
			t.Errorf("change %+v: not at one of the packets' times", ch)
		}
	}
	if got, want := strings.Join(client, " "), "SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 CLOSED"; got != want {
		t.Errorf("client states %q, want %q", got, want)
	}
	if got, want := strings.Join(server, " "), "LISTEN>SYN-RECEIVED SYN-RECEIVED>ESTABLISHED ESTABLISHED>CLOSE-WAIT CLOSE-WAIT>CLOSED"; got != want {
		t.Errorf("server states %q, want %q", got, want)
	}
	for _, role := range []string{"client", "server"} {
		if s, ok := c.WindowScale(role); !ok || s != 7 {
			t.Errorf("WindowScale(%s) = %d, %v; want 7, true", role, s, ok)
		}
	}
	// Without the timeline kept, nothing is.
	var bare []*Conn
	if _, err := Analyze("x", bytes.NewReader(pcapOf(t, linkEthernet, closeConv)), false, func(c *Conn) { bare = append(bare, c) }); err != nil {
		t.Fatal(err)
	}
	if len(bare[0].Segments()) != 0 || bare[0].StateChanges() != nil {
		t.Errorf("without keep: %d segments, %d changes", len(bare[0].Segments()), len(bare[0].StateChanges()))
	}
	// A refused SYN: no scaling.
	cs, _ = analyze(t, pcapOf(t, linkEthernet, refusedConv))
	if _, ok := cs[0].WindowScale("client"); ok {
		t.Error("WindowScale on a connection that never had a SYN/ACK")
	}
}
