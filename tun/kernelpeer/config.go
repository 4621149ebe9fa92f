package kernelpeer

import "errors"

// Config tunes a Peer. The zero value observes the kernel with eBPF where
// the machine allows it.
type Config struct {
	// Sample turns the eBPF observer off: the kernel's side is then
	// sampled (segments mirrored from the other host, states and queues
	// from sock_diag every 5 ms, reasons inferred), as on a machine
	// without BPF. For comparisons and benchmarks.
	Sample bool
	// Adopt makes the peer follow every TCP connection and listener on its
	// address, not only those of its own sockets: for a program run inside
	// the lab namespace (tcplab exec), whose sockets the peer never sees.
	// Their segments, states, queues and the kernel's reasons are recorded
	// as for the peer's own; the program's calls are not (the reasons of
	// its FINs say which call is inferred).
	Adopt bool
}

// errSampling is why a Peer samples when Config.Sample asks it to.
var errSampling = errors.New("kernelpeer: Config.Sample turned the eBPF observer off")
