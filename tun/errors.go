package tun

import "errors"

var (
	// ErrNeedRoot reports that the process lacks the privileges to create a
	// network namespace (CAP_SYS_ADMIN) or TUN devices (CAP_NET_ADMIN).
	ErrNeedRoot = errors.New("tun: needs root / CAP_NET_ADMIN (plus CAP_SYS_ADMIN for the private network namespace) to create the lab's TUN devices; fix: run with sudo, or grant the capabilities: sudo setcap cap_sys_admin,cap_net_admin+ep ./tcplab; or use --wire memory, which needs no privileges")

	// ErrNoTUN reports that the TUN driver is not available.
	ErrNoTUN = errors.New("tun: /dev/net/tun is missing: load the tun module (modprobe tun) or, in a container, pass --device /dev/net/tun")

	// ErrUnsupported reports that the package does not work on this
	// operating system.
	ErrUnsupported = errors.New("tun: only supported on Linux")

	// ErrNoNetem reports that the kernel has no netem qdisc; Lab then
	// applies network conditions in userspace (see Lab.SetConditions).
	ErrNoNetem = errors.New("tun: the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM; load it with modprobe sch_netem), which network conditions need on the TUN wire; fix: use a kernel with sch_netem, or --wire memory, which models the same conditions in virtual time")

	// ErrClosed reports use of a Lab, VethPair or Namespace after Close.
	ErrClosed = errors.New("tun: closed")
)
