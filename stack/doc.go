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
