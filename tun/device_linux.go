package tun

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openTUN creates the TUN device name (IFF_TUN|IFF_NO_PI: each read and
// write is one bare IP packet) in the calling thread's network namespace and
// returns its file. The file is non-blocking, so Read and Write go through
// Go's poller and Close interrupts them; never call its Fd method, which
// switches it to blocking mode. The device lives as long as the file.
//
// This is the few lines of github.com/songgao/water we need, minus two of
// its defects that matter here: water leaks the descriptor when TUNSETIFF
// fails (and an open /dev/net/tun pins its network namespace), and opens it
// without O_CLOEXEC (so tcpdump or any child started by the process would
// inherit the device). It is also where IFF_VNET_HDR goes for a GSO mode.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, tunErr(fmt.Sprintf("create device %s: open /dev/net/tun", name), err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return nil, tunErr(fmt.Sprintf("create device %s: TUNSETIFF", name), err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// tunErr is sysErr that also maps a missing TUN driver to ErrNoTUN and
// explains a /dev/net/tun whose mode keeps the user out.
func tunErr(op string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("%w (%s: %w)", ErrNoTUN, op, err)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w (%s: %w; the mode of /dev/net/tun, normally 0666, does not let this user open it)", ErrNeedRoot, op, err)
	}
	return sysErr(op, err)
}

// Check reports whether this process can create a Lab: it needs
// CAP_SYS_ADMIN (for the namespace), CAP_NET_ADMIN (for the devices) and a
// usable /dev/net/tun. The error wraps ErrNeedRoot or ErrNoTUN when one of
// them is absent. Cost: one capget and one open/close, no devices created.
func Check() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("tun: read capabilities: %w", err)
	}
	for _, c := range []struct {
		bit  int
		name string
	}{{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}, {unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}} {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			return fmt.Errorf("%w (%s is not in the effective set)", ErrNeedRoot, c.name)
		}
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return tunErr("open /dev/net/tun", err)
	}
	unix.Close(fd)
	return nil
}
