package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/cli"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/demo/witness"
	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/trace"
	"github.com/tcplab/tcplab/tun"
	"github.com/tcplab/tcplab/tun/capture"
	"github.com/tcplab/tcplab/tun/kernelpeer"
)

// arrangement is who plays which side of a witnessed run.
type arrangement struct {
	name string
	// kernel is the side the Linux kernel plays ("client" or "server"),
	// "" for gVisor on both sides.
	kernel string
	// expectations says the scenario's own expectations must hold too.
	// With the kernel on one side they are judged by package kernelpeer's
	// TestCatalogue (some describe gVisor only); here they are logged.
	expectations bool
}

// witnessArrangements are the arrangements TestIntegrationWitness runs the
// catalogue in: gVisor on both sides, and the Linux kernel (observed with
// eBPF) as client and as server.
var witnessArrangements = []arrangement{
	{name: "gvisor", kernel: "", expectations: true},
	{name: "kernel-client", kernel: "client"},
	{name: "kernel-server", kernel: "server"},
}

// schedulingNoise is the part of the witness's time tolerance that stands
// for the machine, not for tcplab; see runWitnessed.
const schedulingNoise = 20 * time.Millisecond

// witnessed is one run of a scenario, recorded twice: by the lab's trace
// and by a capture of its wire.
type witnessed struct {
	events  []trace.Event
	wire    []capture.WirePacket
	file    []byte // the capture as written (pcapng)
	hosts   []witness.Host
	dropped int
	res     *scenario.Result
	// start is the trace's zero on the wall clock, within slack.
	start time.Time
	slack time.Duration
}

