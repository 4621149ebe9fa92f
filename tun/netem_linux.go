package tun

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/stack"
)

var _ stack.Conditioner = (*Lab)(nil)

// netemLimit is the netem queue of each device, in packets (tc's default).
const netemLimit = 1000

// SetConditions imposes c on direction dir of the wire with the kernel's
// own netem qdisc, installed as the root qdisc of the receiving host's TUN
// device inside the lab namespace: client->server is what the kernel sends
// out of the server's device (tcl-server), server->client out of the
// client's. A kernel peer sending in that direction is subject to it too
// (its packets leave through the same device); what a kernel peer
// receives is not (it enters through the other device's ingress). The
// zero value removes the qdisc. netem does not say what it did to which
// packet.
//
// A kernel without netem (CONFIG_NET_SCH_NETEM unset), or
// Config.UserspaceNet, makes the Lab apply the same model (stack.NetModel)
// itself instead, in real time, at the same place: on the path from the
// kernel into the receiving host's device, after the kernel (and a
// capture of the wire) saw the packet. Then NetInUserspace reports true
// and SetNetNotes can report each packet's fate. The qdisc goes with the device when the lab closes. Cost: two
// netlink requests on a fresh thread in the namespace.
func (l *Lab) SetConditions(dir stack.Direction, c stack.Conditions) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("tun: net %s: %w", dir, err)
	}
	d, err := l.device(dir.To())
	if err != nil {
		return err
	}
	if l.closed.Load() {
		return fmt.Errorf("tun: net %s: %w", dir, ErrClosed)
	}
	if l.userspaceNet.Load() {
		l.un.set(dir, c)
		return nil
	}
	name := d.link.Name
	err = l.Do(func() error {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		attrs := netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
		if c.IsZero() {
			err := netlink.QdiscDel(netlink.NewNetem(attrs, netlink.NetemQdiscAttrs{}))
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
				return nil // nothing installed
			}
			return err
		}
		err = netlink.QdiscReplace(netlink.NewNetem(attrs, netemAttrs(c)))
		if errors.Is(err, unix.ENOENT) {
			return ErrNoNetem // "Specified qdisc kind is unknown"
		}
		return err
	})
	if errors.Is(err, ErrNoNetem) {
		// The fallback: the same model in userspace, where netem would
		// sit (see NetInUserspace).
		l.userspaceNet.Store(true)
		l.un.set(dir, c)
		return nil
	}
	if err != nil {
		return sysErr(fmt.Sprintf("net %s: netem %q on %s", dir, c, name), err)
	}
	return nil
}

// netemAttrs translates c into netem's parameters: microseconds, and a
// rate in bytes per second.
func netemAttrs(c stack.Conditions) netlink.NetemQdiscAttrs {
	return netlink.NetemQdiscAttrs{
		Latency:     uint32(c.Delay.Microseconds()),
		Jitter:      uint32(c.Jitter.Microseconds()),
		Limit:       netemLimit,
		Loss:        float32(c.Loss),
		Duplicate:   float32(c.Duplicate),
		ReorderProb: float32(c.Reorder),
		CorruptProb: float32(c.Corrupt),
		Rate64:      c.Rate / 8,
	}
}

// Qdisc returns the kind of the root qdisc on host's TUN device ("netem",
// "pfifo_fast", "noqueue", ...), as the kernel reports it, with netem's
// parameters when it is netem. Tests use it. Cost: two netlink requests.
func (l *Lab) Qdisc(host string) (kind string, netem *netlink.Netem, err error) {
	d, err := l.device(host)
	if err != nil {
		return "", nil, err
	}
	err = l.Do(func() error {
		link, err := netlink.LinkByName(d.link.Name)
		if err != nil {
			return err
		}
		qs, err := netlink.QdiscList(link)
		if err != nil {
			return err
		}
		for _, q := range qs {
			if q.Attrs().Parent != netlink.HANDLE_ROOT {
				continue
			}
			kind = q.Type()
			netem, _ = q.(*netlink.Netem)
		}
		return nil
	})
	if err != nil {
		return "", nil, sysErr("list qdiscs of "+d.link.Name, err)
	}
	return kind, netem, nil
}
