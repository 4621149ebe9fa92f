// Package program runs a user's program inside a tun.Lab's private network
// namespace, for tcplab exec: the program's sockets are then the Linux
// kernel's sockets of the lab, on the same addresses as a kernel peer
// (package tun/kernelpeer), and reach the lab's gVisor hosts over its TUN
// devices.
//
// The program runs in a PID namespace of its own whose init (pid 1) is a
// shim: the calling binary re-executed (this package's init function
// recognises it). The shim is started from a goroutine locked to an OS
// thread that has entered the network namespace (setns), so it is born in
// it; that thread lives until the shim exits, and the shim has Pdeathsig
// SIGKILL, so when tcplab dies by any means (SIGKILL included) the shim
// dies, and with it, by the kernel, every process of its PID namespace: the
// program, its children, a daemon that left its session. Nothing the
// program started can keep the lab's network namespace alive.
package program
