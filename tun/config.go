package tun

import (
	"fmt"
	"net/netip"
	"time"
)

// Config sets up a Lab. The zero value is ready to use.
type Config struct {
	// MTU of both TUN devices and both channel endpoints, 68..65535.
	// Zero means 1500.
	MTU int

	// TxQueueLen of both TUN devices. Zero means 10000: the TUN default
	// of 500 drops packets under bulk load.
	TxQueueLen int

	// QueueLen is the capacity, in packets, of each channel endpoint's
	// outbound queue. Zero means 1024.
	QueueLen int

	// KernelFinTimeout, if set, is the Linux kernel's timeout for orphaned
	// FIN-WAIT-2 connections inside the lab namespace (the per-namespace
	// sysctl net.ipv4.tcp_fin_timeout, in whole seconds, rounded up). It
	// matters only to kernel sockets (package kernelpeer). Zero keeps the
	// kernel's default, 60 s.
	KernelFinTimeout time.Duration

	// Sysctls are written inside the lab namespace, in order, after
	// KernelFinTimeout: per-namespace TCP settings of the Linux kernel
	// (net.ipv4.tcp_* and net.core.somaxconn only, integer values; see
	// CheckSysctl). They matter only to kernel sockets; the host's own
	// settings are never touched.
	Sysctls []Sysctl

	// UserspaceNet makes SetConditions apply network conditions in
	// userspace (see Lab.SetConditions) even when the kernel has netem.
	// Without it, userspace is only the fallback for kernels without
	// netem.
	UserspaceNet bool

	// ClientName and ServerName name the TUN devices, at most 15 bytes.
	// Zero means "tcl-client" and "tcl-server".
	ClientName, ServerName string
}

// Addresses of the lab. They exist only inside the lab's namespace.
var (
	clientHost   = netip.MustParsePrefix("198.18.1.2/24")
	clientKernel = netip.MustParsePrefix("198.18.1.1/24")
	serverHost   = netip.MustParsePrefix("198.18.2.2/24")
	serverKernel = netip.MustParsePrefix("198.18.2.1/24")
)

// withDefaults fills zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MTU, 1500)
	def(&c.TxQueueLen, 10000)
	def(&c.QueueLen, 1024)
	if c.ClientName == "" {
		c.ClientName = "tcl-client"
	}
	if c.ServerName == "" {
		c.ServerName = "tcl-server"
	}
	switch {
	case c.MTU < 68 || c.MTU > 65535:
		return c, fmt.Errorf("tun: MTU %d outside 68..65535", c.MTU)
	case c.TxQueueLen < 0:
		return c, fmt.Errorf("tun: negative TxQueueLen %d", c.TxQueueLen)
	case c.QueueLen < 0:
		return c, fmt.Errorf("tun: negative QueueLen %d", c.QueueLen)
	case c.ClientName == c.ServerName:
		return c, fmt.Errorf("tun: client and server device are both named %q", c.ClientName)
	}
	for _, s := range c.Sysctls {
		if err := CheckSysctl(s); err != nil {
			return c, err
		}
	}
	for _, n := range []string{c.ClientName, c.ServerName} {
		if err := checkDevName(n); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkDevName applies the kernel's rules for interface names.
func checkDevName(n string) error {
	if len(n) > 15 {
		return fmt.Errorf("tun: device name %q is longer than 15 bytes", n)
	}
	if n == "." || n == ".." {
		return fmt.Errorf("tun: device name %q is reserved", n)
	}
	for _, r := range n {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("tun: device name %q contains %q", n, r)
		}
	}
	return nil
}
