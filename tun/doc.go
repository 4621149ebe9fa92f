// Package tun provides the real-kernel wire of the lab: two gVisor hosts
// whose packets cross TUN devices and are routed by the Linux kernel, plus a
// kernel-only veth yardstick for benchmarks.
//
// # Lab
//
// New creates a private, unnamed network namespace and, inside it, two TUN
// devices (default names tcl-client and tcl-server). The kernel owns the
// gateway addresses and forwards between the two subnets:
//
//	client host 198.18.1.2/24 ── tcl-client 198.18.1.1 ─┐
//	                                                    kernel (ip_forward=1)
//	server host 198.18.2.2/24 ── tcl-server 198.18.2.1 ─┘
//
// 198.18.0.0/15 is the RFC 2544 benchmarking range; the addresses exist only
// inside the lab namespace. Each device feeds a gVisor link/channel endpoint
// through two pump goroutines, and Lab implements stack.Wire, so the hosts in
// package stack attach to it like to any other wire.
//
// # Namespaces and cleanup
//
// The namespace is created with unshare(CLONE_NEWNET) on a locked OS thread
// that is thrown away afterwards, and it is never named (no /run/netns
// entry): a single file descriptor keeps it alive. Close releases that
// descriptor and the TUN files, after which the kernel destroys the devices
// and the namespace. If the process dies, even by SIGKILL, the kernel does
// the same, so nothing is ever left behind in the host namespace.
// Namespace.Do (and Lab.Do) runs a function on a fresh thread inside the
// namespace, which is how kernel sockets are created there; a socket keeps
// its namespace alive until it is closed.
//
// To watch the wire, run the command returned by Lab.TcpdumpCommand, e.g.
//
//	nsenter --net=/proc/1234/fd/7 tcpdump -ni any tcp
//
// # Network conditions and injected segments
//
// Lab.SetConditions installs the kernel's netem qdisc (through netlink,
// inside the namespace) on the TUN device of the host that receives in
// the given direction, so that "net" conditions act on real packets, a
// kernel peer's included; on a kernel built without sch_netem the Lab
// applies the same model (stack.NetModel) itself, in real time, at the
// same place (NetInUserspace, SetNetNotes). SendRaw (and Lab.InjectSegment) sends a crafted IPv4 packet
// from a raw socket in the namespace: the kernel routes it to a gVisor
// host's device or to a kernel peer's socket like any packet.
//
// # Privileges
//
// Creating a network namespace needs CAP_SYS_ADMIN and creating TUN devices
// needs CAP_NET_ADMIN; running as root provides both. Check reports cheaply
// whether a Lab can be created; failures map to ErrNeedRoot and ErrNoTUN.
// Only Linux is supported; elsewhere every constructor returns
// ErrUnsupported.
//
// # VethPair
//
// NewVethPair joins two more private namespaces with a veth pair. It moves no
// packets itself: it is the yardstick for kernel TCP between two Linux
// sockets (see BenchmarkBulk).
package tun
