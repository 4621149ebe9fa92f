// Package memwire provides an in-memory stack.Wire: two gVisor channel link
// endpoints joined in-process. It needs no privileges and no kernel, so
// unit tests and unprivileged runs use it; the real default wire is the TUN
// pair in package tun.
//
// # Real and virtual time
//
// By default two pump goroutines move packets as soon as they are sent. With
// Config.Clock set, the wire runs the lab in virtual time instead: one
// deliverer moves one packet at a time and waits until the lab is quiet
// (nothing happened for Config.QuietWindow of real time) before the next, and
// Sleep advances the virtual clock one timer deadline at a time, letting the
// stacks react to each. Runs with the same seed then produce the same trace,
// and a 60 s TIME-WAIT takes milliseconds.
//
// # Network conditions
//
// In virtual time, SetConditions imposes netem's model (stack.Conditions)
// on each direction: loss, delay with jitter, reordering, duplication,
// corruption and a rate limit, drawn from Config.Seed in the order packets
// are sent, so a lossy run repeats byte for byte; Config.Note records what
// happened to each packet. InjectSegment puts a crafted packet on a host's
// link.
//
// # Cost
//
// Each packet is copied once (flattened out of the sender's packet buffer
// into a fresh one for the receiver), as a real link would. In virtual time
// each delivery also costs two quiet windows of real time.
package memwire

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	tcpipstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/vclock"
)

// Config configures a Wire. Zero values are defaults.
type Config struct {
	// MTU of both links; 0 means 1500.
	MTU int
	// QueueLen is each direction's packet queue; 0 means 1024.
	QueueLen int
	// Clock, if set, runs the wire in virtual time on this clock (the
	// hosts must use it too).
	Clock *vclock.Clock
	// Activity, in virtual time, returns a number that changes whenever
	// something happens in the lab (e.g. trace.Recorder.Len); the wire
	// counts its own packets too.
	Activity func() int
	// OnQuiet, in virtual time, runs whenever the lab looks quiet, before
	// the wire trusts it: NewLab samples the hosts' states there, so that
	// timer-driven changes are seen while nothing else runs. If it causes
	// activity, the wait goes on.
	OnQuiet func()
	// QuietWindow, in virtual time, is how long in real time nothing may
	// happen for the lab to count as quiet; 0 means 3 ms.
	QuietWindow time.Duration
	// Blocked, in virtual time, reports whether a call in the lab is
	// waiting (for the peer or a timer) and until when on the clock time
	// may pass for it (zero: no limit). While one is, and the lab is quiet
	// with nothing in flight, the wire moves the clock to the next timer
	// deadline up to that limit, as time would pass in real time: a
	// retransmission, a persist probe or a linger timeout then happens.
	// NewLab wires it to the hosts (stack.Host.Blocked).
	Blocked func() (until time.Time, ok bool)
	// Latency, in virtual time, is the one-way delay of the wire; 0 means
	// 250 µs (about what the TUN path measures). Without it every RTT
	// would be 0 and timers computed from RTTs (tail-loss probes) would
	// fire at once.
	Latency time.Duration
	// Seed seeds the random draws of network conditions (SetConditions),
	// so that a run with loss or jitter repeats exactly; 0 means 1.
	Seed uint64
	// Note, if set, records what the network conditions did to a packet
	// (lost, delayed, reordered, duplicated, corrupted) as a note of the
	// sending host; NewLab wires it to the trace.
	Note func(host, text string)
}

// Addresses of the hosts on the in-memory wire: one shared /24.
var (
	ClientAddr = netip.MustParsePrefix("198.18.0.1/24")
	ServerAddr = netip.MustParsePrefix("198.18.0.2/24")
)

// Wire is an in-memory wire between a client and a server host.
type Wire struct {
	cfg            Config
	client, server *channel.Endpoint

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// Virtual time: packets sent and not yet delivered, in send order.
	mu       sync.Mutex
	queue    []packet
	moved    int // packets queued or delivered so far (activity)
	inflight bool
	// Network conditions (virtual time only): what each direction does
	// to its packets, the packets scheduled for delivery, by due time.
	net      netState
	kick     chan struct{}
	sleeping atomic.Int32 // Sleeps in progress: they move the clock
}

