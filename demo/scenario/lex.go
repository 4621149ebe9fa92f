package scenario

import (
	"fmt"
	"strconv"
	"strings"
)

// token is a word or a quoted string on one line.
type token struct {
	text   string // unquoted value
	quoted bool
	col    int // 1-based column of its first character
}

// lexLine splits a line into tokens: words separated by blanks, "quoted
// strings" with Go escapes, and a # comment to the end of the line.
func lexLine(line string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			return toks, nil
		case c == '"':
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				return nil, &lexError{col: i + 1, msg: "unterminated string: missing closing \""}
			}
			s, err := strconv.Unquote(line[i : j+1])
			if err != nil {
				return nil, &lexError{col: i + 1, msg: fmt.Sprintf("bad string %s: %v", line[i:j+1], err)}
			}
			toks = append(toks, token{text: s, quoted: true, col: i + 1})
			i = j + 1
		default:
			j := i
			for j < len(line) && !strings.ContainsRune(" \t\r#\"", rune(line[j])) {
				j++
			}
			toks = append(toks, token{text: line[i:j], col: i + 1})
			i = j
		}
	}
	return toks, nil
}

type lexError struct {
	col int
	msg string
}

func (e *lexError) Error() string { return e.msg }
