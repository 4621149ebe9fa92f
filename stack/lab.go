package stack

import (
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"net/netip"

	"github.com/tcplab/tcplab/stack/trace"
)

// Lab is two hosts, a client and a server, on one wire, recording into one
// trace.
type Lab struct {
	Client, Server *Host
	Wire           Wire
	Trace          *trace.Recorder
}

// NewLab starts a client and a server host on w. cfg is used for both
// hosts (Name is set for each); a nil cfg.Recorder gets a fresh one on the
// wall clock unless noTrace. The lab owns w: Close closes it.
func NewLab(w Wire, cfg Config, noTrace bool) (*Lab, error) {
	if cfg.Recorder == nil && !noTrace {
		cfg.Recorder = trace.NewRecorder(cfg.Clock)
	}
	return NewLabSeeded(w, cfg, nil)
}

// NewLabSeeded is NewLab with each host's randomness from seed(0) for the
// client and seed(1) for the server; a nil seed keeps cfg's sources. The
// trace is cfg.Recorder (nil: no trace).
func NewLabSeeded(w Wire, cfg Config, seed func(host int) (rand.Source, *randv2.ChaCha8)) (*Lab, error) {
	cl, sl := w.Links()
	ccfg, scfg := cfg, cfg
	ccfg.Name, scfg.Name = "client", "server"
	if seed != nil {
		ccfg.RandSource, ccfg.SecureRNG = seed(0)
		scfg.RandSource, scfg.SecureRNG = seed(1)
	}
	client, err := NewHost(ccfg, cl)
	if err != nil {
		w.Close()
		return nil, err
	}
	server, err := NewHost(scfg, sl)
	if err != nil {
		client.Close()
		w.Close()
		return nil, err
	}
	return &Lab{Client: client, Server: server, Wire: w, Trace: cfg.Recorder}, nil
}

// Host returns the host called name ("client" or "server").
func (l *Lab) Host(name string) (*Host, error) {
	switch name {
	case "client":
		return l.Client, nil
	case "server":
		return l.Server, nil
	}
	return nil, fmt.Errorf("stack: no host %q (want client or server)", name)
}

// ServerAddr returns the server host's address with port.
func (l *Lab) ServerAddr(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(l.Server.Addr(), port)
}

// Hold holds back what both hosts send until Release (see Host.Hold).
func (l *Lab) Hold() {
	l.Client.Hold()
	l.Server.Hold()
}

// Release sends what host's link held back since Hold.
func (l *Lab) Release(host string) error {
	h, err := l.Host(host)
	if err != nil {
		return err
	}
	h.Release()
	return nil
}

// Drop drops the next n segments host sends whose flags satisfy match.
func (l *Lab) Drop(host string, n int, match func(flags string) bool, what string) error {
	h, err := l.Host(host)
	if err != nil {
		return err
	}
	h.DropNext(n, match, what)
	return nil
}

// Close stops both hosts, then the wire. Neither host traces the
// teardown (the aborts of connections still open).
func (l *Lab) Close() error {
	l.Client.closing.Store(true)
	l.Server.closing.Store(true)
	l.Client.Close()
	l.Server.Close()
	return l.Wire.Close()
}
