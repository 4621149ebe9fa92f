package kernelpeer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// counters reads the TcpExt counters of /proc/net/netstat for the lab
// namespace. The file is opened by a thread inside the namespace
// (/proc/thread-self/net: /proc/self/net would follow the process's main
// thread, which stays in the host namespace) and re-read from offset 0,
// which regenerates it for the namespace it was opened in.
type counters struct {
	mu   sync.Mutex
	f    *os.File // nil once closed
	last map[string]int64
}

// openCounters opens the namespace's netstat file; run it inside
// tun.Lab.Do. Cost: one open file and one read (~4 KiB).
func openCounters() (*counters, error) {
	f, err := os.Open("/proc/thread-self/net/netstat")
	if err != nil {
		return nil, fmt.Errorf("kernelpeer: open netstat counters: %w", err)
	}
	c := &counters{f: f}
	if c.last, err = c.readLocked(); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

func (c *counters) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	if err != nil {
		return fmt.Errorf("kernelpeer: close netstat counters: %w", err)
	}
	return nil
}

// readLocked returns the TcpExt counters now.
func (c *counters) readLocked() (map[string]int64, error) {
	if c.f == nil {
		return nil, fmt.Errorf("kernelpeer: netstat counters: %w", os.ErrClosed)
	}
	b, err := io.ReadAll(io.NewSectionReader(c.f, 0, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("kernelpeer: read netstat counters: %w", err)
	}
	return parseNetstat(b, "TcpExt:"), nil
}

// abortDelta returns which TCPAbort* counters moved since the last call, as
// "TCPAbortOnData+1", or "" when none did, and remembers the values now.
func (c *counters) abortDelta() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now, err := c.readLocked()
	if err != nil {
		return "", err
	}
	var moved []string
	for k, v := range now {
		if strings.HasPrefix(k, "TCPAbort") && v != c.last[k] {
			moved = append(moved, fmt.Sprintf("%s%+d", k, v-c.last[k]))
		}
	}
	c.last = now
	sort.Strings(moved)
	return strings.Join(moved, ", "), nil
}

// parseNetstat parses the pairs of lines "Prefix: names..." / "Prefix:
// values..." of /proc/net/netstat or /proc/net/snmp for one prefix.
func parseNetstat(b []byte, prefix string) map[string]int64 {
	out := map[string]int64{}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != prefix {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names) {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[names[i]] = n
			}
		}
		names = nil
	}
	return out
}
