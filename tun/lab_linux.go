package tun

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"

	"github.com/tcplab/tcplab/stack"
)

var _ stack.Wire = (*Lab)(nil)

// Lab is a stack.Wire made of two TUN devices in a private network namespace,
// with the Linux kernel routing between them. See the package documentation
// for the topology. Create it with New and release it with Close.
type Lab struct {
	ns             *Namespace
	client, server *device
	cancel         context.CancelFunc
	wg             sync.WaitGroup

	errOnce sync.Once
	err     error // first pump failure, reported by Close

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	// Network conditions in userspace (kernels without netem).
	un           *userNet
	userspaceNet atomic.Bool
}

// device is one TUN device and the gVisor endpoint that stands for it.
type device struct {
	file   *os.File
	ep     *channel.Endpoint
	link   stack.Link
	kernel netip.Prefix // the kernel's address on the device
	// filter, if set, sees every packet the kernel hands to the device
	// before the host does (see Lab.SetInboundFilter).
	filter atomic.Pointer[InboundFilter]
	// net, toward: userspace network conditions of the direction whose
	// packets the kernel hands to this device.
	net    *userNet
	toward stack.Direction
}

// InboundFilter decides the fate of one IPv4 packet that the kernel handed
// to a host's TUN device: true delivers it to the host, false takes it off
// the wire. It runs on the device's pump goroutine and must not keep pkt
// (copy what it holds back, and hand it over later with Lab.Inject).
type InboundFilter func(pkt []byte) (deliver bool)

// deliver passes one packet read from the device to the host's endpoint,
// unless the filter takes it.
func (d *device) deliver(b []byte) {
	if f := d.filter.Load(); f != nil && !(*f)(b) {
		return
	}
	if d.net != nil && d.net.offer(d.toward, b, func(b []byte) { inject(d.ep, b) }) {
		return
	}
	inject(d.ep, b)
}

// toKernel takes, for the userspace network conditions, a packet the host
// sends to one of the kernel's own addresses (a kernel peer): it never
// reaches the other device, where the conditions of its direction act on
// everything else.
func (d *device) toKernel(b []byte) bool {
	if d.net == nil || len(b) < header.IPv4MinimumSize {
		return false
	}
	dst := netip.AddrFrom4(header.IPv4(b).DestinationAddress().As4())
	if dst != clientKernel.Addr() && dst != serverKernel.Addr() {
		return false
	}
	f := d.file
	return d.net.offer(1-d.toward, b, func(b []byte) { f.Write(b) })
}

// New creates the lab namespace, its two TUN devices and their channel
// endpoints, and starts four pump goroutines. It returns once both devices
// are up and their routes are installed, so the first packet is not lost.
// ctx bounds only the setup; the lab lives until Close. Cost: one thread
// thrown away, a namespace, two devices and a 64 KiB read buffer per device;
// a few milliseconds. Errors wrap ErrNeedRoot or ErrNoTUN when privileges or
// the TUN driver are missing.
func New(ctx context.Context, cfg Config) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tun: create lab: %w", err)
	}
	un := newUserNet()
	l := &Lab{
		client: &device{kernel: clientKernel, link: stack.Link{Addr: clientHost, Gateway: clientKernel.Addr(), Name: cfg.ClientName}, net: un, toward: stack.ServerToClient},
		server: &device{kernel: serverKernel, link: stack.Link{Addr: serverHost, Gateway: serverKernel.Addr(), Name: cfg.ServerName}, net: un, toward: stack.ClientToServer},
		un:     un,
	}
	l.userspaceNet.Store(cfg.UserspaceNet)
	l.ns, err = newNamespace(func(h *netlink.Handle) error {
		// Forward between the devices; accept whatever source addresses the
		// hosts use. These sysctls are per namespace: the host's stay as
		// they are.
		sysctls := [][2]string{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv4/conf/all/rp_filter", "0"},
			{"net/ipv4/conf/default/rp_filter", "0"},
		}
		if cfg.KernelFinTimeout > 0 {
			secs := (cfg.KernelFinTimeout + time.Second - 1) / time.Second
			sysctls = append(sysctls, [2]string{"net/ipv4/tcp_fin_timeout", strconv.Itoa(int(secs))})
		}
		for _, s := range cfg.Sysctls {
			sysctls = append(sysctls, [2]string{s.path(), s.Value})
		}
		for _, s := range sysctls {
			if err := writeSysctl(s[0], s[1]); err != nil {
				return err
			}
		}
		for _, d := range []*device{l.client, l.server} {
			f, err := openTUN(d.link.Name)
			if err != nil {
				return err
			}
			d.file = f
			if err := configure(h, d.link.Name, d.kernel, cfg); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.closeFiles()
		return nil, err
	}

	pumpCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	var p pump = ipPump{}
	for _, d := range []*device{l.client, l.server} {
		d.ep = channel.New(cfg.QueueLen, uint32(cfg.MTU), "")
		d.link.Endpoint = d.ep
		l.wg.Add(2)
		go func() { defer l.wg.Done(); l.fail(d, "read", p.fromTUN(d.file, d.deliver)) }()
		go func() { defer l.wg.Done(); l.fail(d, "write", p.toTUN(pumpCtx, d.file, d.ep, d.toKernel)) }()
	}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); un.run(pumpCtx) }()
	if err := ctx.Err(); err != nil {
		l.Close()
		return nil, fmt.Errorf("tun: create lab: %w", err)
	}
	return l, nil
}