// runWitnessed runs the built-in scenario name over a fresh TUN lab in
// arrangement a, with a capture started right after the lab exists and
// closed after the lab (so the teardown is on it), the way `tcplab run
// --capture` does.
func runWitnessed(t *testing.T, name string, a arrangement) witnessed {
	t.Helper()
	s, err := scenario.Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	tc := tun.Config{KernelFinTimeout: s.FinWait2}
	for _, kv := range s.KernelSettings() {
		tc.Sysctls = append(tc.Sysctls, tun.Sysctl{Key: kv[0], Value: kv[1]})
	}
	w, err := tun.New(context.Background(), tc)
	if err != nil {
		t.Fatalf("tun.New: %v", err)
	}
	var file bytes.Buffer
	c, err := capture.Start(w, &file, capture.Config{})
	if err != nil {
		w.Close()
		t.Fatalf("capture.Start: %v", err)
	}
	before := time.Now()
	rec := trace.NewRecorder(nil)
	// The tolerance of the time check: where the trace's zero lies, plus
	// schedulingNoise (a sender's event and the capture's stamp of the
	// same packet are taken a few instructions apart, but on a loaded
	// two-core VM a CPU can be taken away between them for milliseconds).
	// The faults this check exists for were 65 to 203 ms off.
	slack := time.Since(before) + schedulingNoise
	hc := s.HostConfig()
	hc.Recorder = rec
	lab, err := stack.NewLab(w, hc, false)
	if err != nil {
		c.Close()
		t.Fatalf("stack.NewLab: %v", err)
	}
	sl := scenario.Lab{Client: lab.Client.Peer(), Server: lab.Server.Peer(), Trace: lab.Trace, Faults: lab, Net: w, Inject: w}
	cl, sv := w.Links()
	hosts := []witness.Host{
		{Name: "client", Addr: cl.Addr.Addr(), Device: cl.Name},
		{Name: "server", Addr: sv.Addr.Addr(), Device: sv.Name},
	}
	var release func() error
	if a.kernel != "" {
		p, rel, err := kernelpeer.NewPeer(w, a.kernel, lab.Trace)
		if err != nil {
			lab.Close()
			c.Close()
			t.Fatalf("kernelpeer.NewPeer: %v", err)
		}
		release = rel
		kc, ks := w.KernelAddrs()
		if a.kernel == "client" {
			sl.Client = p
			hosts[0] = witness.Host{Name: "client", Addr: ks} // the kernel speaks from the server's link
		} else {
			sl.Server = p
			hosts[1] = witness.Host{Name: "server", Addr: kc} // and listens on the client's
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := scenario.Run(ctx, s, sl, scenario.Options{})
	if release != nil {
		if err := release(); err != nil {
			t.Errorf("release kernel peer: %v", err)
		}
	}
	if err := lab.Close(); err != nil {
		t.Errorf("lab.Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("capture.Close: %v", err)
	}
	raw := append([]byte(nil), file.Bytes()...)
	wire, err := capture.Read(&file)
	if err != nil {
		t.Fatalf("capture.Read: %v", err)
	}
	return witnessed{events: lab.Trace.Events(), wire: wire, file: raw, hosts: hosts, dropped: c.Dropped(), res: res, start: before, slack: slack}
}

// witnessPackets turns a capture's TCP packets into the witness's.
func witnessPackets(ps []capture.WirePacket) []witness.Packet {
	var out []witness.Packet
	for _, p := range ps {
		if p.Proto != 6 {
			continue
		}
		out = append(out, witness.Packet{
			Time: p.Time, IfName: p.IfName, ToDevice: p.Dir == capture.Outgoing,
			Src: p.Src, Dst: p.Dst, Flags: p.Flags, Seq: p.Seq, Ack: p.Ack, Win: p.Win, Len: p.Len, Payload: p.Payload,
		})
	}
	return out
}

// TestIntegrationWitness runs every catalogue scenario over TUN with a
// capture of the wire, and checks the trace against it (package witness):
// every packet on the wire is one segment the sender's trace sent and one
// its receiver's trace received, with the same fields, in the same order
// per host and direction; and every segment the trace has crossed the wire,
// unless the trace records that fault injection dropped it. The capture
// must have dropped nothing and the scenario's own expectations must hold.
// It prints a table: packets on the wire, segment events, matched, dropped
// and mismatches per host and direction.
func TestIntegrationWitness(t *testing.T) {
	needTUN(t)
	var mu sync.Mutex
	rows := map[string]witness.Result{}
	var explainedAll []explained
	for _, a := range witnessArrangements {
		t.Run(a.name, func(t *testing.T) {
			for _, name := range scenario.Names() {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					needNetemFor(t, name)
					run := runWitnessed(t, name, a)
					if run.dropped != 0 {
						t.Fatalf("the capture dropped %d packets: no witness", run.dropped)
					}
					for _, f := range run.res.Failures {
						if a.expectations {
							t.Errorf("expectation failed: %s: %s: %s", f.Pos, f.Step, f.Msg)
						} else {
							t.Logf("expectation failed (judged by kernelpeer's TestCatalogue): %s: %s: %s", f.Pos, f.Step, f.Msg)
						}
					}
					tcp := witnessPackets(run.wire)
					if len(tcp) == 0 {
						t.Fatalf("the capture saw no TCP packet")
					}
					r := witness.Compare(witness.Config{Hosts: run.hosts, Start: run.start, Slack: run.slack}, run.events, tcp)
					mu.Lock()
					rows[a.name+" "+name] = r
					mu.Unlock()
					for _, m := range r.Mismatches {
						t.Errorf("%s", m)
					}
					// The same capture, handed to explain alone.
					x := explainRun(t, a.name+" "+name, run.events, run.file)
					mu.Lock()
					explainedAll = append(explainedAll, x...)
					mu.Unlock()
				})
			}
		})
	}
	t.Cleanup(func() {
		checkAccuracy(t, explainedAll)
		var names []string
		for n := range rows {
			names = append(names, n)
		}
		sort.Strings(names)
		var rs []witness.Result
		for _, n := range names {
			rs = append(rs, rows[n])
		}
		t.Logf("trace vs wire:\n%s", witness.Table(names, rs))
		assertNothingLeft(t)
	})
}

// TestIntegrationCaptureFlag runs `tcplab run close --capture FILE` as a
// user would (in-process, with main's constructors) and checks the file
// against the JSON trace the same run printed: they agree packet for
// packet, and the namespace line scripts rely on is unchanged.
func TestIntegrationCaptureFlag(t *testing.T) {
	needTUN(t)
	path := filepath.Join(t.TempDir(), "close.pcapng")
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", "close", "--format", "json", "--capture", path},
		cli.Env{NewTUN: newTUN, StartCapture: startCapture, Stdout: &out, Stderr: &errb})
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, errb.String())
	}
	if !regexp.MustCompile(`(?m)^# lab namespace ready; to watch the wire: nsenter --net=/proc/\d+/fd/\d+ tcpdump -ni any tcp$`).Match(errb.Bytes()) {
		t.Errorf("the namespace line changed:\n%s", errb.String())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wire, err := capture.Read(f)
	if err != nil {
		t.Fatalf("capture.Read: %v", err)
	}
	if want := fmt.Sprintf("# captured %d packets on the wire to %s", len(wire), path); !strings.Contains(errb.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errb.String())
	}
	var events []trace.Event
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var j struct {
			Host, Kind, Dir, Src, Dst, Flags, Data, Text string
			Seq, Ack                                     uint32
			Win                                          uint16
			Len                                          int
		}
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		e := trace.Event{Index: len(events), Host: j.Host, Kind: trace.Kind(j.Kind), Dir: j.Dir, Src: j.Src, Dst: j.Dst, Flags: j.Flags,
			Seq: j.Seq, Ack: j.Ack, Win: j.Win, Len: j.Len, Text: j.Text}
		if j.Len > 0 {
			e.Payload = []byte(j.Data)
		}
		events = append(events, e)
	}
	hosts := []witness.Host{
		{Name: "client", Addr: netip.MustParseAddr("198.18.1.2"), Device: "tcl-client"},
		{Name: "server", Addr: netip.MustParseAddr("198.18.2.2"), Device: "tcl-server"},
	}
	r := witness.Compare(witness.Config{Hosts: hosts}, events, witnessPackets(wire))
	for _, m := range r.Mismatches {
		t.Errorf("%s", m)
	}
	if r.Streams[0].Matched == 0 {
		t.Errorf("nothing matched: %+v", r.Streams)
	}
	assertNothingLeft(t)
}
