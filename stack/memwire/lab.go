package memwire

import (
	"context"
	"math/rand"
	randv2 "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/stack/vclock"
)

// LabConfig configures NewLab.
type LabConfig struct {
	// Host is the configuration of both hosts. Its Clock, RandSource,
	// SecureRNG, PollInterval and OnBlock are set by NewLab, and its
	// Recorder when nil (on the lab's clock).
	Host stack.Config
	// Wire configures the wire; its Clock, Activity, OnQuiet and Blocked
	// are set by NewLab.
	Wire Config
	// RealTime runs on the wall clock instead of virtual time.
	RealTime bool
	// Seed seeds both hosts' randomness (ISNs, ephemeral ports) and, unless
	// Wire.Seed is set, the wire's network conditions, so that two runs
	// with the same seed produce the same trace. 0 means 1.
	Seed uint64
}

// NewLab returns a lab on a fresh in-memory wire, in virtual time unless
// cfg.RealTime, with its trace on the lab's clock. The lab owns the wire.
func NewLab(cfg LabConfig) (*stack.Lab, *Wire, error) {
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	hc := cfg.Host
	var labp atomic.Pointer[stack.Lab] // set once both hosts exist
	if !cfg.RealTime {
		clk := vclock.New()
		hc.Clock = clk
		hc.PollInterval = -1 // Settle samples instead, on the lab's rhythm
		cfg.Wire.Clock = clk
		hc.Recorder = trace.NewRecorder(clk)
		rec := hc.Recorder
		cfg.Wire.Activity = rec.Len
		cfg.Wire.Note = func(host, text string) {
			rec.Emit(trace.Event{Host: host, Kind: trace.Note, Text: text})
		}
		if cfg.Wire.Seed == 0 {
			cfg.Wire.Seed = cfg.Seed
		}
		cfg.Wire.OnQuiet = func() {
			if lab := labp.Load(); lab != nil {
				lab.Client.Sample()
				lab.Server.Sample()
			}
		}
		cfg.Wire.Blocked = func() (time.Time, bool) {
			lab := labp.Load()
			if lab == nil {
				return time.Time{}, false
			}
			cu, cok := lab.Client.Blocked()
			su, sok := lab.Server.Blocked()
			switch {
			case !cok:
				return su, sok
			case !sok:
				return cu, true
			case cu.IsZero() || su.IsZero():
				return time.Time{}, true
			case su.After(cu):
				return su, true
			}
			return cu, true
		}
	}
	if hc.Recorder == nil {
		hc.Recorder = trace.NewRecorder(nil)
	}
	var seed [32]byte
	for i := range 8 {
		seed[i] = byte(cfg.Seed >> (8 * i))
	}
	w := New(cfg.Wire)
	if !cfg.RealTime {
		hc.OnBlock = w.Wake
	}
	lab, err := stack.NewLabSeeded(w, hc, func(host int) (rand.Source, *randv2.ChaCha8) {
		s := seed
		s[31] = byte(host)
		return rand.NewSource(int64(cfg.Seed)*2 + int64(host)), randv2.NewChaCha8(s)
	})
	if err != nil {
		return nil, nil, err
	}
	labp.Store(lab)
	return lab, w, nil
}

// Settle and Sleep are the lab's clock for a scenario runner.
var (
	_ func(context.Context)                      = (*Wire)(nil).Settle
	_ func(context.Context, time.Duration) error = (*Wire)(nil).Sleep
)
