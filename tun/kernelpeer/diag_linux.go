package kernelpeer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// sock_diag message types and sizes (linux/sock_diag.h, linux/inet_diag.h).
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	sockDestroy      = 21 // SOCK_DESTROY
	inetDiagNoCookie = ^uint32(0)
	sizeofNlmsghdr   = 16
	sizeofDiagReq    = 56 // struct inet_diag_req_v2
	sizeofDiagMsg    = 72 // struct inet_diag_msg
	diagTimerTW      = 3  // idiag_timer of a timewait socket
)

// diagInfo is what sock_diag says about one connection.
type diagInfo struct {
	state          uint8  // tcpi_state numbering (TCP_ESTABLISHED, ...)
	timer          uint8  // 3: a timewait socket
	rqueue, wqueue int    // unread bytes; bytes written and not acknowledged (FIN included)
	inode          uint32 // the socket's inode; 0 for an orphan (closed by its application)
}

// diagSocket is a NETLINK_SOCK_DIAG socket bound to the namespace it was
// created in. Its requests are serialised: one round trip at a time.
type diagSocket struct {
	mu  sync.Mutex
	fd  int // -1 once closed
	seq uint32
	buf []byte
}

// openDiag opens a sock_diag socket in the calling thread's network
// namespace; run it inside tun.Lab.Do. Cost: one socket, 16 KiB buffer.
func openDiag() (*diagSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("kernelpeer: open sock_diag netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kernelpeer: bind sock_diag netlink socket: %w", err)
	}
	// The kernel answers within sendto; the timeout only guards a bug.
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kernelpeer: sock_diag receive timeout: %w", err)
	}
	return &diagSocket{fd: fd, buf: make([]byte, 16<<10)}, nil
}

// close releases the socket (and with it, its hold on the namespace).
func (d *diagSocket) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if err != nil {
		return fmt.Errorf("kernelpeer: close sock_diag socket: %w", err)
	}
	return nil
}

// get looks up the TCP connection local<->remote by its exact 4-tuple: a
// full socket, a request socket (SYN-RECEIVED) or a timewait socket
// (TIME-WAIT, or FIN-WAIT-2 of an orphan). found is false when the kernel
// has no such connection. Cost: one netlink round trip, ~10 µs.
func (d *diagSocket) get(local, remote netip.AddrPort) (info diagInfo, found bool, err error) {
	msg, err := d.roundTrip(sockDiagByFamily, 0, local, remote)
	if errors.Is(err, unix.ENOENT) {
		return diagInfo{}, false, nil
	}
	if err != nil {
		return diagInfo{}, false, err
	}
	if len(msg) < sizeofDiagMsg {
		return diagInfo{}, false, fmt.Errorf("kernelpeer: sock_diag: short answer (%d bytes)", len(msg))
	}
	// An exact lookup falls back to the listener of the local port when the
	// connection is gone: that is not our connection.
	dport := binary.BigEndian.Uint16(msg[6:8])
	dst, _ := netip.AddrFromSlice(msg[24:28])
	if dport != remote.Port() || dst != remote.Addr() {
		return diagInfo{}, false, nil
	}
	ne := binary.NativeEndian
	return diagInfo{
		state:  msg[1],
		timer:  msg[2],
		rqueue: int(ne.Uint32(msg[56:60])),
		wqueue: int(ne.Uint32(msg[60:64])),
		inode:  ne.Uint32(msg[68:72]),
	}, true, nil
}

// destroy aborts the connection local<->remote (SOCK_DESTROY, as ss -K):
// the kernel resets it if its state calls for a RST, and frees it.
func (d *diagSocket) destroy(local, remote netip.AddrPort) error {
	_, err := d.roundTrip(sockDestroy, unix.NLM_F_ACK, local, remote)
	return err
}

// roundTrip sends one inet_diag_req_v2 for the 4-tuple and returns the
// payload of the matching answer, or the errno of a netlink error.
func (d *diagSocket) roundTrip(typ, flags uint16, local, remote netip.AddrPort) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil, fmt.Errorf("kernelpeer: sock_diag: %w", unix.EBADF)
	}
	d.seq++
	seq := d.seq
	ne := binary.NativeEndian
	b := make([]byte, sizeofNlmsghdr+sizeofDiagReq)
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags|unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	r := b[sizeofNlmsghdr:]
	r[0], r[1] = unix.AF_INET, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], ^uint32(0)) // all states
	binary.BigEndian.PutUint16(r[8:], local.Port())
	binary.BigEndian.PutUint16(r[10:], remote.Port())
	la, ra := local.Addr().As4(), remote.Addr().As4()
	copy(r[12:16], la[:])
	copy(r[28:32], ra[:])
	ne.PutUint32(r[48:], inetDiagNoCookie)
	ne.PutUint32(r[52:], inetDiagNoCookie)
	if err := unix.Sendto(d.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("kernelpeer: sock_diag request: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(d.fd, d.buf, 0)
		if err != nil {
			return nil, fmt.Errorf("kernelpeer: sock_diag answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(d.buf[:n])
		if err != nil {
			return nil, fmt.Errorf("kernelpeer: sock_diag answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // a late answer to an earlier request
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("kernelpeer: sock_diag: short error message")
				}
				if e := -int32(ne.Uint32(m.Data[:4])); e != 0 {
					return nil, unix.Errno(e)
				}
				return nil, nil // the ack of a request without answer
			case unix.NLMSG_DONE:
				return nil, unix.ENOENT
			case typ:
				return append([]byte(nil), m.Data...), nil
			}
		}
	}
}

// StateName returns the RFC 793 name of a Linux TCP state number, as
// tcp_info.tcpi_state and sock_diag report it, with the names of
// stack.StateName: "ESTABLISHED", "FIN-WAIT-1", ..., "CLOSED". It costs
// nothing.
func StateName(s uint8) string {
	switch s {
	case unix.BPF_TCP_ESTABLISHED:
		return "ESTABLISHED"
	case unix.BPF_TCP_SYN_SENT:
		return "SYN-SENT"
	case unix.BPF_TCP_SYN_RECV, unix.BPF_TCP_NEW_SYN_RECV:
		return "SYN-RECEIVED"
	case unix.BPF_TCP_FIN_WAIT1:
		return "FIN-WAIT-1"
	case unix.BPF_TCP_FIN_WAIT2:
		return "FIN-WAIT-2"
	case unix.BPF_TCP_TIME_WAIT:
		return "TIME-WAIT"
	case unix.BPF_TCP_CLOSE_WAIT:
		return "CLOSE-WAIT"
	case unix.BPF_TCP_LAST_ACK:
		return "LAST-ACK"
	case unix.BPF_TCP_LISTEN:
		return "LISTEN"
	case unix.BPF_TCP_CLOSING:
		return "CLOSING"
	}
	return "CLOSED"
}
