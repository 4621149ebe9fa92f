package scenario

import (
	"fmt"
	"time"

	"github.com/tcplab/tcplab/stack"
)

// Pos is a place in a scenario file.
type Pos struct {
	File      string
	Line, Col int
}

// String returns "file:line:col".
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Script is a parsed scenario.
type Script struct {
	// Name is the scenario's name (file name without .lab).
	Name string
	// Doc is the comment block at the top of the file: the explanation.
	Doc string
	// Steps run in order.
	Steps []Step
	// Settings made with "config".
	TimeWait, FinWait2 time.Duration
	// Kernel is the side a real Linux socket plays ("config kernel
	// client"), or "" for gVisor on both sides.
	Kernel string
	// Knobs are the "config gvisor|kernel KEY VALUE" settings, in order
	// (knobs.go).
	Knobs []Knob
	// ExactSegments, from "needs exact-segments "why"", says why the
	// story depends on exact segment counts: check skips the scenario
	// under --net.
	ExactSegments string
}

// Step is one line of a scenario.
type Step interface {
	Position() Pos
	String() string // the source line, trimmed
}

type base struct {
	pos  Pos
	text string
}

func (b base) Position() Pos        { return b.pos }
func (b base) String() string       { return b.text }
func (b *base) set(p Pos, t string) { b.pos, b.text = p, t }

// Call is a socket call made by one host.
type Call struct {
	base
	Host string // "client" or "server"
	Op   string // listen connect accept write read shutdown close set
	// Operands, by Op.
	Port    uint16 // listen, connect
	From    uint16 // connect: local port (0: ephemeral)
	Backlog int    // listen
	Data    []byte // write: the bytes of a "text" write
	Fill    int64  // write N: this many bytes of filler (see Filler), made as they are written
	N       int    // read: buffer size, at most MaxRead; 0 means 65536
	All     bool   // read all: until EOF or error
	How     string // shutdown: rd wr rdwr
	Opt     string // set: linger nodelay sndbuf rcvbuf
	Val     string // set: the value as written
	On      string // the socket used ("" = the host's latest)
	As      string // name for the socket created
	Expect  *CallExpect
	// Background: the call ends in "&"; the script goes on while it
	// runs (see background.go).
	Background bool
}

// CallExpect is an inline expectation on a call's result.
type CallExpect struct {
	Pos   Pos
	Data  *string // read returned exactly these bytes (all of them for read all)
	EOF   bool    // returned 0 / end of stream
	OK    bool    // no error
	Errno string  // failed with this error name, e.g. ECONNRESET
	Bytes int     // returned this many bytes (-1: not checked)
	// Took, when set, bounds how long the call took on the lab's clock
	// ("expect took 1s..3s"; fields.go).
	Took *Span
	// Blocked: the call is still blocked when the script waits for it
	// ("wait", the step timeout) or ends.
	Blocked bool
}

// Sleep pauses the script (the stacks keep running).
type Sleep struct {
	base
	Host string // cosmetic: who is "working"
	D    time.Duration
}

// WaitQuiet waits until no segment has moved for D.
type WaitQuiet struct {
	base
	D time.Duration
}

// Wire injects a fault: hold, release, or drop.
type Wire struct {
	base
	Op    string // hold release drop
	Host  string // drop: whose segments
	Flags string // drop: which segments
	Count int    // drop: how many (default 1)
}

// Note adds free text to the trace.
type Note struct {
	base
	Text string
}

// RelayHost is the host name of a relay program's events (tcplab exec
// --side middle); expectations may name it ("expect relay sent F.").
const RelayHost = "relay"

// Expect checks the trace so far.
type Expect struct {
	base
	Host string
	What string // sent received state final buffer
	// sent / received
	Flags  string
	Count  int // -1: at least one
	Never  bool
	Reason string // substring of the FIN/RST reason
	Before *Expect
	After  *Expect // its first match comes after the other's (fields.go)
	// Within, if set, lets the expectation wait up to this long on the
	// lab's clock for the trace to meet it ("within 2s"; fields.go).
	Within time.Duration
	// Fields are conditions on the segment's numbers ("seq 4 ack 1",
	// "win 0", "len >0"; fields.go).
	Fields []FieldCond
	// state / final
	State string
	// buffer
	Queue string // snd rcv
	Bytes int
	On    string
}

// Net sets the network conditions of one or both directions of the wire
// ("net [client->server|server->client] loss 5% delay 100ms ..." or "net
// clear"). The parameters it names replace those in effect; the others
// stay (Clear resets them all first).
type Net struct {
	base
	// Dirs are the directions it applies to: both unless the statement
	// names one.
	Dirs []stack.Direction
	// Clear resets the direction's conditions before Set applies.
	Clear bool
	// Cond holds the values of the parameters named in Fields ("loss",
	// "delay", "jitter", "reorder", "duplicate", "corrupt", "rate").
	Cond   stack.Conditions
	Fields []string
}

// Apply returns cur with n's parameters applied.
func (n *Net) Apply(cur stack.Conditions) stack.Conditions {
	if n.Clear {
		cur = stack.Conditions{}
	}
	for _, f := range n.Fields {
		switch f {
		case "loss":
			cur.Loss = n.Cond.Loss
		case "delay":
			cur.Delay = n.Cond.Delay
		case "jitter":
			cur.Jitter = n.Cond.Jitter
		case "reorder":
			cur.Reorder = n.Cond.Reorder
		case "duplicate":
			cur.Duplicate = n.Cond.Duplicate
		case "corrupt":
			cur.Corrupt = n.Cond.Corrupt
		case "rate":
			cur.Rate = n.Cond.Rate
		}
	}
	return cur
}

// UsesNet reports whether s has a "net" step (network conditions): such a
// scenario needs a wire that implements stack.Conditioner.
func (s *Script) UsesNet() bool {
	for _, st := range s.Steps {
		if _, ok := st.(*Net); ok {
			return true
		}
	}
	return false
}

// Inject delivers a crafted segment to Host as if its peer had sent it on
// one of Host's connections ("inject server R seq 1000").
type Inject struct {
	base
	Host  string // the receiver
	Flags string // tcpdump notation
	// Seq, Ack and Win, when their Has flag is set; otherwise the
	// defaults: the next sequence number Host expects, the next one it
	// will send (with an ACK flag; 0 without), and window 65535.
	Seq, Ack       int64
	Win            int
	HasSeq, HasAck bool
	HasWin         bool
	Data           []byte
	On             string // Host's socket ("" = its latest)
	Abs            bool   // Seq and Ack are absolute, not relative to the ISNs
}
