package cli

import (
	"errors"
	"io"

	"github.com/tcplab/tcplab/stack/trace"
)

var errNotYet = errors.New("not available yet")

func ladder(w io.Writer, events []trace.Event) error            { return errNotYet }
func svg(w io.Writer, events []trace.Event, title string) error { return errNotYet }
func writePcap(path string, events []trace.Event) error         { return errNotYet }
