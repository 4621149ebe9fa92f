package kernelpeer

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun/calltrace"
)

// sockoptNames names the socket options a program's setsockopt is shown
// with, by level and option.
var sockoptNames = map[[2]int]string{
	{unix.SOL_SOCKET, unix.SO_REUSEADDR}:            "SO_REUSEADDR",
	{unix.SOL_SOCKET, unix.SO_REUSEPORT}:            "SO_REUSEPORT",
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE}:            "SO_KEEPALIVE",
	{unix.SOL_SOCKET, unix.SO_LINGER}:               "SO_LINGER",
	{unix.SOL_SOCKET, unix.SO_SNDBUF}:               "SO_SNDBUF",
	{unix.SOL_SOCKET, unix.SO_RCVBUF}:               "SO_RCVBUF",
	{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE}:          "SO_SNDBUFFORCE",
	{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE}:          "SO_RCVBUFFORCE",
	{unix.SOL_SOCKET, unix.SO_RCVLOWAT}:             "SO_RCVLOWAT",
	{unix.SOL_SOCKET, unix.SO_SNDTIMEO}:             "SO_SNDTIMEO",
	{unix.SOL_SOCKET, unix.SO_RCVTIMEO}:             "SO_RCVTIMEO",
	{unix.SOL_SOCKET, unix.SO_BROADCAST}:            "SO_BROADCAST",
	{unix.SOL_SOCKET, unix.SO_OOBINLINE}:            "SO_OOBINLINE",
	{unix.SOL_SOCKET, unix.SO_PRIORITY}:             "SO_PRIORITY",
	{unix.SOL_SOCKET, unix.SO_MARK}:                 "SO_MARK",
	{unix.IPPROTO_TCP, unix.TCP_NODELAY}:            "TCP_NODELAY",
	{unix.IPPROTO_TCP, unix.TCP_MAXSEG}:             "TCP_MAXSEG",
	{unix.IPPROTO_TCP, unix.TCP_CORK}:               "TCP_CORK",
	{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE}:           "TCP_KEEPIDLE",
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL}:          "TCP_KEEPINTVL",
	{unix.IPPROTO_TCP, unix.TCP_KEEPCNT}:            "TCP_KEEPCNT",
	{unix.IPPROTO_TCP, unix.TCP_LINGER2}:            "TCP_LINGER2",
	{unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT}:       "TCP_DEFER_ACCEPT",
	{unix.IPPROTO_TCP, unix.TCP_QUICKACK}:           "TCP_QUICKACK",
	{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT}:       "TCP_USER_TIMEOUT",
	{unix.IPPROTO_TCP, unix.TCP_FASTOPEN}:           "TCP_FASTOPEN",
	{unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT}:      "TCP_NOTSENT_LOWAT",
	{unix.IPPROTO_TCP, unix.TCP_WINDOW_CLAMP}:       "TCP_WINDOW_CLAMP",
	{unix.IPPROTO_TCP, unix.TCP_CONGESTION}:         "TCP_CONGESTION",
	{unix.IPPROTO_IP, unix.IP_TOS}:                  "IP_TOS",
	{unix.IPPROTO_IP, unix.IP_TTL}:                  "IP_TTL",
	{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY}:           "IPV6_V6ONLY",
	{unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT}: "IP_BIND_ADDRESS_NO_PORT",
}

// sockoptArg shows a setsockopt call's option and value as its argument:
// "SO_LINGER {l_onoff 1, l_linger 0}", "TCP_NODELAY 1", "SO_RCVBUF 65536",
// or the numbers of an option it does not name.
func sockoptArg(c calltrace.Call) string {
	level, opt := int(int32(c.Arg)), c.Option
	name, known := sockoptNames[[2]int{level, opt}]
	switch {
	case !known:
		return fmt.Sprintf("level %d, option %d, %s", level, opt, sockoptValue(c))
	case level == unix.SOL_SOCKET && opt == unix.SO_LINGER && c.OptLen >= 8:
		return fmt.Sprintf("SO_LINGER {l_onoff %d, l_linger %d}", c.Value[0], c.Value[1])
	case level == unix.SOL_SOCKET && (opt == unix.SO_SNDTIMEO || opt == unix.SO_RCVTIMEO), level == unix.IPPROTO_TCP && opt == unix.TCP_CONGESTION:
		return fmt.Sprintf("%s, %d bytes", name, c.OptLen) // a struct timeval, a name
	}
	return name + " " + sockoptValue(c)
}

// sockoptValue shows the value of an int option, or its length.
func sockoptValue(c calltrace.Call) string {
	if c.OptLen == 4 {
		return fmt.Sprint(c.Value[0])
	}
	return fmt.Sprintf("%d bytes", c.OptLen)
}
