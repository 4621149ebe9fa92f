package kernelpeer

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun/calltrace"
)

func TestSockoptArg(t *testing.T) {
	for _, tc := range []struct {
		c    calltrace.Call
		want string
	}{
		{calltrace.Call{Arg: unix.SOL_SOCKET, Option: unix.SO_LINGER, OptLen: 8, Value: [2]int32{1, 0}}, "SO_LINGER {l_onoff 1, l_linger 0}"},
		{calltrace.Call{Arg: unix.SOL_SOCKET, Option: unix.SO_LINGER, OptLen: 8, Value: [2]int32{1, 30}}, "SO_LINGER {l_onoff 1, l_linger 30}"},
		{calltrace.Call{Arg: unix.SOL_SOCKET, Option: unix.SO_LINGER, OptLen: 4}, "SO_LINGER 0"},
		{calltrace.Call{Arg: unix.IPPROTO_TCP, Option: unix.TCP_NODELAY, OptLen: 4, Value: [2]int32{1, 0}}, "TCP_NODELAY 1"},
		{calltrace.Call{Arg: unix.SOL_SOCKET, Option: unix.SO_RCVBUF, OptLen: 4, Value: [2]int32{65536, 0}}, "SO_RCVBUF 65536"},
		{calltrace.Call{Arg: unix.SOL_SOCKET, Option: unix.SO_SNDBUF, OptLen: 4, Value: [2]int32{4096, 0}}, "SO_SNDBUF 4096"},
		{calltrace.Call{Arg: unix.SOL_SOCKET, Option: unix.SO_RCVTIMEO, OptLen: 16, Value: [2]int32{5, 0}}, "SO_RCVTIMEO, 16 bytes"},
		{calltrace.Call{Arg: unix.IPPROTO_TCP, Option: unix.TCP_CONGESTION, OptLen: 5}, "TCP_CONGESTION, 5 bytes"},
		{calltrace.Call{Arg: 0xffff, Option: 77, OptLen: 4, Value: [2]int32{3, 0}}, "level 65535, option 77, 3"},
		{calltrace.Call{Arg: 0xffff, Option: 77, OptLen: 12}, "level 65535, option 77, 12 bytes"},
	} {
		if got := sockoptArg(tc.c); got != tc.want {
			t.Errorf("sockoptArg(level %d, option %d, len %d, %v) = %q, want %q", tc.c.Arg, tc.c.Option, tc.c.OptLen, tc.c.Value, got, tc.want)
		}
	}
}
