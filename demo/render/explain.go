package render

import (
	"strings"

	"github.com/tcplab/tcplab/stack/trace"
)

// Explain returns a one-line plain-language note for the important events
// of a trace, or "".
func Explain(e trace.Event) string {
	switch e.Kind {
	case trace.Call:
		switch {
		case e.Call == "write" && e.Err == "":
			return "write() returns once the bytes are in the send buffer, not when they leave or arrive"
		case e.Call == "read" && e.Err == "EOF":
			return "read() = 0: the peer's FIN was reached; nothing more will arrive"
		case e.Call == "read" && e.Err == "ECONNRESET":
			return "the peer reset the connection; unread data is gone"
		case e.Call == "write" && e.Err == "EPIPE":
			return "writing after the send side is closed (shutdown(SHUT_WR), or the peer's RST): EPIPE"
		case e.Call == "close":
			return "close() releases the socket; the stack finishes the connection on its own"
		case e.Call == "shutdown" && e.Arg == "SHUT_WR":
			return "half-close: FIN goes out after queued data, reading still works"
		case e.Call == "shutdown" && e.Arg == "SHUT_RD":
			return "SHUT_RD sends nothing to the peer; it only changes what read() returns locally"
		}
	case trace.State:
		switch e.To {
		case "FIN-WAIT-1":
			return "our FIN is queued or in flight, not yet acknowledged"
		case "FIN-WAIT-2":
			return "our FIN is acknowledged; waiting for the peer's FIN"
		case "CLOSE-WAIT":
			return "the peer sent FIN; this side may still send until it closes"
		case "LAST-ACK":
			return "both sides sent FIN; waiting for the ACK of ours"
		case "CLOSING":
			return "simultaneous close: both FINs crossed"
		case "TIME-WAIT":
			return "the side that closed first waits 2*MSL so late segments die out"
		}
	case trace.Segment:
		if e.Refused() {
			return "the stack dropped this segment: it changes nothing in the connection (data, sequence numbers, state)"
		}
		if e.Dir == "out" && strings.Contains(e.Flags, "R") {
			return "RST: the connection is aborted at once; the peer's reads and writes fail"
		}
	}
	return ""
}
