package kernelpeer

import (
	"os"
	"strings"

	"github.com/tcplab/tcplab/stack/trace"
)

// readRFC1337 reads net.ipv4.tcp_rfc1337 of the current network namespace
// (call it inside the lab's): whether a timewait socket ignores a RST.
// A kernel without the file counts as the default, 0.
func readRFC1337() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_rfc1337")
	return err == nil && strings.TrimSpace(string(b)) != "0"
}

// rstIgnoredInTimeWait handles a RST the kernel freed without a drop
// reason on a connection last seen as a timewait socket, when the lab
// namespace has tcp_rfc1337 = 1: tcp_timewait_state_process then keeps the
// timewait socket (it frees the RST the same way as when it ends TIME-WAIT,
// so the verdict is inferred from the setting). It reports whether it
// recorded a.
func (p *Peer) rstIgnoredInTimeWait(a *arrival, evidence string) bool {
	s := a.s
	if !p.rfc1337 || s == nil || !strings.Contains(a.g.flags, "R") {
		return false
	}
	s.mu.Lock()
	tw := s.tw
	s.mu.Unlock()
	if !tw {
		return false
	}
	a.ev.Verdict, a.ev.Why, a.ev.Observed = trace.Refused, trace.WhyTimeWaitRST, false
	a.ev.Evidence = evidence + "; tcp_rfc1337 is 1 in the lab namespace: the timewait socket ignores a RST (RFC 1337)"
	p.rec.EmitAt(a.ev, a.at)
	p.answered(a)
	return true
}
