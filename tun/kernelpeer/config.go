package kernelpeer

import (
	"errors"
	"fmt"
	"sync"
)

// Config tunes a Peer. The zero value observes the kernel with eBPF where
// the machine allows it.
type Config struct {
	// Sample turns the eBPF observer off: the kernel's side is then
	// sampled (segments mirrored from the other host, states and queues
	// from sock_diag every 5 ms, reasons inferred), as on a machine
	// without BPF. For comparisons and benchmarks.
	Sample bool
	// Adopt makes the peer follow every TCP connection and listener on its
	// address, not only those of its own sockets: for a program run inside
	// the lab namespace (tcplab exec), whose sockets the peer never sees.
	// Their segments, states, queues and the kernel's reasons are recorded
	// as for the peer's own; the program's calls are not (the reasons of
	// its FINs say which call is inferred).
	Adopt bool
	// Name is the Host of every event the peer records; "" means the
	// side it plays. A relay's two peers (tcplab exec --side middle)
	// record under one name, e.g. "relay".
	Name string
	// IDs numbers the connections and listeners the peer records; peers
	// that share a Name each take a lane of their own (see IDs), so that
	// their ids do not collide. Nil: c1, c2, c3, ....
	IDs *IDs
	// Leg makes the peer one of the two that record a relay run inside
	// the namespace (with Adopt): LegAccept follows the relay's listener
	// and the connections it accepts on the peer's address, LegConnect
	// only the connections the relay makes from the peer's address (it
	// adopts no listener). Either records only the program's calls on its
	// own sockets, so that no call is recorded twice. Zero: the peer
	// follows everything on its address and records every call.
	Leg Leg
}

// Leg says which of a relay's sockets a peer follows (Config.Leg).
type Leg int

// The legs of a relay.
const (
	LegAll     Leg = iota // not a relay: everything on the peer's address
	LegAccept             // the listener and the connections it accepts
	LegConnect            // the connections the program makes
)

// IDs hands out connection ids ("c1", "c2", ...) and listener ids ("l1",
// ...) to a peer (Config.IDs). Peers that record under one Name take one
// lane each out of Lanes, so that their ids never collide and do not depend
// on which peer sees its first connection first: lane 0 of 2 numbers c1,
// c3, c5, ..., lane 1 c2, c4, .... The zero value is the only lane, c1, c2,
// c3, ...; an IDs is safe for concurrent use. Cost: a mutex per id.
type IDs struct {
	// Lane is the peer's lane, from 0 to Lanes-1.
	Lane int
	// Lanes is how many peers share the name; 0 means 1.
	Lanes int

	mu           sync.Mutex
	conn, listen int
}

// next returns the next id of prefix "c" or "l".
func (n *IDs) next(prefix string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	v := &n.conn
	if prefix == "l" {
		v = &n.listen
	}
	*v++
	lanes := max(n.Lanes, 1)
	return fmt.Sprintf("%s%d", prefix, (*v-1)*lanes+n.Lane+1)
}

// errSampling is why a Peer samples when Config.Sample asks it to.
var errSampling = errors.New("kernelpeer: Config.Sample turned the eBPF observer off")
