// Package ktrace observes what the Linux kernel's TCP stack does inside one
// network namespace, exactly, from the kernel's own tracepoints: state
// changes, resets sent and received with the kernel's reason, retransmits,
// socket destruction, every TCP segment (IPv4, or IPv6 without extension
// headers) a device of the namespace transmits and every one it receives,
// every TCP packet the kernel drops with the kernel's drop reason, and the
// socket's windows on each received segment (tcp_probe).
//
// It loads small eBPF programs (compiled from bpf/ktrace.c and committed,
// so building needs no clang) with github.com/cilium/ebpf. The programs
// filter by namespace inside the kernel: nothing outside the watched
// namespace is ever reported. Observing needs root (CAP_BPF, CAP_PERFMON)
// and a kernel with BTF (/sys/kernel/btf/vmlinux), 6.11 or later (for
// tcp_send_reset's reason and kfree_skb's receiving socket); it is tested on
// 6.18.
//
// Costs, measured on 2 shared cores (see BenchmarkBulk, BenchmarkPingPong):
// each program run costs the kernel 0.3 µs (socket events) to 1.5 µs
// (packets, with their payload), the reader about as much again in user
// space; events reach Events within Config.MaxDelay.
//
// Which hook produces which Kind:
//
//	State        tp_btf/inet_sock_set_state  (TCP sockets only)
//	SendReset    tp_btf/tcp_send_reset       (Reason: enum sk_rst_reason)
//	ReceiveReset tp_btf/tcp_receive_reset
//	Retransmit   tp_btf/tcp_retransmit_skb, tp_btf/tcp_retransmit_synack
//	Destroy      tp_btf/tcp_destroy_sock
//	Probe        tp_btf/tcp_probe            (on each segment an established socket receives, before processing)
//	Sent         tp_btf/net_dev_start_xmit   (TCP, any device of the namespace, forwarded ones too)
//	Received     tp_btf/netif_receive_skb    (TCP, any device of the namespace, before routing)
//	Dropped      tp_btf/kfree_skb            (TCP skbs the kernel drops, Reason: enum skb_drop_reason)
//	Unseen       inferred: a hole in the sequence numbers of a connection's Sent events
//
// Unseen segments: now and then (measured on 6.18 with 2 shared CPUs: in
// about 1 of 10 to 60 bulk transfers of 50 MB over TUN, 6 of 16 of
// 200 MB, a few GSO packets each time) the kernel transmits a
// whole GSO packet (3 to 45 segments) without running any of the
// observer's programs for it: not at net_dev_queue (before segmentation),
// net_dev_start_xmit or net_dev_xmit, with recursion_misses 0 and nothing
// lost in the ring buffer, although every segment reaches the device (see
// TestTUNBulkWitness). The observer cannot see those segments; it says so:
// an Unseen event names the bytes the kernel sent unobserved, and Unseen
// counts them.
//
// Order: events arrive in the order the kernel wrote them. The kernel fires
// some tracepoints after the fact: an active reset's SendReset and a
// Retransmit follow the Sent event of the very segment they describe (and,
// over lo, even its Received event).
//
// The verdict on a received segment: when the kernel drops it (at IP, in
// TCP, or later from a socket's backlog), a Dropped event with the same Skb
// follows its Received event, with the reason (NO_SOCKET, TCP_CSUM,
// TCP_INVALID_SEQUENCE, TCP_RFC7323_PAWS, TCP_OLD_ACK...). A segment that
// no Dropped event names was accepted (or forwarded). fentry/fexit on
// tcp_v4_rcv would mark acceptance at a point in time, but this package
// uses tracepoints only: some kernels (this lab's among them) refuse
// fentry/fexit programs with EPERM even to root, and kprobes may be absent.
package ktrace

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ErrUnavailable is wrapped by Open's errors when this machine cannot
// observe the kernel: not root, no kernel BTF, a kernel too old for one of
// the hooks, or not Linux. The message says which and what fixes it.
var ErrUnavailable = errors.New("ktrace: kernel observer unavailable")

// ErrClosed is returned by Observer.Lost after Close.
var ErrClosed = errors.New("ktrace: observer closed")

