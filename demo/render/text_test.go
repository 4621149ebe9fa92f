package render

import (
	"strings"
	"testing"

	"github.com/tcplab/tcplab/stack/trace"
)

// Escape codes in a scenario's note reach the terminal escaped, never raw.
func TestNoteEscapesControlCharacters(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain \"quoted\" text, tab\there, é", "plain \"quoted\" text, tab\there, é"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"two\nlines\r", `two\nlines\r`},
		{"c1 \u0085 and bad \xff byte", `c1 \u0085 and bad \xff byte`},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	line := NewText(nil, TextOptions{}).Line(trace.Event{Host: "client", Kind: trace.Note, Text: "\x1b]0;pwned\x07\x1b[2J"})
	if strings.ContainsAny(line, "\x1b\x07") || !strings.Contains(line, `# \x1b]0;pwned\a\x1b[2J`) {
		t.Errorf("note line = %q", line)
	}
}
