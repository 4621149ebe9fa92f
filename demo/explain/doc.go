// Package explain reads a capture of any TCP traffic (pcap or pcapng, as
// tcpdump and Wireshark write them, optionally gzip'd) and says, for every
// FIN and RST in it, the most likely reason it was sent, in the words tcplab
// uses for the same rule in its own stacks, with the evidence (earlier
// packets, by number) and a confidence; "unknown" with what is missing
// rather than a guess.
//
// # What it infers
//
// Per connection (a 4-tuple from its SYN to the next SYN on it): each
// side's TCP state as the wire shows it (RFC 793 names, as tcplab spells
// them), a byte ledger per direction (sent, ACKed, retransmitted), which
// side the capture seems near, the teardown (clean four-way, half-close
// then reset, abortive close, reset on SYN, unanswered FIN, still open)
// and Zeek's conn_state beside it. The reasons are inferred, never
// observed: the wire cannot show a socket call, only its consequences, and
// where two calls look alike on the wire (close() and shutdown(SHUT_WR)
// until the peer sends data) the finding says so and gives the
// alternatives. Rules: see Conn.explainRST and Conn.explainFIN; they
// include keepalive probes (a segment of 0 or 1 byte one below the next
// sequence number, nothing in flight) that went unanswered, and idle
// timeouts (a RST or FIN after a long silence).
//
// Conn.Segments and Conn.Events hand a connection's packets on: to
// tcplab replay (package demo/replay), and as trace events to
// demo/render's ladder and SVG (Options.Format "ladder", Options.SVG).
//
// Two copies of one packet (a capture on two interfaces, or tcpdump -i any
// on a router, which sees the forwarded copy one TTL lower) count once.
//
// # Cost
//
// One pass over the file, one packet in memory at a time; per open
// connection a few hundred bytes, plus 40 bytes per packet when the
// timeline is wanted (Options.SummaryOnly keeps none; Options.Conn keeps
// only the selected connection's, see AnalyzeSome). Connections that
// ended are handed on and forgotten after 30 s of capture time.
package explain
