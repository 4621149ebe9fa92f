package cli

import (
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/tcplab/tcplab/demo/crossing"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
)

// tcplab exec --side middle: the program is a relay between the scenario's
// gVisor client and gVisor server. The lab is the usual one: the kernel
// routes between tcl-client (the client host 198.18.1.2, the kernel
// 198.18.1.1) and tcl-server (the server host 198.18.2.2, the kernel
// 198.18.2.1). The relay listens on the kernel's address on the client's
// link ($TCPLAB_LISTEN), where the client's connects are sent instead of
// to the server, and connects to the server host ($TCPLAB_PEER), from the
// kernel's address on the server's link. Two kernel peers observe its
// sockets, one per link, both under the host name "relay".

// relayHost is the host name of the relay's events.
const relayHost = scenario.RelayHost

// relayExpect returns the first expectation of s on the relay, nil if none.
func relayExpect(s *scenario.Script) *scenario.Expect {
	for _, st := range s.Steps {
		e, ok := st.(*scenario.Expect)
		for ok && e != nil {
			if e.Host == relayHost {
				return e
			}
			e = e.Before
		}
	}
	return nil
}

// relay is the relay's side of a run: its two observing peers.
type relay struct {
	accept, connect stack.Peer
	release         func() error
	stopAt          trace.Event // the note of tcplab stopping it; zero if it did not
	lines           []string    // the verdicts' notes
}

// scriptMiddle checks that s drives both gVisor hosts, the client
// connecting and the server listening, and takes the ports: the client's
// first connect is where the relay must listen, the server's first listen
// where it must connect.
func (x *execRun) scriptMiddle(s *scenario.Script) error {
	connects, listens := false, false
	for _, st := range s.Steps {
		c, ok := st.(*scenario.Call)
		if !ok {
			continue
		}
		if c.Op == "connect" && c.Host == "client" && !connects {
			x.port, connects = c.Port, true
		}
		if c.Op == "listen" && c.Host == "server" && !listens {
			x.peerPort, listens = c.Port, true
		}
		if c.Op == "connect" && c.Host == "server" || c.Op == "listen" && c.Host == "client" {
			return usageError{fmt.Errorf("%s: %q: with --side middle the client connects (through the relay) and the server listens; the other way round the relay is not between them", c.Position(), c.String())}
		}
	}
	switch {
	case !connects && !listens:
		return usageError{fmt.Errorf("scenario %s has neither a client nor a server: --side middle needs both (server listen PORT, client connect server:PORT)", s.Name)}
	case !connects:
		return usageError{fmt.Errorf("scenario %s never connects the client: --side middle needs a client (client connect server:PORT), whose connection goes to the relay", s.Name)}
	case !listens:
		return usageError{fmt.Errorf("scenario %s never listens on the server: --side middle needs a server (server listen PORT), which the relay connects to", s.Name)}
	}
	return nil
}

// newRelay starts observing the relay's sockets in lab.
func newRelay(env *Env, lab *stack.Lab) (*relay, error) {
	if env.Program.NewRelay == nil {
		return nil, errors.New("exec --side middle is not available in this build")
	}
	a, c, release, err := env.Program.NewRelay(lab.Wire, relayHost, lab.Trace)
	if err != nil {
		return nil, err
	}
	return &relay{accept: a, connect: c, release: release}, nil
}

// sync waits until the kernel's last events of both legs are in the trace.
func (r *relay) sync() {
	for _, p := range []stack.Peer{r.accept, r.connect} {
		if sy, ok := p.(interface{ Sync() }); ok {
			sy.Sync()
		}
	}
}

// relayPeers names the lab's addresses for the text timeline of a run with
// a relay (the kernel's addresses are the relay's); nil for other runs.
func relayPeers(f *runFlags, lab *stack.Lab) map[string]string {
	k, ok := lab.Wire.(interface {
		KernelAddrs() (client, server netip.Addr)
	})
	if f.prog == nil || f.prog.side != "middle" || !ok {
		return nil
	}
	kc, ks := k.KernelAddrs()
	return map[string]string{
		lab.Client.Addr().String(): "client", lab.Server.Addr().String(): "server",
		kc.String(): relayHost, ks.String(): relayHost,
	}
}

// verdicts records, at the end of the run, how each FIN and RST crossed
// the relay (package crossing), as notes of the relay, marked inferred.
func (r *relay) verdicts(rec *trace.Recorder) {
	vs := crossing.Verdicts(rec.Events(), relayHost, crossing.Options{Stopped: r.stopAt.T})
	if len(vs) == 0 {
		r.lines = append(r.lines, "verdict: no FIN or RST reached or left the relay")
		rec.Emit(trace.Event{Host: relayHost, Kind: trace.Note, Text: r.lines[0]})
	}
	for _, v := range vs {
		conn := v.In.Conn
		if v.Own {
			conn = v.Out.Conn
		}
		text := "verdict: " + v.Text + " [" + crossing.Inferred + "]"
		r.lines = append(r.lines, text)
		rec.Emit(trace.Event{Host: relayHost, Kind: trace.Note, Conn: conn, Text: text})
	}
	rec.Flush()
}

// tell writes the verdicts to w, one "# verdict: ..." line each (when the
// trace went to a file).
func (r *relay) tell(w io.Writer) {
	for _, l := range r.lines {
		fmt.Fprintf(w, "# relay %s\n", l)
	}
}

// addrs returns where the relay must listen and the server it must reach.
func (r *relay) addrs(x *execRun, sl scenario.Lab) (listen, peer netip.AddrPort) {
	return netip.AddrPortFrom(r.accept.Addr(), x.port), netip.AddrPortFrom(sl.Server.Addr(), x.peerPort)
}