type packet struct {
	b          []byte
	fromClient bool
	at         time.Time // virtual time it was sent
	due        time.Time // virtual time it arrives (set when scheduled)
	n          uint64    // scheduling order, breaks ties of due
	injected   bool      // crafted (InjectSegment): no network conditions
}

var _ stack.Wire = (*Wire)(nil)

// New returns a running in-memory wire. Close stops its goroutines.
func New(cfg Config) *Wire {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = 1024
	}
	if cfg.QuietWindow == 0 {
		cfg.QuietWindow = 3 * time.Millisecond
	}
	if cfg.Latency == 0 {
		cfg.Latency = 250 * time.Microsecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Wire{
		cfg:    cfg,
		client: channel.New(cfg.QueueLen, uint32(cfg.MTU), ""),
		server: channel.New(cfg.QueueLen, uint32(cfg.MTU), ""),
		cancel: cancel,
		kick:   make(chan struct{}, 1),
	}
	w.net.init(cfg.Seed)
	w.wg.Add(2)
	go w.pump(ctx, w.client, true)
	go w.pump(ctx, w.server, false)
	if cfg.Clock != nil {
		w.wg.Add(1)
		go w.deliverer(ctx)
	}
	return w
}

// pump takes the packets from's host sends, and delivers them at once or,
// in virtual time, queues them for the deliverer.
func (w *Wire) pump(ctx context.Context, from *channel.Endpoint, fromClient bool) {
	defer w.wg.Done()
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		pkt.DecRef()
		b := append([]byte(nil), v.AsSlice()...)
		v.Release()
		if w.cfg.Clock == nil {
			w.deliver(packet{b: b, fromClient: fromClient})
			continue
		}
		p := packet{b: b, fromClient: fromClient, at: w.cfg.Clock.Now()}
		w.mu.Lock()
		w.queue = append(w.queue, p)
		w.moved++
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

func (w *Wire) deliver(p packet) {
	to := w.server
	if !p.fromClient {
		to = w.client
	}
	np := tcpipstack.NewPacketBuffer(tcpipstack.PacketBufferOptions{Payload: buffer.MakeWithData(p.b)})
	to.InjectInbound(header.IPv4ProtocolNumber, np)
	np.DecRef()
}

// deliverer moves packets one at a time in virtual time, letting the
// receiver finish reacting to each before the next. Sent packets are
// scheduled (given a due time by the direction's conditions) once the lab
// is quiet, in the order they were sent; the earliest due is delivered
// next, after the timers due before it.
func (w *Wire) deliverer(ctx context.Context) {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		if len(w.queue) == 0 && len(w.net.sched) == 0 {
			w.inflight = false
			w.mu.Unlock()
			if w.advance(ctx) {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-w.kick:
			}
			continue
		}
		w.inflight = true
		w.mu.Unlock()
		// Let the sender finish what it is doing (e.g. a write() recording
		// its result) before the receiver reacts: it keeps the order of
		// the trace the same from run to run.
		w.waitQuiet(ctx, false)
		if ctx.Err() != nil {
			return
		}
		w.schedule()
		w.mu.Lock()
		if len(w.net.sched) == 0 {
			w.mu.Unlock()
			continue // all lost
		}
		p := w.net.sched[0]
		w.mu.Unlock()
		// The packet spends its time in flight; timers due meanwhile fire
		// first, each followed by the lab's reaction (which may send a
		// packet due earlier: look again).
		c := w.cfg.Clock
		if c.FireNext(p.due) {
			w.waitQuiet(ctx, false)
			continue
		}
		c.Set(p.due)
		w.mu.Lock()
		w.net.sched = w.net.sched[1:]
		w.moved++
		w.mu.Unlock()
		w.deliver(p)
		w.waitQuiet(ctx, false)
	}
}

// blockedQuiet is how many quiet windows in a row advance waits before it
// moves the clock for a blocked call (a starved goroutine must not pass for
// one waiting on a timer; measured: 1 window let the clock jump under -race
// on a loaded 2-core machine).
const blockedQuiet = 4

