package tun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// VethPair is two private network namespaces, Left and Right, joined by a
// veth pair: 198.19.0.1/24 on Left's end, 198.19.0.2/24 on Right's. It moves
// no packets itself; it is the yardstick for kernel TCP between two Linux
// sockets, created with Left.Do and Right.Do. Create it with NewVethPair and
// release it with Close. Left and Right must not be reassigned.
type VethPair struct {
	Left, Right *Namespace
}

// Veth pair addresses; they exist only inside the pair's namespaces.
var (
	vethLeft  = netip.MustParsePrefix("198.19.0.1/24")
	vethRight = netip.MustParsePrefix("198.19.0.2/24")
)

// NewVethPair creates the two namespaces and the veth pair between them with
// the given MTU (68..65535; zero means 1500) and returns once both ends are
// up. Cost: two namespaces and a few milliseconds. Errors wrap ErrNeedRoot
// when privileges are missing.
func NewVethPair(mtu int) (*VethPair, error) {
	if mtu == 0 {
		mtu = 1500
	}
	if mtu < 68 || mtu > 65535 {
		return nil, fmt.Errorf("tun: veth MTU %d outside 68..65535", mtu)
	}
	right, err := newNamespace(nil)
	if err != nil {
		return nil, err
	}
	left, err := newNamespace(func(h *netlink.Handle) error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: "veth-left", MTU: mtu},
			PeerName:      "veth-right",
			PeerMTU:       uint32(mtu),
			PeerNamespace: netlink.NsFd(right.fd),
		}
		if err := h.LinkAdd(veth); err != nil {
			return sysErr("create veth pair", err)
		}
		return addrUp(h, "veth-left", vethLeft)
	})
	if err != nil {
		right.close()
		return nil, err
	}
	v := &VethPair{Left: left, Right: right}
	err = right.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("tun: open rtnetlink: %w", err)
		}
		defer h.Close()
		return addrUp(h, "veth-right", vethRight)
	})
	if err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// addrUp gives the device name the address addr and sets it up.
func addrUp(h *netlink.Handle, name string, addr netip.Prefix) error {
	link, err := h.LinkByName(name)
	if err == nil {
		ipnet := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}
		err = h.AddrAdd(link, &netlink.Addr{IPNet: ipnet})
	}
	if err == nil {
		err = h.LinkSetUp(link)
	}
	if err != nil {
		return sysErr(fmt.Sprintf("configure device %s with %s", name, addr), err)
	}
	return nil
}

// Addrs returns the addresses of the Left and the Right end.
func (v *VethPair) Addrs() (left, right netip.Addr) { return vethLeft.Addr(), vethRight.Addr() }

// Close releases both namespaces; the kernel then destroys them and the veth
// pair once no socket created by Do is left open in them. It is safe to call
// more than once.
func (v *VethPair) Close() error {
	return errors.Join(v.Left.close(), v.Right.close())
}
