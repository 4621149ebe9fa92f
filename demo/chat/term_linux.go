package chat

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Cbreak puts the terminal f in cbreak mode for Options.Terminal: input
// byte by byte (no line buffering) and no echo; Ctrl-C still interrupts,
// and output is unchanged. restore puts the previous mode back. It costs
// two ioctls.
func Cbreak(f *os.File) (restore func() error, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("chat: %s is not a terminal: %w", f.Name(), err)
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, fmt.Errorf("chat: set cbreak mode on %s: %w", f.Name(), err)
	}
	return func() error {
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, old); err != nil {
			return fmt.Errorf("chat: restore the mode of %s: %w", f.Name(), err)
		}
		return nil
	}, nil
}
