package tun

import (
	"fmt"
	"regexp"
	"strings"
)

// Sysctl is one kernel setting of the lab namespace: Key in dotted form
// ("net.ipv4.tcp_rfc1337") and its value.
type Sysctl struct {
	Key, Value string
}

var (
	sysctlKey   = regexp.MustCompile(`^net\.(ipv4\.tcp_[a-z0-9_]+|core\.somaxconn)$`)
	sysctlValue = regexp.MustCompile(`^[0-9]{1,10}$`)
)

// CheckSysctl reports whether s is a setting Config.Sysctls may write: a
// per-namespace TCP setting (net.ipv4.tcp_* or net.core.somaxconn) with a
// non-negative integer value. Anything else could escape the lab (a path
// with "..") or change the host.
func CheckSysctl(s Sysctl) error {
	if !sysctlKey.MatchString(s.Key) {
		return fmt.Errorf("tun: sysctl %q: only net.ipv4.tcp_* and net.core.somaxconn are set in the lab namespace", s.Key)
	}
	if !sysctlValue.MatchString(s.Value) {
		return fmt.Errorf("tun: sysctl %s: value %q is not a non-negative integer", s.Key, s.Value)
	}
	return nil
}

// path returns the file under /proc/sys.
func (s Sysctl) path() string { return strings.ReplaceAll(s.Key, ".", "/") }
