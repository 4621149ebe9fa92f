package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun"
)

// Capture is a running capture of a lab's devices. Create it with Start and
// stop it with Close; one goroutine, owned by the Capture, reads the socket
// and writes the file.
type Capture struct {
	fd     int
	cfg    Config
	out    *fileWriter
	poll   time.Duration // how often a blocked read wakes up to look at stop
	stop   atomic.Int64  // UnixNano when Close was called; 0 while running
	done   chan struct{} // closed when the goroutine has returned
	pkts   atomic.Int64
	drops  atomic.Int64
	err    error // the goroutine's first error; read after done
	closed sync.Once
	cerr   error
}

// Start opens a packet socket inside lab's namespace, writes the pcapng
// header and one interface block per device to w, and starts the goroutine
// that writes every packet the socket receives to w. The socket is bound
// (to every device) before Start returns, so nothing the lab sends later is
// missed. Close it after the lab, so the teardown is captured. w is written
// only by the Capture's goroutine, through a buffer, until Close returns.
// Cost: one socket with Config.RcvBuf bytes of buffer, one goroutine and a
// thread blocked in recvmsg; about 100 µs to start.
func Start(lab *tun.Lab, w io.Writer, cfg Config) (*Capture, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Capture{fd: -1, cfg: cfg, poll: min(cfg.Linger, 20*time.Millisecond), done: make(chan struct{})}
	var devs []device
	err = lab.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("capture: open packet socket: %w", err)
		}
		c.fd = fd
		ifs, err := net.Interfaces()
		if err != nil {
			return fmt.Errorf("capture: list devices: %w", err)
		}
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback == 0 {
				devs = append(devs, device{index: i.Index, name: i.Name})
			}
		}
		return nil
	})
	if err == nil {
		err = c.setup()
	}
	if err == nil {
		sort.Slice(devs, func(i, j int) bool { return devs[i].index < devs[j].index })
		c.out, err = newFileWriter(w, cfg.SnapLen, cfg.Application, devs)
	}
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, err
	}
	go c.loop()
	return c, nil
}

// setup sets the socket options: kernel timestamps, the receive buffer and
// the read timeout that lets the goroutine notice Close.
func (c *Capture) setup() error {
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("capture: set SO_TIMESTAMPNS: %w", err)
	}
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, c.cfg.RcvBuf); err != nil {
		// Without CAP_NET_ADMIN, take what rmem_max allows.
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, c.cfg.RcvBuf); err != nil {
			return fmt.Errorf("capture: set receive buffer to %d bytes: %w", c.cfg.RcvBuf, err)
		}
	}
	tv := unix.NsecToTimeval(c.poll.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("capture: set read timeout: %w", err)
	}
	return nil
}

// loop reads packets and writes them until Close was called and the socket
// has then been quiet for Linger; it closes the socket on its way out.
func (c *Capture) loop() {
	defer close(c.done)
	defer unix.Close(c.fd)
	buf := make([]byte, c.cfg.SnapLen)
	oob := make([]byte, unix.CmsgSpace(16)*2)
	var last time.Time // when the last packet arrived
	for {
		n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, oob, unix.MSG_TRUNC)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			if s := c.stop.Load(); s != 0 {
				quiet := time.Unix(0, s)
				if last.After(quiet) {
					quiet = last
				}
				if time.Since(quiet) >= c.cfg.Linger {
					c.fail(c.stats())
					c.fail(c.out.flush())
					return
				}
			}
			continue
		}
		if err != nil {
			c.fail(fmt.Errorf("capture: read packet socket: %w", err))
			c.fail(c.out.flush())
			return
		}
		last = time.Now()
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		t := stamp(oob[:oobn], last)
		h := sll2{proto: htons(ll.Protocol), ifindex: ll.Ifindex, hatype: ll.Hatype, pkttype: Dir(ll.Pkttype), addr: ll.Addr[:min(int(ll.Halen), 8)]}
		c.pkts.Add(1)
		if c.err == nil {
			c.fail(c.out.write(t, h, buf[:min(n, len(buf))], n))
		}
	}
}

// stats adds the kernel's drop count to Dropped.
func (c *Capture) stats() error {
	st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return fmt.Errorf("capture: read packet statistics: %w", err)
	}
	c.drops.Add(int64(st.Drops))
	return nil
}

// fail keeps the first error.
func (c *Capture) fail(err error) {
	if err != nil && c.err == nil {
		c.err = err
	}
}

// stamp returns the kernel's receive time from the SCM_TIMESTAMPNS control
// message in oob, or def if there is none.
func stamp(oob []byte, def time.Time) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return def
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix())
		}
	}
	return def
}

// Close stops the capture: it waits until the socket has been quiet for
// Config.Linger, writes what remains, flushes the file and closes the
// socket. It returns the first error met while capturing (a failed write
// to w, for one). It is safe to call more than once. Close does not close
// w. Cost: Linger plus up to one poll interval (20 ms).
func (c *Capture) Close() error {
	c.closed.Do(func() {
		c.stop.Store(time.Now().UnixNano())
		<-c.done
		c.cerr = c.err
	})
	return c.cerr
}

// Packets returns how many packets the capture has received so far, which
// is how many it has written unless writing failed.
func (c *Capture) Packets() int { return int(c.pkts.Load()) }

// Dropped returns how many packets the kernel dropped because the socket's
// buffer was full; it is known once Close has returned. A capture with
// drops is not a complete witness.
func (c *Capture) Dropped() int { return int(c.drops.Load()) }

// htons converts a 16-bit value between host and network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
