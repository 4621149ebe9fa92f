// Package chattest helps tests of the chat read what it drew on a
// terminal.
package chattest

import "strings"

// Screen renders what a program wrote to a terminal as the terminal shows
// it, as far as the chat uses one: lines, carriage returns, erase to end of
// line (ESC [ K). The last line is the cursor's.
func Screen(out string) []string {
	lines := []string{""}
	col := 0
	for i := 0; i < len(out); i++ {
		cur := &lines[len(lines)-1]
		switch {
		case out[i] == '\r':
			col = 0
		case out[i] == '\n':
			lines = append(lines, "")
			col = 0
		case strings.HasPrefix(out[i:], "\x1b[K"):
			*cur = (*cur)[:col]
			i += 2
		default:
			if col < len(*cur) {
				*cur = (*cur)[:col] + string(out[i]) + (*cur)[col+1:]
			} else {
				*cur += string(out[i])
			}
			col++
		}
	}
	return lines
}
