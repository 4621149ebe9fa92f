package tun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// needPrivileges skips the test only when Check says the capability is truly
// absent; any other failure of Check fails the test.
func needPrivileges(t testing.TB) {
	t.Helper()
	if err := Check(); err != nil {
		if errors.Is(err, ErrNeedRoot) || errors.Is(err, ErrNoTUN) {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("Check: %v", err)
	}
}

// newLab creates a lab that is closed when the test ends.
func newLab(t testing.TB, cfg Config) *Lab {
	t.Helper()
	needPrivileges(t)
	l, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// capture is a gVisor NetworkDispatcher that keeps copies of the packets the
// channel endpoint delivers.
type capture chan []byte

func (c capture) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *gstack.PacketBuffer) {
	v := pkt.ToView()
	c <- bytes.Clone(v.AsSlice())
	v.Release()
}

func (capture) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {}

// sendUDP makes ep's host send one IPv4/UDP packet, as gVisor would: into
// the endpoint's outbound queue.
func sendUDP(t *testing.T, ep *channel.Endpoint, src, dst netip.Addr, payload string) {
	t.Helper()
	b := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		TTL:         64,
		Protocol:    uint8(header.UDPProtocolNumber),
		SrcAddr:     tcpip.AddrFrom4(src.As4()),
		DstAddr:     tcpip.AddrFrom4(dst.As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(ip.Payload())
	udp.Encode(&header.UDPFields{SrcPort: 40000, DstPort: 9, Length: uint16(len(udp))})
	copy(udp.Payload(), payload)

	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	defer pkt.DecRef()
	var pkts gstack.PacketBufferList
	pkts.PushBack(pkt)
	if n, err := ep.WritePackets(pkts); n != 1 || err != nil {
		t.Fatalf("WritePackets = %d, %v", n, err)
	}
}

// TestIntegrationLabRoutesBetweenHosts sends one packet each way right after
// New, without retries: it must be forwarded by the kernel (TTL 64 -> 63) and
// delivered to the other host's dispatcher. This also proves the first
// packet after setup is not lost.
func TestIntegrationLabRoutesBetweenHosts(t *testing.T) {
	l := newLab(t, Config{})
	client, server := l.Links()
	toClient, toServer := make(capture, 16), make(capture, 16)
	client.Endpoint.Attach(toClient)
	server.Endpoint.Attach(toServer)

	for _, tc := range []struct {
		name     string
		from, to netip.Prefix
		ep       gstack.LinkEndpoint
		got      capture
	}{
		{"client to server", client.Addr, server.Addr, client.Endpoint, toServer},
		{"server to client", server.Addr, client.Addr, server.Endpoint, toClient},
	} {
		payload := "first packet, " + tc.name
		sendUDP(t, tc.ep.(*channel.Endpoint), tc.from.Addr(), tc.to.Addr(), payload)
		select {
		case b := <-tc.got:
			ip := header.IPv4(b)
			if !ip.IsValid(len(b)) {
				t.Fatalf("%s: invalid IPv4 packet % x", tc.name, b)
			}
			src, dst := ip.SourceAddress().As4(), ip.DestinationAddress().As4()
			if netip.AddrFrom4(src) != tc.from.Addr() || netip.AddrFrom4(dst) != tc.to.Addr() {
				t.Errorf("%s: got %v -> %v", tc.name, netip.AddrFrom4(src), netip.AddrFrom4(dst))
			}
			if ip.TTL() != 63 {
				t.Errorf("%s: TTL %d, want 63 (one kernel hop)", tc.name, ip.TTL())
			}
			if got := string(header.UDP(ip.Payload()).Payload()); got != payload {
				t.Errorf("%s: payload %q, want %q", tc.name, got, payload)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: packet not delivered within 2s", tc.name)
		}
	}
}

// TestIntegrationLabDeviceSettings reads the configuration back from inside
// the namespace with Do.
func TestIntegrationLabDeviceSettings(t *testing.T) {
	cfg := Config{MTU: 9000, TxQueueLen: 4242, ClientName: "tcl-c", ServerName: "tcl-s"}
	l := newLab(t, cfg)
	client, server := l.Links()
	if client.Name != "tcl-c" || server.Name != "tcl-s" {
		t.Errorf("link names %q, %q", client.Name, server.Name)
	}
	if mtu := client.Endpoint.MTU(); mtu != 9000 {
		t.Errorf("endpoint MTU %d, want 9000", mtu)
	}
	kc, ks := l.KernelAddrs()
	if kc != client.Gateway || ks != server.Gateway {
		t.Errorf("KernelAddrs %v, %v; gateways %v, %v", kc, ks, client.Gateway, server.Gateway)
	}

	err := l.Do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		for _, want := range []struct {
			name string
			addr netip.Addr
		}{{"tcl-c", kc}, {"tcl-s", ks}} {
			link, err := h.LinkByName(want.name)
			if err != nil {
				return err
			}
			a := link.Attrs()
			if a.MTU != 9000 || a.TxQLen != 4242 || a.Flags&net.FlagUp == 0 {
				t.Errorf("%s: MTU %d, txqueuelen %d, flags %v", want.name, a.MTU, a.TxQLen, a.Flags)
			}
			addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
			if err != nil {
				return err
			}
			if len(addrs) != 1 || addrs[0].IP.String() != want.addr.String() {
				t.Errorf("%s: addresses %v, want only %v", want.name, addrs, want.addr)
			}
		}
		// net.Interfaces uses a netlink socket of the calling thread, so it
		// sees the lab namespace.
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		if got := strings.Join(names, " "); got != "lo tcl-c tcl-s" {
			t.Errorf("interfaces in the lab: %s", got)
		}
		if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || string(b) != "1\n" {
			t.Errorf("ip_forward in the lab: %q, %v", b, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
}

// TestIntegrationLabLeavesNothingBehind checks that the host namespace is
// never touched and that Close releases the namespace and the devices.
func TestIntegrationLabLeavesNothingBehind(t *testing.T) {
	needPrivileges(t)
	host := threadNetns(t) // goroutines never run on a thread in a lab
	fwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	setup := time.Since(start)
	defer l.Close()

	var st syscall.Stat_t
	if err := syscall.Stat(l.NetnsPath(), &st); err != nil {
		t.Fatalf("stat %s: %v", l.NetnsPath(), err)
	}
	if want := "nsenter --net=" + l.NetnsPath() + " tcpdump -ni any tcp"; l.TcpdumpCommand() != want {
		t.Errorf("TcpdumpCommand = %q", l.TcpdumpCommand())
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); !bytes.Equal(b, fwd) {
		t.Errorf("host ip_forward changed from %q to %q", fwd, b)
	}
	checkNoLabDevices(t)
	if refs := nsRefs(t, st.Ino, host); len(refs) == 0 {
		t.Fatalf("no reference to namespace inode %d found before Close", st.Ino)
	}

	start = time.Now()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("setup %v, teardown %v", setup, time.Since(start))
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := l.Do(func() error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	// Nothing in the process refers to the namespace any more: no file
	// descriptor, and every thread is in the host namespace (the setup
	// thread has exited, the main thread was never used). Threads exit
	// asynchronously, so allow a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		refs := nsRefs(t, st.Ino, host)
		if len(refs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace inode %d still referenced by %v", st.Ino, refs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkNoLabDevices(t)
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("ip netns list: %s", out)
	}
}

// checkNoLabDevices fails if the host namespace has a tcl-* device or a
// named namespace.
func checkNoLabDevices(t *testing.T) {
	t.Helper()
	left, err := Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		t.Errorf("left in the host namespace: %s", l)
	}
}

// nsRefs lists this process's fds whose network namespace has inode ino and
// its threads that are not in the network namespace with inode host.
func nsRefs(t *testing.T, ino, host uint64) []string {
	t.Helper()
	fds, _ := filepath.Glob("/proc/self/fd/*")
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	var refs []string
	for _, p := range fds {
		target, _ := os.Readlink(p)
		if target == fmt.Sprintf("net:[%d]", ino) {
			refs = append(refs, p)
		}
	}
	for _, p := range tasks {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && st.Ino != host {
			refs = append(refs, p)
		}
	}
	return refs
}

// threadNetns returns the inode of the calling thread's network namespace.
func threadNetns(t *testing.T) uint64 {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestSysErr checks the mapping of errnos to the exported sentinels.
func TestSysErr(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{unix.EPERM, ErrNeedRoot},
		{&os.PathError{Op: "open", Path: "/dev/net/tun", Err: unix.EACCES}, ErrNeedRoot},
		{os.NewSyscallError("unshare", unix.EPERM), ErrNeedRoot},
	} {
		err := sysErr("create network namespace", tc.err)
		if !errors.Is(err, tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("sysErr(%v) = %v, want it to wrap %v and the cause", tc.err, err, tc.want)
		}
		if !strings.Contains(err.Error(), "create network namespace") {
			t.Errorf("sysErr(%v) = %q lacks the operation", tc.err, err)
		}
	}
	if err := sysErr("x", unix.EINVAL); errors.Is(err, ErrNeedRoot) || err.Error() != "tun: x: invalid argument" {
		t.Errorf("sysErr(EINVAL) = %v", err)
	}
	if err := tunErr("open /dev/net/tun", unix.ENOENT); !errors.Is(err, ErrNoTUN) {
		t.Errorf("tunErr(ENOENT) = %v, want ErrNoTUN", err)
	}
	if err := tunErr("TUNSETIFF", unix.EPERM); !errors.Is(err, ErrNeedRoot) {
		t.Errorf("tunErr(EPERM) = %v, want ErrNeedRoot", err)
	}
}

// TestConfigDefaults checks defaults and validation.
func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	want := Config{MTU: 1500, TxQueueLen: 10000, QueueLen: 1024, ClientName: "tcl-client", ServerName: "tcl-server"}
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Errorf("defaults = %+v, %v", c, err)
	}
	for _, bad := range []Config{
		{MTU: 67}, {MTU: 65536}, {TxQueueLen: -1}, {QueueLen: -1},
		{ClientName: "sixteen-chars-xx"}, {ClientName: "a/b"}, {ClientName: "a b"},
		{ClientName: "x", ServerName: "x"},
		{Sysctls: []Sysctl{{"net.ipv4.ip_forward", "1"}}}, {Sysctls: []Sysctl{{"net.ipv4.tcp_../../x", "1"}}},
		{Sysctls: []Sysctl{{"net.ipv4.tcp_rfc1337", "1 2"}}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestOnFreshThread checks that f never runs on the main thread (which the
// runtime would wedge, not terminate) and that errors and panics reach the
// caller. In a test binary new goroutines start on the main thread.
func TestOnFreshThread(t *testing.T) {
	for range 20 {
		err := onFreshThread(func() error {
			if unix.Gettid() == unix.Getpid() {
				return errors.New("f runs on the main thread")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	want := errors.New("boom")
	if err := onFreshThread(func() error { return want }); err != want {
		t.Errorf("error = %v", err)
	}
	defer func() {
		if p := recover(); p != "panic in f" {
			t.Errorf("recovered %v", p)
		}
	}()
	onFreshThread(func() error { panic("panic in f") })
	t.Error("panic not re-raised")
}

// BenchmarkLabSetup measures New plus Close.
func BenchmarkLabSetup(b *testing.B) {
	needPrivileges(b)
	for b.Loop() {
		l, err := New(context.Background(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIntegrationKernelFinTimeout sets tcp_fin_timeout in the lab only.
func TestIntegrationKernelFinTimeout(t *testing.T) {
	needPrivileges(t)
	host, err := os.ReadFile("/proc/sys/net/ipv4/tcp_fin_timeout")
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, Config{KernelFinTimeout: 1500 * time.Millisecond})
	var inLab []byte
	if err := l.Do(func() (err error) {
		inLab, err = os.ReadFile("/proc/sys/net/ipv4/tcp_fin_timeout")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(inLab)); got != "2" {
		t.Errorf("tcp_fin_timeout in the lab = %q, want 2 (1.5 s rounded up)", got)
	}
	after, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_fin_timeout")
	if string(after) != string(host) {
		t.Errorf("host tcp_fin_timeout changed: %q -> %q", host, after)
	}
}
