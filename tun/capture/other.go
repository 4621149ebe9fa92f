//go:build !linux

package capture

import (
	"io"

	"github.com/tcplab/tcplab/tun"
)

// Capture is an AF_PACKET capture; only supported on Linux.
type Capture struct{}

// Start returns tun.ErrUnsupported.
func Start(*tun.Lab, io.Writer, Config) (*Capture, error) { return nil, tun.ErrUnsupported }

// Close does nothing.
func (*Capture) Close() error { return nil }

// Packets returns 0.
func (*Capture) Packets() int { return 0 }

// Dropped returns 0.
func (*Capture) Dropped() int { return 0 }
