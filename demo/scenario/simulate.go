package scenario

import (
	"context"
	"time"

	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

// SimConfig configures Simulate. Zero values are defaults.
type SimConfig struct {
	// KeepPackets keeps every packet's bytes in the trace (for pcapng).
	KeepPackets bool
	// Seed seeds ISNs and ports; 0 means 1.
	Seed uint64
	// QuietWindow is the real time the lab must be idle to count as
	// quiet; 0 means memwire's default. Slow environments (-race) want
	// more.
	QuietWindow time.Duration
	// Net, if set, are network conditions for the whole run (see
	// Options.Net).
	Net *Net
}

// Simulate runs s on a fresh memory-wire lab in virtual time and returns
// the result and the whole trace. The same script, seed and stack give the
// same trace, byte for byte. It needs no privileges.
func Simulate(ctx context.Context, s *Script, cfg SimConfig) (*Result, []trace.Event, error) {
	hc := s.HostConfig()
	hc.KeepPackets = cfg.KeepPackets
	lab, w, err := memwire.NewLab(memwire.LabConfig{
		Host: hc,
		Wire: memwire.Config{QuietWindow: cfg.QuietWindow},
		Seed: cfg.Seed,
	})
	if err != nil {
		return nil, nil, err
	}
	defer lab.Close()
	res := Run(ctx, s, Lab{Client: lab.Client.Peer(), Server: lab.Server.Peer(), Trace: lab.Trace, Faults: lab, Net: w, Inject: w},
		Options{Sleep: w.Sleep, Settle: w.Settle, Net: cfg.Net, AfterFunc: w.AfterFunc, Now: w.Now})
	return res, lab.Trace.Events(), nil
}

// SimulateBuiltin is Simulate for the built-in scenario called name.
func SimulateBuiltin(ctx context.Context, name string, cfg SimConfig) (*Result, []trace.Event, error) {
	s, err := Builtin(name)
	if err != nil {
		return nil, nil, err
	}
	return Simulate(ctx, s, cfg)
}
