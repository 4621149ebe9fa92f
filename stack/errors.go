package stack

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// errnoOf turns a netstack error into the error a Linux socket call would
// return: io.EOF for a read at end of stream, otherwise a syscall.Errno so
// that errors.Is(err, syscall.ECONNRESET) works.
func errnoOf(err tcpip.Error) error {
	switch err.(type) {
	case nil:
		return nil
	case *tcpip.ErrClosedForReceive:
		return io.EOF
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted, *tcpip.ErrAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrClosedForSend:
		return syscall.EPIPE
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrNotConnected:
		return syscall.ENOTCONN
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	case *tcpip.ErrPortInUse:
		return syscall.EADDRINUSE
	case *tcpip.ErrInvalidEndpointState:
		return syscall.EINVAL
	case *tcpip.ErrHostUnreachable, *tcpip.ErrNetworkUnreachable:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrWouldBlock:
		return syscall.EAGAIN
	case *tcpip.ErrConnectStarted:
		return syscall.EINPROGRESS
	case *tcpip.ErrAlreadyConnecting:
		return syscall.EALREADY
	case *tcpip.ErrAlreadyConnected:
		return syscall.EISCONN
	}
	return fmt.Errorf("netstack: %s", err)
}

// ErrName returns the short name a trace uses for err: "EOF", "ECONNRESET",
// "EPIPE", ..., or "" for nil.
func ErrName(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, io.EOF) {
		return "EOF"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if name := errnoNames[en]; name != "" {
			return name
		}
	}
	return err.Error()
}

var errnoNames = map[syscall.Errno]string{
	syscall.ECONNRESET:   "ECONNRESET",
	syscall.ECONNABORTED: "ECONNABORTED",
	syscall.EPIPE:        "EPIPE",
	syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.ENOTCONN:     "ENOTCONN",
	syscall.ETIMEDOUT:    "ETIMEDOUT",
	syscall.EADDRINUSE:   "EADDRINUSE",
	syscall.EINVAL:       "EINVAL",
	syscall.EHOSTUNREACH: "EHOSTUNREACH",
	syscall.EAGAIN:       "EAGAIN",
	syscall.EINPROGRESS:  "EINPROGRESS",
	syscall.EALREADY:     "EALREADY",
	syscall.EISCONN:      "EISCONN",
	syscall.EBADF:        "EBADF",
}
