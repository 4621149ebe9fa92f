package tun

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// newVethPair creates a veth pair that is closed when the test ends.
func newVethPair(t testing.TB, mtu int) *VethPair {
	t.Helper()
	needPrivileges(t)
	v, err := NewVethPair(mtu)
	if err != nil {
		t.Fatalf("NewVethPair: %v", err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return v
}

// connect returns a TCP connection from a socket in v.Left to one accepted
// in v.Right.
func connect(t testing.TB, v *VethPair) (left, right net.Conn) {
	t.Helper()
	_, raddr := v.Addrs()
	var ln net.Listener
	err := v.Right.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(raddr, 0).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in Right: %v", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
		}
		accepted <- c
	}()
	err = v.Left.Do(func() (err error) {
		left, err = net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dial from Left: %v", err)
	}
	right = <-accepted
	if right == nil {
		t.FailNow()
	}
	t.Cleanup(func() { left.Close(); right.Close() })
	return left, right
}

// TestIntegrationVethPairTCP moves 1 MiB over TCP from Left to Right.
func TestIntegrationVethPairTCP(t *testing.T) {
	v := newVethPair(t, 9000)
	err := v.Left.Do(func() error {
		i, err := net.InterfaceByName("veth-left")
		if err == nil && i.MTU != 9000 {
			err = fmt.Errorf("veth-left MTU %d, want 9000", i.MTU)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	left, right := connect(t, v)
	want := make([]byte, 1<<20)
	rand.Read(want)
	go func() {
		left.Write(want)
		left.Close()
	}()
	right.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(right)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes (equal: %v), %v; sent %d", len(got), bytes.Equal(got, want), err, len(want))
	}
}
