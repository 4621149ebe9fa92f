//go:build !linux

package ktrace

import "fmt"

// Observer watches one network namespace; only Linux has one.
type Observer struct{}

// Open fails: the kernel observer needs Linux eBPF.
func Open(cfg Config) (*Observer, error) {
	return nil, fmt.Errorf("%w: needs Linux", ErrUnavailable)
}

// NetnsInode fails: network namespaces are Linux's.
func NetnsInode(path string) (uint64, error) {
	return 0, fmt.Errorf("%w: needs Linux", ErrUnavailable)
}

// Events returns nil: there is never an Observer off Linux.
func (o *Observer) Events() <-chan Event { return nil }

// Lost returns ErrClosed.
func (o *Observer) Lost() (uint64, error) { return 0, ErrClosed }

// Close does nothing.
func (o *Observer) Close() error { return nil }

// Leftovers returns nothing: no eBPF off Linux.
func Leftovers() ([]string, error) { return nil, nil }

// Unseen returns 0: there is never an Observer off Linux.
func (o *Observer) Unseen() uint64 { return 0 }
