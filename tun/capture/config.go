package capture

import (
	"fmt"
	"time"
)

// Config sets up a Capture. The zero value is ready to use.
type Config struct {
	// SnapLen is how many bytes of each packet are kept. Zero means
	// 262144, which keeps every IPv4 packet whole.
	SnapLen int

	// Linger is how long Close keeps reading after the last packet, so
	// that packets still in the kernel's queues (a teardown RST) are
	// written. Zero means 100 ms.
	Linger time.Duration

	// RcvBuf is the socket's receive buffer in bytes (SO_RCVBUFFORCE, which
	// needs CAP_NET_ADMIN, as the lab does). Zero means 8 MiB: enough that
	// a bulk transfer at full speed is not dropped while the writer is
	// busy. Drops are counted (Capture.Dropped).
	RcvBuf int

	// Application names the writer in the pcapng section header. Zero
	// means "tcplab".
	Application string
}

// withDefaults fills zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	if c.SnapLen == 0 {
		c.SnapLen = 262144
	}
	if c.Linger == 0 {
		c.Linger = 100 * time.Millisecond
	}
	if c.RcvBuf == 0 {
		c.RcvBuf = 8 << 20
	}
	if c.Application == "" {
		c.Application = "tcplab"
	}
	switch {
	case c.SnapLen < sll2Len+60 || c.SnapLen > 1<<20:
		return c, fmt.Errorf("capture: snap length %d outside %d..%d", c.SnapLen, sll2Len+60, 1<<20)
	case c.Linger < 0:
		return c, fmt.Errorf("capture: negative linger %v", c.Linger)
	case c.RcvBuf < 0:
		return c, fmt.Errorf("capture: negative receive buffer %d", c.RcvBuf)
	}
	return c, nil
}
