package explain

import (
	"fmt"
	"time"
)

// Teardown kinds.
const (
	TeardownClean       = "clean four-way"
	TeardownHalfReset   = "half-close then reset"
	TeardownAbortive    = "abortive close"
	TeardownResetOnSYN  = "reset on SYN"
	TeardownUnansweredF = "unanswered FIN"
	TeardownUnansweredS = "unanswered SYN"
	TeardownOpen        = "still open"
	TeardownMidstream   = "no handshake seen"
)

// finish settles what needs the whole connection: the causes of its FINs.
func (c *Conn) finish() {
	for i := range c.side {
		c.explainFIN(&c.side[i])
	}
}

// Teardown names how the connection ended, in tcplab's words.
func (c *Conn) Teardown() string {
	cl, sv := &c.side[0], &c.side[1]
	fin := cl.fin || sv.fin
	switch {
	case c.synRST:
		return TeardownResetOnSYN
	case c.firstRS != 0 && fin:
		return TeardownHalfReset
	case c.firstRS != 0:
		return TeardownAbortive
	case cl.fin && sv.fin:
		return TeardownClean
	case fin:
		return TeardownUnansweredF
	case !c.midSYN && c.synAck == 0:
		return TeardownUnansweredS
	case c.midSYN && c.estab == 0 && c.synAck == 0:
		return TeardownMidstream
	}
	return TeardownOpen
}

// Zeek returns Zeek's conn_state for the connection (S0, S1, SF, REJ, S2,
// S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH), the originator being the
// client (the side that sent the SYN).
func (c *Conn) Zeek() string {
	cl, sv := &c.side[0], &c.side[1]
	synSeen := cl.synPkt != 0 && !c.midSYN
	established := c.synAck != 0 && synSeen
	switch {
	case !synSeen && c.synAck != 0 && sv.rst:
		return "RSTRH"
	case !synSeen && c.synAck != 0 && sv.fin:
		return "SHR"
	case !synSeen:
		return "OTH"
	case c.synRST:
		return "REJ"
	case !established && cl.rst:
		return "RSTOS0"
	case !established && cl.fin:
		return "SH"
	case !established:
		return "S0"
	case c.firstRS == 1:
		return "RSTO"
	case c.firstRS == 2:
		return "RSTR"
	case cl.fin && sv.fin:
		return "SF"
	case cl.fin:
		return "S2"
	case sv.fin:
		return "S3"
	}
	return "S1"
}

// States returns the client's and the server's states at the end of the
// capture, inferred from the wire.
func (c *Conn) States() (client, server string) {
	st := func(s *side) string {
		if s.state == "" {
			return "?"
		}
		return s.state
	}
	return st(&c.side[0]), st(&c.side[1])
}

// Near says which side the capture seems to have been taken near, and why:
// the handshake's two halves as the capture saw them (SYN to SYN/ACK is
// the round trip beyond the capture point towards the server, SYN/ACK to
// ACK the one towards the client), then the TTLs against the usual initial
// values (64, 128, 255).
func (c *Conn) Near() (where, why string) {
	cl, sv := &c.side[0], &c.side[1]
	if cl.synPkt != 0 && c.synAck != 0 && c.estab != 0 {
		toServer := sv.synTime.Sub(cl.synTime)
		toClient := c.estabTime.Sub(sv.synTime)
		why = fmt.Sprintf("SYN→SYN/ACK %s, SYN/ACK→ACK %s", dur(toServer), dur(toClient))
		switch {
		case toServer > 4*toClient && toServer-toClient > 200*time.Microsecond:
			return "client", why
		case toClient > 4*toServer && toClient-toServer > 200*time.Microsecond:
			return "server", why
		}
	}
	hc, hs := hops(cl.ttl), hops(sv.ttl)
	ttlOf := func(s *side, h int) string {
		if !s.ttlSet {
			return s.role + " ? (only RSTs)"
		}
		return fmt.Sprintf("%s %d (%d hops)", s.role, s.ttl, h)
	}
	ttl := "TTL " + ttlOf(cl, hc) + ", " + ttlOf(sv, hs)
	if why != "" {
		why += "; " + ttl
	} else {
		why = ttl
	}
	switch {
	case !cl.ttlSet || !sv.ttlSet:
		return "unknown", why
	case hc < hs:
		return "client", why
	case hs < hc:
		return "server", why
	}
	return "between", why
}

// hops guesses how many routers a packet crossed from its TTL and the
// usual initial TTLs.
func hops(ttl uint8) int {
	for _, init := range []int{32, 64, 128, 255} {
		if int(ttl) <= init {
			return init - int(ttl)
		}
	}
	return 0
}

// dur formats a duration in milliseconds.
func dur(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

// Ledger is one direction's bytes, from the wire.
type Ledger struct {
	// From is "client" or "server".
	From string `json:"from"`
	// Sent counts payload bytes, each once; Acked those the peer ACKed.
	Sent  int64 `json:"sent"`
	Acked int64 `json:"acked"`
	// Retransmitted counts segments sent again and their payload bytes.
	Retransmitted      int   `json:"retransmitted"`
	RetransmittedBytes int64 `json:"retransmitted_bytes"`
	// Missed counts sequence space the capture lacks: gaps before later
	// segments (the capture dropped them, or they took another path).
	Missed int64 `json:"missed"`
}

// Ledgers returns the client's and the server's ledgers.
func (c *Conn) Ledgers() [2]Ledger {
	var out [2]Ledger
	for i := range c.side {
		s, o := &c.side[i], &c.side[1-i]
		l := Ledger{From: s.role, Sent: s.sent, Retransmitted: s.retrans, RetransmittedBytes: s.reBytes, Missed: s.missed}
		if o.ackSet && s.baseSet {
			// Acked data: the peer's ack, less the SYN and, once ACKed, the FIN.
			a := int64(int32(o.ack - s.base))
			if s.synPkt != 0 || !c.midSYN {
				a--
			}
			if s.fin && seqGE(o.ack, s.finSeq+1) {
				a--
			}
			l.Acked = max(0, min(a, s.sent))
			if c.midSYN && s.synPkt == 0 {
				l.Acked = min(max(0, a+1), s.sent)
			}
		}
		out[i] = l
	}
	return out
}
