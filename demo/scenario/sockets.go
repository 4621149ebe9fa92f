package scenario

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/tcplab/tcplab/stack"
)

// Sockets before they connect: "HOST socket as NAME", then "set ... on
// NAME", "bind PORT on NAME", "listen [PORT] [backlog N] on NAME" or
// "connect PEER:PORT on NAME"; and options on listeners.

// autoName matches the names the stacks give sockets (c1, l2, ...), which a
// script may use without declaring them.
var autoName = regexp.MustCompile(`^[cl][0-9]+$`)

// prepareSockets prepares the calls that involve a socket made by
// "socket", options on listeners and O_NONBLOCK; ok is false for the
// calls prepare handles itself.
func (r *runner) prepareSockets(c *Call) (op func(context.Context) callResult, ok bool, err error) {
	if r.conc.fresh == nil {
		r.conc.fresh = map[string]map[string]stack.FreshSocket{"client": {}, "server": {}}
		r.conc.listens = map[string]bool{}
		for _, st := range r.res.Script.Steps {
			if l, isCall := st.(*Call); isCall && l.Op == "listen" && l.On != "" {
				r.conc.listens[l.Host+" "+l.On] = true
			}
		}
	}
	fresh := func() (stack.FreshSocket, error) {
		name := c.On
		if fs := r.conc.fresh[c.Host][name]; fs != nil && name != "" {
			return fs, nil
		}
		if name == "" {
			return nil, fmt.Errorf("%s %s needs a socket: on NAME (made with %s socket as NAME)", c.Host, c.Op, c.Host)
		}
		return nil, fmt.Errorf("%s has no socket %q made with \"socket as\" (it may have connected or listened already)", c.Host, name)
	}
	switch c.Op {
	case "socket":
		sp, isSP := r.peer(c.Host).(stack.SocketPeer)
		if !isSP {
			return nil, true, fmt.Errorf("the %s of this lab cannot make a socket before it connects", c.Host)
		}
		listener := r.conc.listens[c.Host+" "+c.As]
		return func(context.Context) callResult {
			fs, err := sp.NewSocket(listener)
			return callResult{fresh: fs, err: err}
		}, true, nil
	case "bind":
		fs, err := fresh()
		if err != nil {
			return nil, true, err
		}
		return func(context.Context) callResult { return callResult{err: fs.Bind(c.Port)} }, true, nil
	case "listen", "connect":
		if c.On == "" {
			return nil, false, nil
		}
		fs, err := fresh()
		if err != nil {
			return nil, true, err
		}
		if c.Op == "listen" {
			return func(context.Context) callResult {
				if c.Port != 0 {
					if err := fs.Bind(c.Port); err != nil {
						return callResult{err: err}
					}
				}
				l, err := fs.Listen(c.Backlog)
				return callResult{ln: l, err: err}
			}, true, nil
		}
		addr := netip.AddrPortFrom(r.peer(peerOf(c.Host)).Addr(), c.Port)
		return func(ctx context.Context) callResult {
			if c.From != 0 {
				if err := fs.Bind(c.From); err != nil {
					return callResult{err: err}
				}
			}
			s, err := fs.Connect(ctx, addr)
			return callResult{sock: s, err: err}
		}, true, nil
	case "set":
		target, err := r.optTarget(c)
		if err != nil {
			return nil, true, err
		}
		return func(context.Context) callResult { return callResult{err: setOption(target, c)} }, true, nil
	}
	return nil, false, nil
}

// optTarget finds the socket, listener or fresh socket a "set" is for:
// "on NAME", or the host's latest connected socket.
func (r *runner) optTarget(c *Call) (any, error) {
	if c.On == "" {
		return r.sock(c)
	}
	if s := r.socks[c.Host][c.On]; s != nil {
		if f, isFresh := s.(freshSock); isFresh {
			return f.fs, nil
		}
		return s, nil
	}
	if l := r.lns[c.Host][c.On]; l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("%s has no socket or listener named %q", c.Host, c.On)
}

// setOption applies a "set" to a socket of any kind.
func setOption(target any, c *Call) error {
	if c.Opt == "nonblock" {
		nb, ok := target.(stack.Nonblocker)
		if !ok {
			return fmt.Errorf("this socket cannot be made non-blocking")
		}
		return nb.SetNonblock(c.Val == "on")
	}
	so, ok := target.(stack.SocketOptions)
	if !ok {
		return fmt.Errorf("this %s cannot take socket options", c.Host)
	}
	switch c.Opt {
	case "linger":
		if c.Val == "off" {
			return so.SetLinger(false, 0)
		}
		secs, _ := strconv.Atoi(c.Val)
		return so.SetLinger(true, time.Duration(secs)*time.Second)
	case "nodelay":
		return so.SetNoDelay(c.Val == "on")
	case "keepalive":
		ks, ok := target.(stack.KeepaliveSetter)
		if !ok {
			return fmt.Errorf("%s's socket cannot set SO_KEEPALIVE", c.Host)
		}
		return ks.SetKeepalive(c.Val == "on")
	case "sndbuf":
		v, _ := strconv.Atoi(c.Val)
		return so.SetSendBuffer(v)
	case "rcvbuf":
		v, _ := strconv.Atoi(c.Val)
		return so.SetReceiveBuffer(v)
	}
	return fmt.Errorf("unknown option %q", c.Opt)
}

// addFresh registers a socket made by "socket as NAME" under its name and
// its trace name.
func (r *runner) addFresh(c *Call, fs stack.FreshSocket) {
	r.conc.fresh[c.Host][fs.ID()] = fs
	r.socks[c.Host][fs.ID()] = freshSock{fs}
	if c.As != "" {
		r.conc.fresh[c.Host][c.As] = fs
		r.socks[c.Host][c.As] = freshSock{fs}
	}
}

// freshSock lets a socket that has not connected yet stand where a
// connected one is looked up (close on NAME, expectations on NAME). Data
// calls on it fail with ENOTCONN without reaching the stack.
type freshSock struct{ fs stack.FreshSocket }

var _ stack.Socket = freshSock{}

func (f freshSock) ID() string                                 { return f.fs.ID() }
func (f freshSock) Write(context.Context, []byte) (int, error) { return 0, syscall.ENOTCONN }
func (f freshSock) Read(context.Context, []byte) (int, error)  { return 0, syscall.ENOTCONN }
func (f freshSock) Shutdown(stack.How) error                   { return syscall.ENOTCONN }
func (f freshSock) Close() error                               { return f.fs.Close() }
func (f freshSock) SetLinger(on bool, d time.Duration) error   { return f.fs.SetLinger(on, d) }
func (f freshSock) SetNoDelay(on bool) error                   { return f.fs.SetNoDelay(on) }
func (f freshSock) SetSendBuffer(n int) error                  { return f.fs.SetSendBuffer(n) }
func (f freshSock) SetReceiveBuffer(n int) error               { return f.fs.SetReceiveBuffer(n) }
func (f freshSock) Ledger() stack.Ledger                       { return stack.Ledger{} }

// State returns the state of what the socket became, or CLOSED.
func (f freshSock) State() string {
	if s, ok := f.fs.(interface{ State() string }); ok {
		return s.State()
	}
	return "CLOSED"
}
