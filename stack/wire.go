package stack

import (
	"net/netip"

	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Link is one host's attachment to a Wire: the gVisor link endpoint the
// host's NIC sits on, and the addressing the host must use on it.
type Link struct {
	// Endpoint carries raw IPv4 packets (no link-layer header). The Host
	// wraps it with its instrumentation tap and attaches it to a NIC; the
	// Wire keeps ownership of whatever moves packets in and out of it.
	Endpoint tcpipstack.LinkEndpoint

	// Addr is the host's address together with the prefix of its subnet,
	// e.g. 198.18.1.2/24.
	Addr netip.Prefix

	// Gateway is the next hop for destinations outside Addr's subnet. The
	// zero value means every destination is on-link.
	Gateway netip.Addr

	// Name names the attachment for people, e.g. the TUN device "tcl-c".
	Name string
}

// Wire joins the client and the server host of a lab. Implementations:
// the in-memory wire in package memwire (no privileges, deterministic) and
// the TUN pair in package tun (real kernel routing, needs CAP_NET_ADMIN).
type Wire interface {
	// Links returns the attachment for the client host and for the server
	// host. It is called once, before either host starts.
	Links() (client, server Link)

	// Close stops moving packets and releases every resource of the wire.
	// It is safe to call more than once.
	Close() error

	// Kind names the wire for traces and errors: "memory" or "tun".
	Kind() string
}
