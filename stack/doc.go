// Package stack provides the hosts of a tcplab lab: each Host is one gVisor
// netstack with one NIC on a Wire, driven through a socket-like API (Listen,
// Accept, Dial, Write, Read, Shutdown, Close, SetLinger) and instrumented so
// that everything the stack does lands in one ordered trace.Recorder.
//
// # Instrumentation
//
// Four sources feed the trace, all keyed to the connection they concern:
//
//   - a tap link endpoint wrapping the wire's endpoint: every TCP segment in
//     and out, in tcpdump notation, with the reason for every FIN and RST it
//     sends (see reason.go);
//   - the socket-like API: every call with its argument, result and errno;
//   - TCP state: sampled atomically (Endpoint.State) after every call, around
//     every segment, from the tcp.NewProtocolProbe callback after every
//     received segment, from the endpoint's waiter queue, and by a poller that
//     catches timer-driven transitions (TIME-WAIT expiry, FIN-WAIT-2 timeout);
//   - buffer levels: bytes written but not acknowledged and bytes received but
//     not read, from the probe snapshot and after each call.
//
// # Verdicts on arrivals
//
// Every segment a host receives carries the stack's verdict (trace.Event
// Verdict, Why, Observed, Evidence): accepted, or refused and why. Only
// accepted arrivals count: the connection's Ledger, the initial sequence
// number it learns, the facts the reasons of its FINs and RSTs rest on, and
// the renderers' relative sequence numbers ignore refused ones. The tap
// serialises arrivals and handles each in three steps (verdict.go):
//
//  1. Before the stack sees the packet (Host.arrive): the tap parses it; a
//     TCP header that does not fit in the IPv4 packet, or a checksum that
//     does not verify (recomputed as gVisor does), predicts a refusal. It
//     looks the 4-tuple up in the stack's demuxer (FindTransportEndpoint):
//     no endpoint means "no connection". Otherwise it applies gVisor's
//     rules for the endpoint's state (EndpointState, atomic) to the
//     segment, against RCV.NXT and the receive window as last observed:
//     RCV.NXT from the probe's snapshot (Receiver.RcvNxt), the ACK of the
//     host's last segment and the in-order arrivals it predicted accepted;
//     the window from the host's last segment, scaled by the probe's
//     RcvWndScale. The rules are transport/tcp's: handleReset (a RST out of
//     the window is dropped; inside it but not at RCV.NXT it gets an RFC
//     5961 challenge ACK), a SYN in a synchronized state (challenge ACK),
//     receiver.acceptable with header.Acceptable (out of the window:
//     dropped and answered with an ACK; "duplicate" when the data lies
//     wholly before RCV.NXT), handleRcvdSegmentClosing (after the peer's
//     FIN; an ACK of unsent data) and handleTimeWaitSegment (every RST
//     ignored; only RCV.NXT acceptable); in a handshake, synSentState (a
//     RST must acknowledge our SYN; a wrong ACK gets a RST) and
//     synRcvdState (window, ACK of our SYN; SYN cookies are assumed
//     absent); at a listener, a RST or a SYN-ACK is refused and the rest
//     accepted (tcplab cannot see a full accept queue). The event then
//     takes its place in the trace, open (trace.Recorder.Open), so that
//     whatever the stack sends in answer comes after it.
//  2. The stack's synchronous part runs on the delivering goroutine:
//     IPv4 checks, the transport header parse, the demuxer, and for TCP
//     newIncomingSegment and the checksum (dispatcher.queuePacket), or the
//     RST for a segment no endpoint owns (HandleUnknownDestinationPacket).
//     Each of these counts what it drops, so the counters read around the
//     delivery are gVisor's own verdict, recorded as observed: TCP
//     ChecksumErrors (bad checksum), TCP InvalidSegmentsReceived and IP
//     MalformedPacketsReceived (malformed header), NIC
//     MalformedL4RcvdPackets (malformed, or a bad checksum with no endpoint:
//     gVisor does not tell these apart there, the recomputed checksum
//     does); no counter moved and no endpoint: "no connection", observed.
//  3. TCP ValidSegmentsReceived moved: the segment was queued to its
//     endpoint, whose processor goroutine handles it later. The verdict of
//     step 1 stands, marked inferred (tcplab applied gVisor's rules; gVisor
//     counts none of these drops). The event is completed (Pending.End).
//
// The stack's answer to a refused arrival (a challenge ACK, an ACK to a
// segment outside the window) is owed by the connection until a bare ACK
// leaves, which then carries the reason (reason.go wording, "answers a
// refused segment: ..."), or until the probe fires for that arrival
// without one (gVisor rate-limits ACKs to segments without data). The RST
// answering a segment for no connection is explained by Host.reason.
//
// # Cost
//
// With a nil Recorder none of this runs: the tap forwards packets untouched.
// With tracing on, each segment costs a header parse, a map lookup and one
// Recorder.Emit; BenchmarkBulk in package tun (make bench) measures the
// difference: about a third of the throughput at MTU 1500.
//
// # Use as a library
//
// A lab is two hosts on one wire: memwire.NewLab builds one on an
// in-memory wire in virtual time (no root, the same trace on every run);
// package tun builds one on TUN devices in a private network namespace.
// Listen, Dial and Accept give Conns; their calls block like sockets'; the
// trace (Lab.Trace) and each Conn's Ledger say what happened. See Example.
package stack
