package explain

import "time"

// StateChange is a state a side of a connection moved to, as the wire
// shows it (inferred), and the packet that showed it.
type StateChange struct {
	// Side is "client" or "server".
	Side string
	// Packet is the number of the packet that caused the change; Time is
	// its capture time.
	Packet int
	Time   time.Time
	// From and To are RFC 793 names; From is "" for the first state of a
	// side (a server's LISTEN is there from the start).
	From, To string
}

// StateChanges returns the states the two sides went through, in packet
// order, inferred from the wire, when the timeline was kept (see
// Segments); nil otherwise.
func (c *Conn) StateChanges() []StateChange {
	var out []StateChange
	i, j := 0, 0
	a, b := c.side[0].changes, c.side[1].changes
	for i < len(a) || j < len(b) {
		if j >= len(b) || (i < len(a) && a[i].Packet <= b[j].Packet) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

// WindowScale returns the window scale the side ("client" or "server")
// announced in its SYN, when both SYNs were seen and agreed on scaling;
// ok is false otherwise (the windows are then unscaled, or unknown).
func (c *Conn) WindowScale(role string) (shift int, ok bool) {
	s := &c.side[0]
	if role == "server" {
		s = &c.side[1]
	}
	if s.wscale < 0 || c.synAck == 0 {
		return 0, false
	}
	return int(s.wscale), true
}

// Base returns the side's first sequence number (its ISN, or the first
// one the capture shows): relative sequence numbers count from it.
func (c *Conn) Base(role string) uint32 {
	if role == "server" {
		return c.side[1].base
	}
	return c.side[0].base
}
