// Package calltrace observes the TCP socket calls of the processes inside
// one network namespace — a program run there by tcplab exec — from the
// kernel's raw syscall tracepoints (eBPF, github.com/cilium/ebpf): read,
// write, readv, writev, sendto, recvfrom, sendmsg, recvmsg, connect, bind,
// listen, accept, accept4, setsockopt, shutdown and close on TCP (and
// MPTCP: Go listens with it by default since 1.24) sockets,
// with the process, the descriptor, the socket's addresses, the arguments
// that matter (lengths, the how of shutdown, setsockopt's option and
// value), the result, and for close the bytes still unread. Calls on other
// descriptors (files, pipes, a terminal) are dropped in the kernel, as are
// the calls of tcplab itself.
//
// The programs are attached to every syscall of the machine while a Tracer
// is open; each first checks the calling task's network namespace (a few
// pointer reads). Linux on x86-64 only; elsewhere Open fails with
// ErrUnavailable.
package calltrace

import (
	"errors"
	"net/netip"
	"time"
)

// ErrUnavailable is wrapped by Open's errors when the machine cannot trace
// calls (not root, no BTF, another architecture).
var ErrUnavailable = errors.New("calltrace: socket calls cannot be traced here")

// Config selects what a Tracer watches.
type Config struct {
	// NetnsInode is the inode of the network namespace whose processes
	// are traced (required).
	NetnsInode uint64
	// ExcludeTGID is a process whose calls are not traced: tcplab itself,
	// whose threads enter the namespace for their own sockets. 0: this
	// process.
	ExcludeTGID int
	// MaxDelay bounds how long a call waits in the kernel's ring before
	// the reader picks it up; 0 means 2 ms. The kernel wakes the reader
	// only for the start of a close or shutdown and once a quarter of the
	// ring is full, so a busy program's calls are read in batches and an
	// idle tracer polls every MaxDelay (a timer wakeup, a few microseconds
	// of CPU).
	MaxDelay time.Duration
}

// Call is one socket call of a traced process.
type Call struct {
	// Name is the call: "read", "write", "readv", "writev", "sendto",
	// "recvfrom", "sendmsg", "recvmsg", "connect", "bind", "listen",
	// "accept", "accept4", "setsockopt", "shutdown" or "close".
	Name string
	// Enter and Exit are when the call started and returned (wall clock,
	// from the kernel's CLOCK_MONOTONIC stamps). Exit is zero for an
	// Entry event.
	Enter, Exit time.Time
	// Entry marks the event sent when a close or shutdown starts, before
	// the FIN or RST it causes leaves; a second event follows at its
	// return.
	Entry bool
	// Pid and Tid are the calling process and thread.
	Pid, Tid int
	// Fd is the descriptor; for accept the listening one (the new one is
	// Ret).
	Fd int
	// Arg is the buffer length of read, write, sendto and recvfrom; the
	// total length of the buffers of readv, writev, sendmsg and recvmsg
	// (of the first 16); the how of shutdown (0 SHUT_RD, 1 SHUT_WR, 2
	// SHUT_RDWR); the backlog of listen; the level of setsockopt.
	Arg uint64
	// Buffers is the number of buffers of readv, writev, sendmsg and
	// recvmsg.
	Buffers int
	// Flags are the flags of sendmsg and recvmsg.
	Flags int
	// Option is the option name of setsockopt (SO_LINGER, TCP_NODELAY…),
	// OptLen its value's length, and Value the value's first 8 bytes as
	// two ints: an int option's value in Value[0], struct linger's
	// l_onoff and l_linger in Value[0] and Value[1].
	Option, OptLen int
	Value          [2]int32
	// Ret is the result: a byte count, a descriptor, 0, or -errno.
	Ret int64
	// Local and Remote are the socket's addresses (for accept, the new
	// connection's; for bind, the address asked for), when the descriptor
	// was a TCP socket with them.
	Local, Remote netip.AddrPort
	// Unread is, for close, the bytes received and not yet read when the
	// call started.
	Unread int
}
