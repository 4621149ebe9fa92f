// Package kernelpeer puts the Linux kernel's own TCP on one side of a TUN
// lab: a stack.Peer whose sockets are real kernel sockets created inside the
// lab's private network namespace, recorded into the lab's trace as closely
// as Linux allows, so that the same scenario can be run with gVisor on both
// sides and with Linux on one side, and the two traces compared.
//
// # Topology
//
// The kernel already sits between the two TUN devices of a tun.Lab. As the
// client (side "client"), its sockets use the kernel's address on the
// server's link (198.18.2.1) and reach the gVisor server (198.18.2.2) over
// tcl-server; the gVisor client host stays idle. As the server (side
// "server"), its sockets listen on the kernel's address on the client's link
// (198.18.1.1, which Peer.Addr returns) and the gVisor client reaches them
// over tcl-client; the gVisor server host stays idle.
//
// # Instrumentation
//
// Everything is recorded with Host set to the side the kernel plays:
//
//   - calls: connect, listen, accept, write, read, shutdown, close and
//     setsockopt, with the names, arguments and results package stack uses;
//     calls that cannot wait for the peer take their place in the trace when
//     they start (trace.Recorder.Begin), blocking ones when they return;
//   - segments: every segment the kernel sends or receives in the lab is one
//     the gVisor host on the other side receives or sends, and that host's
//     tap records it. A Peer subscribes to the trace and, from one goroutine,
//     records each such segment again as the kernel's own ("out" for what
//     the gVisor host received, "in" for what it sent), right after the
//     gVisor host's event. FINs and RSTs the kernel sends carry a reason
//     derived from what the application did (close, shutdown, SO_LINGER 0,
//     unread data, data after close) and from the TCPAbort* counters of the
//     namespace's /proc/net/netstat, e.g. "kernel: TCPAbortOnClose+1"; when
//     no counter moved the reason says so;
//   - TCP states and queue levels: sock_diag (NETLINK_SOCK_DIAG) looked up by
//     the connection's 4-tuple, which also follows a connection after
//     close(2) (an orphan, or a timewait socket), sampled after every call,
//     after every segment, and every 5 ms by the same goroutine.
//
// Linux offers no hook as direct as gVisor's probe: a transient state that
// lasts less than the gap between two samples can be missed, and the kernel's
// segment events come after the gVisor host's events of the same packet.
// SYN-SENT and SYN-RECEIVED are derived from the handshake, as package stack
// does for passive opens.
//
// # Limits
//
// The scenario settings "config timewait" and "config finwait2" set the
// gVisor hosts' timers only: Linux keeps its 60 s TIME-WAIT and its
// tcp_fin_timeout (60 s). Wire faults ("wire hold", "wire drop") act on the
// gVisor hosts' links: the kernel's segments are neither held nor dropped,
// and a segment the gVisor host sends while held, or that is dropped, is
// still recorded as received by the kernel when the gVisor host sends it.
//
// # Programs
//
// With Config.Adopt (NewProgramPeer, for tcplab exec) the peer follows every
// connection and listener on its address, including those of a program run
// inside the namespace: records are made from the kernel's own events (the
// SYN a connect sends, a listener's state change, a SYN reaching it). The
// program's socket calls come from package tun/calltrace where it loads,
// merged with the kernel's events by time; they give the causes of its FINs
// and the unread bytes behind a RST on close. Without it those causes are
// inferred from sock_diag and say so.
//
// # Cost
//
// One netlink socket and one open /proc file per Peer, one goroutine, one
// sock_diag round trip (~10 µs) per live connection every 5 ms, and a thread
// created and destroyed (~75 µs) for each socket(2) made inside the
// namespace. Linux-only; elsewhere New fails.
package kernelpeer
