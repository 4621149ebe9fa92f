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
}

// errSampling is why a Peer samples when Config.Sample asks it to.
var errSampling = errors.New("kernelpeer: Config.Sample turned the eBPF observer off")
