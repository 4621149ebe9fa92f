package kernelpeer

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/stack"
)

var _ stack.KeepaliveSetter = (*Socket)(nil)

// SetKeepalive sets SO_KEEPALIVE. The probes' timers are the lab
// namespace's tcp_keepalive_time, tcp_keepalive_intvl and
// tcp_keepalive_probes (a scenario's "config kernel"), read by the kernel
// when the timer is armed.
func (s *Socket) SetKeepalive(on bool) error {
	return s.setInt(fmt.Sprintf("SO_KEEPALIVE=%v", on), unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolInt(on))
}