// advance moves the clock to the next timer deadline when a call is
// blocked, no Sleep is moving the clock, and the lab is quiet with nothing
// queued, as real time would pass for the blocked call. It returns true if
// it fired a timer or a packet got queued meanwhile (the deliverer then
// goes on), false if there is nothing to do until the next kick.
func (w *Wire) advance(ctx context.Context) bool {
	if w.cfg.Blocked == nil || w.sleeping.Load() > 0 {
		return false
	}
	if _, ok := w.cfg.Blocked(); !ok {
		return false
	}
	// Moving the clock is only right when every goroutine of the lab is
	// waiting for time: a goroutine starved of CPU looks quiet too. So the
	// lab must be quiet for blockedQuiet windows in a row, with nothing
	// queued.
	for range blockedQuiet {
		w.waitQuiet(ctx, false)
		w.mu.Lock()
		queued := len(w.queue) > 0
		w.mu.Unlock()
		if queued {
			return true // the deliverer (our caller) moves it first
		}
	}
	until, ok := w.cfg.Blocked()
	if !ok || ctx.Err() != nil || w.sleeping.Load() > 0 {
		return false
	}
	if until.IsZero() {
		until = time.Unix(1<<62, 0) // no limit
	}
	return w.cfg.Clock.FireNext(until)
}

// Wake tells the wire that a call started waiting (stack.Config.OnBlock),
// so that in virtual time it checks whether the clock must move.
func (w *Wire) Wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// activity returns a number that changes whenever the lab does something.
func (w *Wire) activity() int {
	w.mu.Lock()
	n := w.moved
	w.mu.Unlock()
	if w.cfg.Activity != nil {
		n += w.cfg.Activity() << 20
	}
	return n
}

// waitQuiet returns once nothing has happened for a quiet window; with
// empty, also only once no packet is queued or being delivered.
func (w *Wire) waitQuiet(ctx context.Context, empty bool) {
	last, since := w.activity(), time.Now()
	tick := w.cfg.QuietWindow / 3
	for ctx.Err() == nil {
		time.Sleep(tick)
		a := w.activity()
		busy := w.cfg.Clock.Busy()
		if empty {
			w.mu.Lock()
			busy = busy || len(w.queue) > 0 || len(w.net.sched) > 0 || w.inflight
			w.mu.Unlock()
		}
		if a != last || busy {
			last, since = a, time.Now()
			continue
		}
		if time.Since(since) >= w.cfg.QuietWindow {
			if w.cfg.OnQuiet != nil {
				w.cfg.OnQuiet()
				if w.activity() != a {
					last, since = w.activity(), time.Now()
					continue
				}
			}
			return
		}
	}
}

// Settle waits until the lab is quiet: nothing queued, nothing being
// delivered, nothing happening. In real time (no Clock) it returns at once.
func (w *Wire) Settle(ctx context.Context) {
	if w.cfg.Clock == nil {
		return
	}
	w.waitQuiet(ctx, true)
}

// Sleep lets d of virtual time pass: it fires each timer due within d at
// its deadline and lets the lab settle after each. It needs a Clock; in
// real time, sleep on the wall clock instead (the scenario runner's
// default).
func (w *Wire) Sleep(ctx context.Context, d time.Duration) error {
	c := w.cfg.Clock
	if c == nil {
		return errors.New("memwire: Sleep needs virtual time (Config.Clock); this wire runs in real time")
	}
	w.sleeping.Add(1)
	defer w.sleeping.Add(-1)
	w.Settle(ctx)
	until := c.Now().Add(d)
	for c.FireNext(until) {
		w.Settle(ctx)
	}
	c.Set(until)
	w.Settle(ctx)
	return ctx.Err()
}

// Links implements stack.Wire.
func (w *Wire) Links() (client, server stack.Link) {
	return stack.Link{Endpoint: w.client, Addr: ClientAddr, Name: "mem-client"},
		stack.Link{Endpoint: w.server, Addr: ServerAddr, Name: "mem-server"}
}

// Kind implements stack.Wire.
func (w *Wire) Kind() string { return "memory" }

// Close implements stack.Wire: it stops the goroutines and waits for them.
func (w *Wire) Close() error {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
		w.client.Close()
		w.server.Close()
	})
	return nil
}