// Config says what to observe. The zero value of every field but NetnsInode
// is a sensible default.
type Config struct {
	// NetnsInode is the inode number of the network namespace to watch
	// (required): see NetnsInode.
	NetnsInode uint64
	// RingBytes is the size of the kernel's ring buffer, rounded up to a
	// power of two and at least a page; 0 means 4 MiB (about 13,000
	// events). When the reader falls behind, the kernel drops events and
	// Observer.Lost counts them.
	RingBytes int
	// PayloadBytes is the size of each CPU's perf buffer for payloads the
	// kernel keeps in page fragments (every sent data segment's), rounded
	// up to a power of two and at least a page; 0 means 256 KiB (about
	// 2,000 samples). A payload it has no room for is counted by Lost.
	PayloadBytes int
	// EventBuffer is the capacity of the Events channel; 0 means 4096.
	EventBuffer int
	// MaxDelay bounds how long an event waits in the kernel's ring before
	// the reader picks it up; 0 means 2 ms. The kernel wakes the reader
	// only once a quarter of the ring is full, so a busy observer reads in
	// batches and an idle one polls every MaxDelay (a timer wakeup, a few
	// microseconds of CPU).
	MaxDelay time.Duration
	// NoProbe leaves tcp:tcp_probe unattached: no Probe events, a third
	// fewer events on a bulk transfer, for consumers that do not use the
	// socket's variables.
	NoProbe bool
}

// Kind is what an Event reports.
type Kind uint8

// The event kinds; see the package documentation for the hook behind each.
const (
	State        Kind = iota + 1 // a TCP socket changed state: OldState → NewState
	SendReset                    // the kernel sent a RST: Reason is the enum sk_rst_reason name
	ReceiveReset                 // a socket accepted a RST (tcp_reset): it is about to be closed
	Retransmit                   // the kernel retransmitted Seq..Seq+Len (sequence space: SYN, FIN count one), with Flags
	Destroy                      // a TCP socket was destroyed (tcp_v4_destroy_sock)
	Probe                        // a socket's send/receive variables as a segment arrives (tcp_probe)
	Sent                         // a device of the namespace started transmitting a TCP segment
	Received                     // a device of the namespace delivered a TCP segment to the stack
	Dropped                      // the kernel dropped a TCP packet, for Reason (same Skb as its Received or Sent)
	// Unseen: the kernel sent Seq..Seq+Len of the connection Local→Remote
	// without any program of the observer running for it (see Unseen in
	// unseen_linux.go): inferred from the sequence numbers of the Sent
	// events around the hole, never from the packets themselves. Time is
	// just before the Sent event that revealed it.
	Unseen
)

var kindNames = [...]string{"?", "State", "SendReset", "ReceiveReset", "Retransmit", "Destroy", "Probe", "Sent", "Received", "Dropped", "Unseen"}

