//go:build !linux

package tun

import (
	"context"
	"net/netip"

	"github.com/tcplab/tcplab/stack"
)

var _ stack.Wire = (*Lab)(nil)

// Lab is a TUN lab; only supported on Linux.
type Lab struct{}

// New returns ErrUnsupported.
func New(context.Context, Config) (*Lab, error) { return nil, ErrUnsupported }

// Check returns ErrUnsupported.
func Check() error { return ErrUnsupported }

// Links returns zero links.
func (*Lab) Links() (client, server stack.Link) { return }

// Kind returns "tun".
func (*Lab) Kind() string { return "tun" }

// KernelAddrs returns zero addresses.
func (*Lab) KernelAddrs() (client, server netip.Addr) { return }

// NetnsPath returns "".
func (*Lab) NetnsPath() string { return "" }

// TcpdumpCommand returns "".
func (*Lab) TcpdumpCommand() string { return "" }

// Do returns ErrUnsupported.
func (*Lab) Do(func() error) error { return ErrUnsupported }

// Close does nothing.
func (*Lab) Close() error { return nil }

// Namespace is a network namespace; only supported on Linux.
type Namespace struct{}

// Path returns "".
func (*Namespace) Path() string { return "" }

// Do returns ErrUnsupported.
func (*Namespace) Do(func() error) error { return ErrUnsupported }

// VethPair is a veth pair between two namespaces; only supported on Linux.
type VethPair struct{ Left, Right *Namespace }

// NewVethPair returns ErrUnsupported.
func NewVethPair(int) (*VethPair, error) { return nil, ErrUnsupported }

// Addrs returns zero addresses.
func (*VethPair) Addrs() (left, right netip.Addr) { return }

// Close does nothing.
func (*VethPair) Close() error { return nil }

// Leftovers is not supported off Linux.
func Leftovers() ([]string, error) { return nil, ErrUnsupported }

// SetConditions returns ErrUnsupported.
func (*Lab) SetConditions(stack.Direction, stack.Conditions) error { return ErrUnsupported }

// InjectSegment returns ErrUnsupported.
func (*Lab) InjectSegment(string, []byte) error { return ErrUnsupported }

// Doer runs a function inside a network namespace.
type Doer interface {
	Do(f func() error) error
}

// SendRaw returns ErrUnsupported.
func SendRaw(Doer, []byte) error { return ErrUnsupported }
