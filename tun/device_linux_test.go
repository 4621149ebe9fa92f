package tun

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// With the capabilities granted (the setcap route) but a /dev/net/tun the
// user may not open, the error leads with that cause, not "needs root".
func TestTUNAccessErrorLeadsWithTheCause(t *testing.T) {
	err := tunErr("open /dev/net/tun", unix.EACCES) // what Check sees
	msg := err.Error()
	if !strings.HasPrefix(msg, "tun: open /dev/net/tun: permission denied: the mode of /dev/net/tun") ||
		!strings.Contains(msg, "sudo chmod 0666 /dev/net/tun") || strings.Contains(msg, "needs root") {
		t.Errorf("tunErr(EACCES) = %q", msg)
	}
	if !errors.Is(err, ErrNeedRoot) || !errors.Is(err, unix.EACCES) {
		t.Errorf("tunErr(EACCES) = %v, want it to match ErrNeedRoot and EACCES", err)
	}
	// Through water, which wraps the errno in a PathError.
	err = tunErr("create device tl0", &os.PathError{Op: "open", Path: "/dev/net/tun", Err: unix.EACCES})
	if !strings.HasPrefix(err.Error(), "tun: create device tl0: open /dev/net/tun: permission denied: the mode") || !errors.Is(err, ErrNeedRoot) {
		t.Errorf("tunErr(PathError EACCES) = %v", err)
	}
}
