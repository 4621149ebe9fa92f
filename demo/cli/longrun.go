package cli

import (
	"github.com/spf13/cobra"

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
//   - --pcap: the packets of the segments kept in full (the gVisor host's),
//     not those counted in summaries; --capture records the whole wire.
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
notes) are kept in full. Memory stays flat (about 30 MiB after 1 GiB moved). The ladder,
--svg and --pcap take that summarised trace (--pcap: the packets kept in full; use
--capture for the whole wire). --full-trace keeps every event: memory then grows with
the run (about 0.9 GiB per GiB moved). On a terminal, stderr shows a progress line
(time, bytes each way, segments, states, the trace's size, tcplab's heap), erased
before each trace line; not when stderr is a pipe or a file.`

// addLongRunFlag adds --full-trace (exec).
func (f *runFlags) addLongRunFlag(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.full, "full-trace", false, "keep every event of the trace instead of summarising bulk data: memory grows with the run")
}

// startLongRun makes the recorder of a program's run summarise bulk data,
// unless --full-trace.
func startLongRun(rec *trace.Recorder, f *runFlags) {
	if !f.full {
		rec.Summarise(trace.SummaryConfig{})
	}
}
