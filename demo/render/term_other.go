//go:build !linux

package render

import "os"

// IsTerminal reports whether f is a terminal; off Linux it says no, and
// output stays plain.
func IsTerminal(f *os.File) bool { return false }

// TerminalWidth returns 0: off Linux the width is not known.
func TerminalWidth(f *os.File) int { return 0 }
