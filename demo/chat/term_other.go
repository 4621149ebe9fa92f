//go:build !linux

package chat

import (
	"errors"
	"os"
)

// Cbreak is not implemented off Linux: the chat then reads whole lines and
// prints its prompt before each.
func Cbreak(f *os.File) (restore func() error, err error) {
	return nil, errors.New("chat: cbreak mode is implemented on Linux only")
}
