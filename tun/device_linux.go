package tun

import (
	"errors"
	"fmt"
	"os"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// openTUN creates the TUN device name (IFF_TUN|IFF_NO_PI: each read and
// write is one bare IP packet) in the calling thread's network namespace and
// returns its file. The device is opened with github.com/songgao/water. The
// file is non-blocking, so Read and Write go through Go's poller and Close
// interrupts them; never call its Fd method, which switches it to blocking
// mode. The device lives as long as the file.
//
// water opens /dev/net/tun without O_CLOEXEC, so openTUN sets close-on-exec
// at once (before anything can fork): otherwise tcpdump or any child the
// process starts would inherit the device and pin the lab's namespace.
// water also keeps the descriptor if TUNSETIFF fails; that case is rare
// (Check runs first) and the descriptor dies with the process.
func openTUN(name string) (*os.File, error) {
	ifce, err := water.New(water.Config{
		DeviceType:             water.TUN,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: name},
	})
	if err != nil {
		return nil, tunErr(fmt.Sprintf("create device %s", name), err)
	}
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return nil, fmt.Errorf("tun: create device %s: water returned %T, want *os.File", name, ifce.ReadWriteCloser)
	}
	rc, err := f.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { unix.CloseOnExec(int(fd)) })
		err = cerr
	}
	if err != nil {
		f.Close()
		return nil, sysErr(fmt.Sprintf("create device %s: set close-on-exec", name), err)
	}
	return f, nil
}

// tunErr is sysErr that also maps a missing TUN driver to ErrNoTUN and
// explains a /dev/net/tun whose mode keeps the user out.
func tunErr(op string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("%w (%s: %w)", ErrNoTUN, op, err)
	case errors.Is(err, unix.EACCES):
		// The capabilities are there (Check looks first) but the device
		// node keeps this user out: say that first, not "needs root".
		return &causeError{
			msg: fmt.Sprintf("tun: %s: %v: the mode of /dev/net/tun (normally 0666, crw-rw-rw-) does not let this user open it, "+
				"capabilities or not; fix: sudo chmod 0666 /dev/net/tun, or run as root", op, err),
			errs: []error{ErrNeedRoot, err},
		}
	}
	return sysErr(op, err)
}

// causeError is an error whose message states its cause in full and which
// still matches the errors it stands for (errors.Is).
type causeError struct {
	msg  string
	errs []error
}

func (e *causeError) Error() string   { return e.msg }
func (e *causeError) Unwrap() []error { return e.errs }

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
