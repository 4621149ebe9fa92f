// Package calltrace observes the TCP socket calls of the processes inside
// one network namespace — a program run there by tcplab exec — from the
// kernel's raw syscall tracepoints (eBPF, github.com/cilium/ebpf): read,
// write, sendto, recvfrom, connect, accept, accept4, shutdown and close on
// TCP sockets, with the process, the descriptor, the socket's addresses,
// the result, and for close the bytes still unread. Calls on other
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
}

// Call is one socket call of a traced process.
type Call struct {
	// Name is the call: "read", "write", "sendto", "recvfrom", "connect",
	// "accept", "accept4", "shutdown" or "close".
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
	// Arg is the buffer length of read, write, sendto and recvfrom, and
	// the how of shutdown (0 SHUT_RD, 1 SHUT_WR, 2 SHUT_RDWR).
	Arg uint64
	// Ret is the result: a byte count, a descriptor, 0, or -errno.
	Ret int64
	// Local and Remote are the socket's addresses (for accept, the new
	// connection's), when the descriptor was a TCP socket with them.
	Local, Remote netip.AddrPort
	// Unread is, for close, the bytes received and not yet read when the
	// call started.
	Unread int
}