// String returns the kind's Go name, e.g. "SendReset".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Event is one thing the kernel did, as its tracepoint reported it. Fields
// that a Kind does not have are zero.
type Event struct {
	Kind Kind
	// Time is when the hook ran, as wall-clock time: the kernel's
	// CLOCK_MONOTONIC stamp (bpf_ktime_get_ns) shifted by the offset
	// between CLOCK_MONOTONIC and the wall clock measured at Open (to
	// about a microsecond). Later steps of the wall clock are not
	// followed; order events by Mono.
	Time time.Time
	// Mono is the raw kernel stamp (CLOCK_MONOTONIC since boot).
	Mono time.Duration
	// Sock is the kernel address of the socket (skaddr), 0 when none; it
	// identifies a socket for its lifetime, and may be reused afterwards.
	Sock uint64
	// Local and Remote are the endpoints from this kernel's point of view:
	// a socket's own addresses; for Sent (and Dropped when Originated) the
	// packet's source and destination, for Received and other Dropped its
	// destination and source (a forwarded packet is seen from its
	// destination's side); for a SendReset without a socket, from the
	// segment that provoked it. A socket's local port is 0 until it is
	// bound (CLOSED→SYN-SENT happens before connect picks a port).
	Local, Remote netip.AddrPort
	// OldState and NewState (State) are RFC 793 names as tcplab spells
	// them: "ESTABLISHED", "FIN-WAIT-1", ..., "CLOSED". NewState is also
	// the socket's state for the other socket kinds. The kernel has no
	// tracepoint for TIME-WAIT: the closer's socket goes FIN-WAIT-2 (or
	// CLOSING) → CLOSED when a time-wait socket takes its place.
	OldState, NewState string
	// Reason is the kernel's own name, without its prefix: for SendReset
	// the enum sk_rst_reason ("NOT_SPECIFIED", "TCP_ABORT_ON_CLOSE",
	// "NO_SOCKET"...), for Dropped the enum skb_drop_reason ("NO_SOCKET",
	// "TCP_CSUM", "TCP_INVALID_SEQUENCE"...), for Retransmit the errno name
	// when the transmission failed. "" when none.
	Reason string

	// Segment fields: Sent, Received, Dropped; Probe and SendReset carry
	// the received segment that triggered them when there is one.
	HasSegment bool
	Flags      string // tcpdump notation: "S", "S.", ".", "P.", "F.", "R", "R."
	Seq, Ack   uint32
	Win        uint16 // raw, unscaled window field
	// Len is the TCP payload length from the IP header. A Sent or
	// Received skb is one wire segment on a device without segmentation
	// offload (TUN), but may be a GSO packet of many segments on lo or
	// veth (SkbLen larger than the MTU): the kernel hands it on whole.
	Len     int
	Payload []byte // the first up to 64 payload bytes (nil if their sample was lost)
	Options []byte // raw TCP options
	SkbLen  int    // bytes in the skb from its current data pointer (GSO: many segments)
	Ifindex int    // device: transmitting (Sent) or receiving
	// Originated (Sent, Dropped) is true when the skb belongs to a socket
	// of the namespace that sent it; false for forwarded and received
	// packets.
	Originated bool
	// Skb is the kernel address of the packet's sk_buff: a Dropped event
	// names the Received (or Sent) packet it drops by it. Addresses are
	// reused as soon as an skb is freed.
	Skb uint64

	// Probe fields, from struct tcp_sock before the segment is processed.
	SndNxt, SndUna, RcvNxt uint32
	SndWnd, RcvWnd         uint32 // bytes, scaled
	Cwnd, Ssthresh         uint32 // segments
	Srtt                   time.Duration
	PacketsOut, RetransOut uint32
	MSS                    uint32
	Cookie                 uint64 // socket cookie (SO_COOKIE)
}

// String formats the event on one line for logs and tests.
func (e Event) String() string {
	s := fmt.Sprintf("%s %s sk=%#x %v>%v", e.Mono, e.Kind, e.Sock, e.Local, e.Remote)
	switch e.Kind {
	case State:
		s += fmt.Sprintf(" %s→%s", e.OldState, e.NewState)
	case Probe:
		s += fmt.Sprintf(" %s snd_nxt=%d snd_una=%d rcv_nxt=%d snd_wnd=%d rcv_wnd=%d cwnd=%d srtt=%v", e.NewState, e.SndNxt, e.SndUna, e.RcvNxt, e.SndWnd, e.RcvWnd, e.Cwnd, e.Srtt)
	case SendReset, ReceiveReset, Destroy, Retransmit:
		s += " " + e.NewState
	}
	if e.HasSegment || e.Kind == Retransmit || e.Kind == Unseen {
		s += fmt.Sprintf(" [%s] seq=%d ack=%d win=%d len=%d if=%d", e.Flags, e.Seq, e.Ack, e.Win, e.Len, e.Ifindex)
	}
	if e.HasSegment {
		s += fmt.Sprintf(" skb=%#x", e.Skb)
	}
	if e.Kind == Sent || e.Kind == Dropped {
		s += fmt.Sprintf(" originated=%v", e.Originated)
	}
	if e.Reason != "" {
		s += " reason=" + e.Reason
	}
	return s
}

// stateName returns the RFC 793 name of a Linux TCP state number (as
// include/net/tcp_states.h numbers them), spelled like stack.StateName.
func stateName(s uint8) string {
	switch s {
	case 1:
		return "ESTABLISHED"
	case 2:
		return "SYN-SENT"
	case 3, 12: // TCP_SYN_RECV, TCP_NEW_SYN_RECV
		return "SYN-RECEIVED"
	case 4:
		return "FIN-WAIT-1"
	case 5:
		return "FIN-WAIT-2"
	case 6:
		return "TIME-WAIT"
	case 8:
		return "CLOSE-WAIT"
	case 9:
		return "LAST-ACK"
	case 10:
		return "LISTEN"
	case 11:
		return "CLOSING"
	}
	return "CLOSED"
}
