package tun

import (
	"os"
	"strings"
	"testing"
)

// TestIntegrationSysctls writes per-namespace TCP settings in the lab and
// checks that the host's own stay as they were.
func TestIntegrationSysctls(t *testing.T) {
	needPrivileges(t)
	files := map[string]string{
		"net.ipv4.tcp_rfc1337":           "/proc/sys/net/ipv4/tcp_rfc1337",
		"net.ipv4.tcp_keepalive_time":    "/proc/sys/net/ipv4/tcp_keepalive_time",
		"net.core.somaxconn":             "/proc/sys/net/core/somaxconn",
		"net.ipv4.tcp_abort_on_overflow": "/proc/sys/net/ipv4/tcp_abort_on_overflow",
	}
	want := map[string]string{"net.ipv4.tcp_rfc1337": "1", "net.ipv4.tcp_keepalive_time": "7", "net.core.somaxconn": "17", "net.ipv4.tcp_abort_on_overflow": "1"}
	host := map[string]string{}
	var cfg Config
	for k, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("this kernel has no %s: %v", f, err)
		}
		host[k] = string(b)
		cfg.Sysctls = append(cfg.Sysctls, Sysctl{k, want[k]})
	}
	l := newLab(t, cfg)
	got := map[string]string{}
	if err := l.Do(func() error {
		for k, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			got[k] = strings.TrimSpace(string(b))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for k := range files {
		if got[k] != want[k] {
			t.Errorf("%s in the lab = %q, want %q", k, got[k], want[k])
		}
		if after, _ := os.ReadFile(files[k]); string(after) != host[k] {
			t.Errorf("host %s changed: %q -> %q", k, host[k], after)
		}
	}
}
