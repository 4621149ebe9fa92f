package replay

import (
	"fmt"
	"time"

	"github.com/tcplab/tcplab/demo/explain"
)

// This file holds the stories a replay can only tell with calls that
// overlap: a close() while connect() is still pending, and a connect()
// that stays blocked because the listener's accept queue is full. The
// scenario language makes them with a non-blocking socket and background
// calls (see demo/scenario/background.go and sockets.go).

// closedConnecting reports whether the client's first segment after the
// server's SYN/ACK #synAck is a RST and it had not ACKed the SYN/ACK
// before: the client's socket was gone when the SYN/ACK came, most
// likely closed while connect() was still waiting (close() in SYN-SENT).
func closedConnecting(segs []explain.Segment, synAck, estPkt int) bool {
	if estPkt != 0 && estPkt < synAck {
		return false
	}
	for _, s := range segs {
		if s.N <= synAck || s.From != "client" {
			continue
		}
		return s.RST() && !s.SYN()
	}
	return false
}

// closeInSynSent writes the scenario of a client that closed its socket
// while its connect() was pending: a non-blocking connect(), EINPROGRESS,
// close(), and only then the SYN/ACK, which the client's stack answers
// with RST. The wire is held from before the SYN to after the close, so
// that the SYN/ACK can only come after it (in the capture it did).
func closeInSynSent(b *builder, segs []explain.Segment, port uint16, synPkt, synAck int) {
	var synT, ackT time.Duration
	var rst explain.Segment
	for _, s := range segs {
		switch {
		case s.N == synPkt:
			synT = s.T
		case s.N == synAck:
			ackT = s.T
		case s.N > synAck && s.From == "client" && s.RST() && rst.N == 0:
			rst = s
		}
	}
	b.add(0, "server", fmt.Sprintf("listen %d", port), "the server listened before the client's SYN")
	b.add(synT, "wire", "hold", fmt.Sprintf("keep #%d SYN in flight until the client has closed (the capture's #%d SYN/ACK met a closed socket)", synPkt, synAck))
	b.add(synT, "client", "socket as c", "the client's socket, made non-blocking so that connect() returns at once")
	b.add(synT, "client", "set nonblock on on c", "")
	b.add(synT, "client", fmt.Sprintf("connect server:%d on c  expect error EINPROGRESS", port), fmt.Sprintf("#%d SYN", synPkt))
	why := fmt.Sprintf("#%d SYN/ACK was never ACKed: #%d RST answered it; close() in SYN-SENT sends nothing", synAck, rst.N)
	b.add(synT, "client", "close on c", why)
	b.add(ackT, "wire", "release", fmt.Sprintf("#%d SYN/ACK now meets no socket", synAck))
	reason := "segment for a connection that no longer exists"
	if rst.Finding != nil {
		reason = rst.Finding.Reason
	}
	b.add(rst.T, "", "", fmt.Sprintf("#%d client [%s]: %s (the stack's answer; no call)", rst.N, rst.Flags, reason))
	b.notes = append(b.notes, fmt.Sprintf("#%d RST after #%d SYN/ACK with no ACK first: replayed as close() while a non-blocking connect() was pending; a client that crashed or was killed while connecting sends the same", rst.N, synAck))
}

// unanswered writes the scenario of a connection whose SYN got no answer
// at all: the client retransmits it and its connect() stays blocked. A
// listener whose accept queue is full drops SYNs that way (Linux with
// tcp_abort_on_overflow 0, and gVisor); so do a firewall and a host that
// is down, which the wire cannot tell apart. The replay fills a listener
// with backlog 1 with a connection of its own (a stand-in for what filled
// it: often the capture's other connections to the same port) and leaves
// the connect blocked in the background for as long as the capture lasts.
func unanswered(b *builder, segs []explain.Segment, port uint16, synPkt int) {
	var synT time.Duration
	n := 0
	for _, s := range segs {
		if s.From == "client" && s.SYN() && !s.ACK() {
			if n == 0 {
				synT = s.T
			}
			n++
		}
	}
	last := segs[len(segs)-1].T
	b.add(0, "server", fmt.Sprintf("listen %d backlog 1", port), "stand-in: a listener whose accept queue one connection fills")
	b.add(0, "client", fmt.Sprintf("connect server:%d as filler", port), "stand-in: fills the accept queue; not in this connection's capture")
	b.add(0, "client", fmt.Sprintf("connect server:%d as filler2 &", port), "stand-in: a Linux server drops only once its queue holds more than the backlog; gVisor's is full already and leaves this one blocked too")
	b.add(synT, "client", fmt.Sprintf("connect server:%d as c  expect blocked &", port), fmt.Sprintf("#%d SYN, sent %d time(s), never answered", synPkt, n))
	if last > synT {
		b.add(last, "note", fmt.Sprintf("%q", "the capture ends here, the SYN still unanswered"), fmt.Sprintf("#%d: its last packet; the connect stays blocked", segs[len(segs)-1].N))
	}
	b.notes = append(b.notes,
		fmt.Sprintf("#%d SYN got no answer (sent %d times): replayed as a listener with a full accept queue, filled by a stand-in connection (the capture may hold the real ones: other connections to port %d); a firewall dropping SYNs or a host that is down look the same on the wire", synPkt, n, port))
}
