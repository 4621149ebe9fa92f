// Package program runs a user's program inside a tun.Lab's private network
// namespace, for tcplab exec: the program's sockets are then the Linux
// kernel's sockets of the lab, on the same addresses as a kernel peer
// (package tun/kernelpeer), and reach the lab's gVisor hosts over its TUN
// devices.
//
// The program is started from a goroutine locked to an OS thread that has
// entered the namespace (setns), so the child is born in it; that thread
// lives until the program exits, and the program has Pdeathsig SIGKILL, so
// it dies with tcplab even when tcplab is killed. Only the program itself
// has Pdeathsig: processes it starts in turn are its business.
package program
