package scenario

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of the language. Every number a scenario takes is bounded, so that
// no line can ask a lab for more memory or time than it can give, and no
// value overflows on its way to a socket option. A value out of range is a
// parse error at its file:line:col naming the limit.
const (
	// MaxWrite bounds "write N": 1 TiB. The filler is made as it is
	// written, MaxWriteChunk at a time, so a long write costs no more
	// memory than a short one.
	MaxWrite = 1 << 40
	// MaxWriteChunk is the size of each write call a "write N" makes: a
	// write over 1 MiB is made as several calls, as a program streaming a
	// file would.
	MaxWriteChunk = 1 << 20
	// MaxRead bounds "read N", the size of the read buffer: 16 MiB.
	MaxRead = 16 << 20
	// MaxBacklog bounds "listen PORT backlog N".
	MaxBacklog = 65535
	// MaxCount bounds "count N" (expectations, wire drop).
	MaxCount = 1_000_000
	// MaxLinger bounds "set linger SECONDS": 24 hours.
	MaxLinger = 24 * 60 * 60
	// MaxSockBuf bounds "set sndbuf N" and "set rcvbuf N": 256 MiB.
	MaxSockBuf = 256 << 20
	// MaxDuration bounds every duration: sleep, wait quiet, config
	// timewait and finwait2.
	MaxDuration = 24 * time.Hour
	// MaxInjectData bounds the payload of "inject ... data": one segment
	// of a 1500-byte MTU.
	MaxInjectData = 1460
	// MaxLine bounds the length of one line of a scenario: 1 MiB.
	MaxLine = 1 << 20
	// MaxScript bounds the length of a whole scenario, 4 MiB, and
	// MaxSteps its number of steps, so that an endless input (yes |
	// tcplab run -) ends in an error, not in all the memory.
	MaxScript = 4 << 20
	MaxSteps  = 100_000
)

// parseNumber parses a decimal integer in [lo, hi]. what names the value in
// messages, e.g. "a read size".
func parseNumber(text, what string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil && !isRange(err) {
		return 0, fmt.Errorf("expected %s (a number %s), found %q", what, span(lo, hi), text)
	}
	if err != nil || n < lo || n > hi {
		noun := strings.TrimPrefix(strings.TrimPrefix(what, "a "), "an ")
		return 0, fmt.Errorf("%s %s out of range: want %s", noun, text, span(lo, hi))
	}
	return n, nil
}

// parseDuration parses a Go duration (5s, 200ms, 1h30m) in [0, MaxDuration].
func parseDuration(text, what string) (time.Duration, error) {
	d, err := time.ParseDuration(text)
	if err != nil || d < 0 || d > MaxDuration {
		return 0, fmt.Errorf("expected %s (a duration such as 5s or 200ms, from 0 to %s), found %q", what, fmtDuration(MaxDuration), text)
	}
	return d, nil
}

func isRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// span writes "lo-hi", with hi in KiB/MiB/GiB/TiB as well when it is a
// round power of two.
func span(lo, hi int64) string {
	s := fmt.Sprintf("%d-%d", lo, hi)
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}} {
		if hi >= 1<<u.shift && hi%(1<<u.shift) == 0 {
			return fmt.Sprintf("%s, %d %s", s, hi>>u.shift, u.name)
		}
	}
	return s
}

// fmtDuration writes 24h0m0s as 24h.
func fmtDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}
