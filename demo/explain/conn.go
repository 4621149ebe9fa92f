package explain

import (
	"fmt"
	"net/netip"
	"time"
)

// seqLT and friends compare sequence numbers modulo 2^32 (RFC 793).
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
func seqLE(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool { return int32(a-b) > 0 }

// side is what the wire shows of one end of a connection.
type side struct {
	role string // "client" (sent the SYN) or "server"
	addr netip.AddrPort

	base     uint32 // the ISN, or the first seq seen: relative numbers start here
	baseSet  bool
	synPkt   int // packet number of its SYN (or SYN/ACK), 0 if none
	synTime  time.Time
	synAgain int // a SYN it sent again after the handshake

	nxt    uint32 // highest sequence number it has sent, plus one (SYN, data, FIN)
	nxtSet bool
	ack    uint32 // highest acknowledgement it has sent: what it has of the peer
	ackSet bool
	ackPkt int // the packet that first carried that ack

	wscale int8   // window scale from its SYN, -1 without
	win    uint32 // last advertised window, scaled
	maxWin uint32 // largest window advertised after the handshake, scaled

	fin      bool
	finSeq   uint32 // sequence number of its FIN
	finPkt   int
	finTime  time.Time
	finAck   uint32 // the ack its first FIN carried
	finAcked int    // packet of the peer that ACKed the FIN, 0 if none yet
	finF     *Finding

	rst    bool
	rstPkt int

	sent        int64 // payload bytes sent, each counted once
	retrans     int   // retransmitted segments (data or FIN below nxt)
	reBytes     int64 // retransmitted payload bytes
	tailRetrans int   // retransmissions since its last new data, unanswered so far
	firstTail   int   // the first packet of that run
	missed      int64 // sequence space it sent that the capture lacks (a gap before a later segment)
	pkts        int
	lastPkt     int
	lastTime    time.Time
	lastData    int    // its last packet that carried new data
	lastDataEnd uint32 // the sequence number after its last data

	ttl       uint8 // TTL of its first non-RST packet
	ttlSet    bool
	ttlVaries bool // its non-RST packets had different TTLs

	lastID  uint16 // IPv4 ID of its last non-RST packet
	idRun   int    // how many of its non-RST packets in a row had IDs a small step apart
	idBroke bool   // its IDs did not follow one counter

	probes     int           // keepalive probes in its latest run the peer has not answered
	firstProbe int           // the first of that run
	lastProbe  int           // its latest keepalive probe
	probeGap   time.Duration // the silence before the first probe of the run
	finGap     time.Duration // the silence before its first FIN

	ackedAfterFin []int // its packets that ACKed new data after its own FIN
	state         string
	prevState     string

	// With the timeline kept: the packet being booked, and the state
	// changes so far (see Conn.StateChanges).
	track   bool
	atPkt   int
	atTime  time.Time
	changes []StateChange
}

// rel returns seq relative to the side's base.
func (s *side) rel(seq uint32) uint32 { return seq - s.base }

// record notes, when the timeline is kept, that the side moves to st.
func (s *side) record(st string) {
	if s.track && s.state != st {
		s.changes = append(s.changes, StateChange{Side: s.role, Packet: s.atPkt, Time: s.atTime, From: s.state, To: st})
	}
}

// setState moves the side to state st.
func (s *side) setState(st string) {
	if s.state != st {
		s.record(st)
		s.prevState = s.state
		s.state = st
	}
}

// Finding is the explanation of one FIN or RST.
type Finding struct {
	// Conn is the connection's number, from 1, in order of first packet.
	Conn int `json:"conn"`
	// Packet is the FIN's or RST's number in the file, from 1.
	Packet int `json:"packet"`
	// Time is the packet's capture time.
	Time time.Time `json:"-"`
	// From is the side that sent it: "client" (the side that sent the
	// SYN) or "server"; Src and Dst are its addresses.
	From string `json:"from"`
	Src  string `json:"src"`
	Dst  string `json:"dst"`
	// Flags in tcpdump notation; Seq and Ack absolute, as on the wire.
	Flags string `json:"flags"`
	Seq   uint32 `json:"seq"`
	Ack   uint32 `json:"ack"`
	Len   int    `json:"len"`
	// Kind is "FIN" or "RST".
	Kind string `json:"kind"`
	// Reason is the most likely reason, in the words the lab uses for the
	// same rule; Class names its cause the way demo/diff compares reasons
	// ("data after close()", "unread data", "no connection", …,
	// "middlebox", "unknown").
	Reason string `json:"reason"`
	Class  string `json:"class"`
	// Confidence is "high", "medium" or "low"; "none" for unknown.
	Confidence string `json:"confidence"`
	// Evidence lists the earlier (or, for a FIN's cause, later) packets
	// the reason rests on, and Why says what they show.
	Evidence []int  `json:"evidence"`
	Why      string `json:"why"`
	// Alternatives are other causes the wire cannot rule out.
	Alternatives []string `json:"alternatives,omitempty"`
	// State and PeerState are the sender's and the receiver's states just
	// before it, inferred from the wire.
	State     string `json:"state"`
	PeerState string `json:"peer_state"`

	afterPeerFin bool // a FIN sent in CLOSE-WAIT
}

// Confidence values.
const (
	High   = "high"
	Medium = "medium"
	Low    = "low"
	None   = "none"
)

// rec is a packet of a connection kept for the timeline.
type rec struct {
	n        int
	t        time.Time
	from     uint8 // 0 client, 1 server
	flags    uint8
	seq, ack uint32
	win      uint16
	len      int
	re       bool // a retransmission
	missed   bool // the capture lacks sequence space before it
	probe    bool // a keepalive probe
}

// dupKey identifies a packet's copy: two copies of one packet captured at
// two points (two interfaces of a router, -i any) share it.
type dupKey struct {
	from     uint8
	flags    uint8
	seq, ack uint32
	win      uint16
	id       uint16
	len      int
}

// dupSeen is a recently seen packet.
type dupSeen struct {
	key   dupKey
	t     time.Time
	iface int
	ttl   uint8
}

// Conn is one TCP connection of a capture: the packets of one 4-tuple from
// a SYN (or from the first packet, when the capture starts mid-stream) to
// the next SYN that starts a new connection on it.
type Conn struct {
	// N is its number, from 1, in order of first packet.
	N    int
	side [2]side // the client (which sent the SYN) and the server
	// First and Last are the times of its first and last packet; Origin
	// is the time of the capture's first packet, the timeline's zero.
	First, Last, Origin time.Time
	// Packets counts its packets (copies of one packet counted once);
	// Dups counts the copies left out.
	Packets, Dups int
	// Findings are its FINs and RSTs, explained, in order.
	Findings []*Finding

	recs      []rec // kept when the timeline is wanted
	keep      bool  // keep its packets in recs
	recent    [8]dupSeen
	nrecent   int
	midSYN    bool // no SYN: the capture started mid-stream
	synAck    int  // packet of the server's SYN/ACK, 0 if none
	estab     int  // packet that completed the handshake, 0 if none
	estabTime time.Time
	lastIn    [2]int
	synRST    bool          // the SYN was answered by RST
	ended     bool          // both sides CLOSED or in TIME-WAIT
	firstRS   int           // the first RST's sender + 1, 0 for none
	gap       time.Duration // the silence before the packet being added
}

// Client returns the address of the side that sent the SYN.
func (c *Conn) Client() netip.AddrPort { return c.side[0].addr }

// Server returns the address of the side the SYN went to.
func (c *Conn) Server() netip.AddrPort { return c.side[1].addr }

// String names the connection: "198.18.1.2:44521-198.18.2.2:9527".
func (c *Conn) String() string { return fmt.Sprintf("%v-%v", c.side[0].addr, c.side[1].addr) }

// newConn starts connection n with its first packet p.
func newConn(n int, p Packet) *Conn {
	c := &Conn{N: n, First: p.Time}
	client, server := p.Src, p.Dst
	switch {
	case p.Flags&(flagSYN|flagACK) == flagSYN:
	case p.Flags&(flagSYN|flagACK) == flagSYN|flagACK:
		client, server = p.Dst, p.Src
		c.midSYN = true
	default:
		c.midSYN = true
		if p.Src.Port() < p.Dst.Port() { // a guess: the lower port is the service
			client, server = p.Dst, p.Src
		}
	}
	c.side[0] = side{role: "client", addr: client, wscale: -1}
	c.side[1] = side{role: "server", addr: server, wscale: -1}
	if !c.midSYN {
		c.side[1].state = "LISTEN"
	}
	return c
}

// isDup reports whether p is a second copy of a packet seen a moment ago
// at another capture point (another interface, or after a router: its
// TTL one less), and remembers p otherwise.
func (c *Conn) isDup(from uint8, p Packet) bool {
	k := dupKey{from: from, flags: p.Flags, seq: p.Seq, ack: p.Ack, win: p.Win, id: p.ID, len: p.Len}
	for i := 0; i < min(c.nrecent, len(c.recent)); i++ {
		r := &c.recent[i]
		if r.key == k && (r.iface != p.Iface || r.ttl != p.TTL) && p.Time.Sub(r.t) < 200*time.Millisecond {
			return true
		}
	}
	c.recent[c.nrecent%len(c.recent)] = dupSeen{key: k, t: p.Time, iface: p.Iface, ttl: p.TTL}
	c.nrecent++
	return false
}
