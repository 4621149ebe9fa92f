//go:build linux && amd64

package calltrace

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/ktrace"
)

// BenchmarkCallLatency measures the extra latency of a program's socket
// calls while they are traced: inside a lab namespace, one thread plays a
// program doing 1-byte round trips over loopback TCP (write on one end,
// read on the other, write back, read back: four socket calls per op),
// with no Tracer (trace=off) and with one open that traces this process
// too (trace=on), its events drained as tcplab exec drains them. It
// reports ns/call, and for trace=on the events delivered per call (1 when
// every call was traced) and those lost for want of room in the ring
// buffer. `make bench` prints them.
func BenchmarkCallLatency(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "calls=write-read/trace=off"
		if on {
			name = "calls=write-read/trace=on"
		}
		b.Run(name, func(b *testing.B) {
			if err := tun.Check(); err != nil {
				b.Skipf("skipping: %v", err)
			}
			lab, err := tun.New(context.Background(), tun.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer lab.Close()
			var fds [3]int // listener, client, accepted
			if err := lab.Do(func() error { return loopbackPair(&fds) }); err != nil {
				b.Fatal(err)
			}
			defer func() {
				for _, fd := range fds {
					unix.Close(fd)
				}
			}()
			events := make(chan int, 1)
			if on {
				ino, err := ktrace.NetnsInode(lab.NetnsPath())
				if err != nil {
					b.Fatal(err)
				}
				// ExcludeTGID 1: init, never in the lab; this process's
				// calls in the lab are traced as a program's.
				tr, err := Open(Config{NetnsInode: ino, ExcludeTGID: 1})
				if errors.Is(err, ErrUnavailable) {
					b.Skipf("skipping: %v", err)
				}
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					n := 0
					for c := range tr.Events() {
						if c.Name == "read" || c.Name == "write" {
							n++
						}
					}
					events <- n
				}()
				defer func() {
					lost, err := tr.Lost()
					if err != nil {
						b.Error(err)
					}
					tr.Close()
					b.ReportMetric(float64(<-events)/float64(4*b.N), "events/call")
					b.ReportMetric(float64(lost)/float64(4*b.N), "lost/call")
				}()
			}
			c, a := fds[1], fds[2]
			b.ResetTimer()
			err = lab.Do(func() error {
				buf := []byte{1}
				for range b.N {
					if _, err := unix.Write(c, buf); err != nil {
						return err
					}
					if _, err := unix.Read(a, buf); err != nil {
						return err
					}
					if _, err := unix.Write(a, buf); err != nil {
						return err
					}
					if _, err := unix.Read(c, buf); err != nil {
						return err
					}
				}
				return nil
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(4*b.N), "ns/call")
		})
	}
}

// loopbackPair makes a connected pair of blocking TCP sockets on loopback
// (in the calling thread's namespace) with TCP_NODELAY: fds[0] the
// listener, fds[1] the client, fds[2] the accepted end.
func loopbackPair(fds *[3]int) error {
	for i := range fds {
		fds[i] = -1
	}
	var err error
	if fds[0], err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return err
	}
	lo := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(fds[0], lo); err != nil {
		return err
	}
	if err := unix.Listen(fds[0], 1); err != nil {
		return err
	}
	sa, err := unix.Getsockname(fds[0])
	if err != nil {
		return err
	}
	if fds[1], err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return err
	}
	if err := unix.Connect(fds[1], sa); err != nil {
		return err
	}
	if fds[2], _, err = unix.Accept4(fds[0], unix.SOCK_CLOEXEC); err != nil {
		return err
	}
	for _, fd := range fds[1:] {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return err
		}
	}
	return nil
}
