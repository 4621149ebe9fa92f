//go:build !linux || !amd64

package calltrace

import "fmt"

// Tracer traces socket calls; only supported on Linux x86-64.
type Tracer struct{}

// Open fails: calls are traced on Linux x86-64 only.
func Open(Config) (*Tracer, error) {
	return nil, fmt.Errorf("%w: only on Linux x86-64", ErrUnavailable)
}

// Events returns nil.
func (*Tracer) Events() <-chan Call { return nil }

// Close does nothing.
func (*Tracer) Close() error { return nil }