// configure sets up the TUN device name on the kernel side: MTU, transmit
// queue, no IPv6 (keeps router solicitations out of traces), the kernel's
// address (which installs the connected route) and link up.
func configure(h *netlink.Handle, name string, addr netip.Prefix, cfg Config) error {
	wrap := func(op string, err error) error {
		return sysErr(fmt.Sprintf("configure device %s: %s", name, op), err)
	}
	link, err := h.LinkByName(name)
	if err != nil {
		return wrap("look up", err)
	}
	if err := h.LinkSetMTU(link, cfg.MTU); err != nil {
		return wrap(fmt.Sprintf("set MTU %d", cfg.MTU), err)
	}
	if err := h.LinkSetTxQLen(link, cfg.TxQueueLen); err != nil {
		return wrap(fmt.Sprintf("set txqueuelen %d", cfg.TxQueueLen), err)
	}
	if err := writeSysctl("net/ipv6/conf/"+name+"/disable_ipv6", "1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err // a kernel without IPv6 has no such file: fine
	}
	return addrUp(h, name, addr)
}

// fail records the first pump error for Close.
func (l *Lab) fail(d *device, dir string, err error) {
	if err != nil {
		l.errOnce.Do(func() { l.err = fmt.Errorf("tun: %s device %s: %w", dir, d.link.Name, err) })
	}
}

// Links returns the client and the server host's attachment: a channel
// endpoint carrying bare IPv4 packets, the host address and the kernel
// gateway. It implements stack.Wire and costs nothing.
func (l *Lab) Links() (client, server stack.Link) { return l.client.link, l.server.link }

// Kind returns "tun". It implements stack.Wire.
func (l *Lab) Kind() string { return "tun" }

// KernelAddrs returns the kernel's addresses in the lab: the client's and
// the server's gateway.
func (l *Lab) KernelAddrs() (client, server netip.Addr) {
	return l.client.kernel.Addr(), l.server.kernel.Addr()
}

// NetnsPath returns a path naming the lab namespace while the lab is open,
// e.g. "/proc/1234/fd/7".
func (l *Lab) NetnsPath() string { return l.ns.Path() }

// TcpdumpCommand returns a shell command that captures the lab's TCP traffic
// on both devices, e.g. "nsenter --net=/proc/1234/fd/7 tcpdump -ni any tcp".
func (l *Lab) TcpdumpCommand() string {
	return "nsenter --net=" + l.ns.Path() + " tcpdump -ni any tcp"
}

// SetInboundFilter installs f (nil removes it) on the path from the kernel
// to host ("client" or "server"): every packet the kernel sends or
// forwards to that host passes f first, on the wire itself. It is how
// faults act on what a kernel peer sends. Cost: one call per packet.
func (l *Lab) SetInboundFilter(host string, f InboundFilter) error {
	d, err := l.device(host)
	if err != nil {
		return err
	}
	if f == nil {
		d.filter.Store(nil)
	} else {
		d.filter.Store(&f)
	}
	return nil
}

// Inject hands pkt, a whole IPv4 packet, to host as if the kernel had just
// sent it through the host's device; a filter's held packet goes on its
// way this way. It copies pkt.
func (l *Lab) Inject(host string, pkt []byte) error {
	d, err := l.device(host)
	if err != nil {
		return err
	}
	if l.closed.Load() {
		return fmt.Errorf("tun: inject toward %s: %w", host, ErrClosed)
	}
	inject(d.ep, pkt)
	return nil
}

func (l *Lab) device(host string) (*device, error) {
	switch host {
	case "client":
		return l.client, nil
	case "server":
		return l.server, nil
	}
	return nil, fmt.Errorf("tun: no host %q (want client or server)", host)
}

// Do runs f on a fresh OS thread inside the lab namespace; see
// Namespace.Do. It fails with ErrClosed after Close.
func (l *Lab) Do(f func() error) error { return l.ns.Do(f) }

// Close stops the pumps, closes the channel endpoints and the TUN devices,
// and releases the namespace; the kernel then destroys both once no socket
// created by Do is left open in it. It returns the first error a pump met,
// if any, and is safe to call more than once. Cost: tens of milliseconds,
// spent by the kernel unregistering each TUN device (RCU grace periods).
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		l.cancel()
		l.closeFiles() // unblocks the readers
		l.wg.Wait()
		for _, d := range []*device{l.client, l.server} {
			d.ep.Close() // after the pumps: nothing is delivered after Close
		}
		l.closeErr = errors.Join(l.err, l.ns.close())
	})
	return l.closeErr
}

// closeFiles closes the TUN files that exist, which deletes the devices.
func (l *Lab) closeFiles() {
	for _, d := range []*device{l.client, l.server} {
		if d.file != nil {
			d.file.Close()
		}
	}
}
