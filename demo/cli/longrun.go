package cli

import (
	"cmp"
	"fmt"
	"os"
	"sync"

	"github.com/spf13/cobra"

	"github.com/tcplab/tcplab/demo/pcapng"
	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/stack/trace"
)

// A program run with tcplab exec may run for an hour or move gigabytes.
// Its trace is summarised (trace.Recorder.Summarise): every notable event
// (handshake, FIN, RST, state change, refused arrival, retransmission, zero
// window, failed call, note) is kept in full, and long stretches of routine
// ones (data segments and ACKs one way, successful reads and writes,
// buffer levels) are counted in summary events, with the first events of
// each stretch and its last in full. The live output streams what is kept;
// the outputs written at the end take it too:
//
//   - text, json: the summarised trace, as it happens.
//   - ladder, --svg: drawn from the summarised trace; a summary is one
//     note on the diagram.
//   - --pcap: written as the run goes, from every event (Recorder.Tap):
//     every packet of the gVisor host, summarised or not, with comments
//     that say only what each event knows (pcapng.Stream).
//   - --explain: notes under the events kept, as ever.
//   - the byte ledger and expectations: exact (they count summarised
//     segments: the ledger comes from the stacks, expectations add up
//     summaries' flag counts).
//
// --full-trace keeps every event instead: memory then grows with the run
// (about 0.9 GiB per GiB moved, measured by make bench).

// longRunHelp is what exec's help says about long runs.
const longRunHelp = `
A long run stays usable: routine stretches of the trace (data segments and ACKs one way,
successful reads and writes, buffer levels) are counted in summary events after 16 in a
row on a connection (16 again after each state change), each summary saying how many
segments and bytes it counts, and between when; the first and last of each stretch, and everything notable (handshake,
FIN, RST, state changes, refused arrivals, retransmissions, zero windows, failed calls,
notes) are kept in full. Memory stays flat (about 30 MiB after 1 GiB moved). The ladder
and --svg are drawn from that summarised trace (a summary is a note); --pcap is written
as the run goes, every packet of the gVisor host, with shorter comments than run's.
The trace in memory holds at most about 100,000 events (about 50 MB): a run of many
connections lets the oldest go (they were streamed already), and the trace at the end
starts with a note saying so. --full-trace keeps every event: memory then grows with the
run (about 0.9 GiB per GiB moved). On a terminal, stderr shows a progress line
(time, bytes each way, segments, states, the trace's size, tcplab's heap), erased
before each trace line; not when stderr is a pipe or a file.`

// addLongRunFlag adds --full-trace (exec).
func (f *runFlags) addLongRunFlag(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.full, "full-trace", false, "keep every event of the trace instead of summarising bulk data: memory grows with the run")
}

// startLongRun makes the recorder of a program's run summarise bulk data,
// unless --full-trace, and then streams --pcap as the run goes. The
// returned function ends the stream (call it once the trace is complete);
// it says how many packets it wrote.
func startLongRun(rec *trace.Recorder, f *runFlags) (finish func() error, err error) {
	if f.full {
		return func() error { return nil }, nil
	}
	rec.Summarise(trace.SummaryConfig{})
	if f.pcap == "" {
		return func() error { return nil }, nil
	}
	file, err := os.Create(f.pcap)
	if err != nil {
		return nil, fmt.Errorf("--pcap: %w", err)
	}
	opt := pcapng.Options{Application: "tcplab"}
	if f.pcapView != "both" {
		opt.Only = f.pcapView
	}
	s, err := pcapng.NewStream(file, opt)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("write --pcap %s: %w", f.pcap, err)
	}
	var mu sync.Mutex
	var werr error
	// Disk writes on their own goroutine: Tap runs under the recorder's
	// lock, in the stacks' packet paths.
	out := render.NewAsync(func(e trace.Event) {
		if err := s.Write(e); err != nil {
			mu.Lock()
			werr = cmp.Or(werr, err)
			mu.Unlock()
		}
	})
	rec.Tap(out.Push)
	f.pcapDone = true
	var once sync.Once
	return func() error {
		once.Do(func() {
			out.Close()
			n, err := s.Flush()
			mu.Lock()
			werr = cmp.Or(werr, err, file.Close())
			mu.Unlock()
			if werr == nil {
				fmt.Fprintf(os.Stderr, "# wrote %d packets to %s as the run went (open with wireshark or tshark -r)\n", n, f.pcap)
			}
		})
		mu.Lock()
		defer mu.Unlock()
		if werr != nil {
			return fmt.Errorf("write --pcap %s: %w", f.pcap, werr)
		}
		return nil
	}, nil
}
