package stack

import "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

// StateName returns the RFC 793 name of a gVisor TCP endpoint state, as
// returned by Endpoint.State: "ESTABLISHED", "FIN-WAIT-1", ... Endpoints that
// never connected or were torn down by an error are "CLOSED".
func StateName(s uint32) string {
	switch tcp.EndpointState(s) {
	case tcp.StateEstablished:
		return "ESTABLISHED"
	case tcp.StateSynSent:
		return "SYN-SENT"
	case tcp.StateSynRecv:
		return "SYN-RECEIVED"
	case tcp.StateFinWait1:
		return "FIN-WAIT-1"
	case tcp.StateFinWait2:
		return "FIN-WAIT-2"
	case tcp.StateTimeWait:
		return "TIME-WAIT"
	case tcp.StateClose, tcp.StateError, tcp.StateInitial, tcp.StateBound:
		return "CLOSED"
	case tcp.StateCloseWait:
		return "CLOSE-WAIT"
	case tcp.StateLastAck:
		return "LAST-ACK"
	case tcp.StateListen:
		return "LISTEN"
	case tcp.StateClosing:
		return "CLOSING"
	case tcp.StateConnecting:
		return "SYN-SENT"
	}
	return "CLOSED"
}
