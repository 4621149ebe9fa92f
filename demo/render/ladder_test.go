package render

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"github.com/tcplab/tcplab/demo/scenario"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

var update = flag.Bool("update", false, "rewrite golden files")

// settle waits until the trace stops growing, so that each step of a
// scenario is finished before the next starts and the order of events is
// the same from run to run.
func settle(lab *stack.Lab) {
	n, quiet := lab.Trace.Len(), 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && quiet < 4; {
		time.Sleep(10 * time.Millisecond)
		if m := lab.Trace.Len(); m == n {
			quiet++
		} else {
			n, quiet = m, 0
		}
	}
}

// closeTrace runs the built-in close experiment on the memory wire in
// virtual time (scenario.Simulate).
func closeTrace(t testing.TB) []trace.Event {
	t.Helper()
	return simulate(t, "close", true)
}

// simulate runs a built-in scenario and returns its trace.
func simulate(t testing.TB, name string, keep bool) []trace.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, events, err := scenario.SimulateBuiltin(ctx, name, scenario.SimConfig{KeepPackets: keep, QuietWindow: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failures {
		t.Errorf("%v", f)
	}
	return events
}

// bulkTrace runs a bulk transfer: the client writes size bytes while the
// server reads them, then both close.
func bulkTrace(t testing.TB, size int) []trace.Event {
	t.Helper()
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Server.Listen(9527, 0)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := lab.Client.Dial(ctx, lab.ServerAddr(9527))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	settle(lab)
	got := make(chan int, 1)
	go func() {
		buf, total := make([]byte, 64<<10), 0
		for total < size {
			n, err := sc.Read(ctx, buf)
			total += n
			if err != nil {
				break
			}
		}
		got <- total
	}()
	if _, err := cc.Write(ctx, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != size {
		t.Fatalf("server read %d bytes, want %d", n, size)
	}
	settle(lab)
	cc.Close()
	settle(lab)
	sc.Close()
	settle(lab)
	return lab.Trace.Events()
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// checkWidth fails for every line of out wider than width columns.
func checkWidth(t *testing.T, out string, width int) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if n := utf8.RuneCountInString(ansi.ReplaceAllString(line, "")); n > width {
			t.Errorf("line %d is %d columns wide (max %d):\n%s", i+1, n, width, line)
		}
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}

// fixtureEvent is a trace.Event as stored in testdata: every field but
// the packet bytes, which a ladder does not use.
type fixtureEvent struct {
	Index                int
	T                    time.Duration
	Host                 string
	Kind                 trace.Kind
	Conn                 string
	Dir, Src, Dst, Flags string `json:",omitempty"`
	Seq, Ack             uint32 `json:",omitempty"`
	Win                  uint16 `json:",omitempty"`
	Len                  int    `json:",omitempty"`
	Payload              []byte `json:",omitempty"`
	Reason               string `json:",omitempty"`
	Call, Arg            string `json:",omitempty"`
	Ret                  int    `json:",omitempty"`
	Err, Data            string `json:",omitempty"`
	From, To             string `json:",omitempty"`
	SndQueued, RcvQueued int    `json:",omitempty"`
	Text                 string `json:",omitempty"`
}

// closeFixture returns the close experiment as recorded in
// testdata/close.trace.json. The lab runs two stacks on many goroutines,
// so a live trace may order concurrent events (one host's buffer level,
// the other's state change) differently from run to run; golden files are
// rendered from this one recorded run, and -update records a new one.
func closeFixture(t *testing.T) []trace.Event {
	t.Helper()
	path := filepath.Join("testdata", "close.trace.json")
	if *update {
		recordOnce.Do(func() { recordFixture(t, path) })
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to record it)", err)
	}
	var events []trace.Event
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var f fixtureEvent
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		events = append(events, trace.Event{Index: f.Index, T: f.T, Host: f.Host, Kind: f.Kind, Conn: f.Conn,
			Dir: f.Dir, Src: f.Src, Dst: f.Dst, Flags: f.Flags, Seq: f.Seq, Ack: f.Ack, Win: f.Win, Len: f.Len, Payload: f.Payload, Reason: f.Reason,
			Call: f.Call, Arg: f.Arg, Ret: f.Ret, Err: f.Err, Data: f.Data, From: f.From, To: f.To,
			SndQueued: f.SndQueued, RcvQueued: f.RcvQueued, Text: f.Text})
	}
	return events
}

// recordOnce makes -update record one fixture per test binary, which every
// golden file is then rendered from.
var recordOnce sync.Once

// recordFixture runs the close experiment and stores its trace at path.
func recordFixture(t *testing.T, path string) {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range closeTrace(t) {
		f := fixtureEvent{
			Index: e.Index, T: e.T, Host: e.Host, Kind: e.Kind, Conn: e.Conn,
			Dir: e.Dir, Src: e.Src, Dst: e.Dst, Flags: e.Flags, Seq: e.Seq, Ack: e.Ack, Win: e.Win, Len: e.Len, Payload: e.Payload, Reason: e.Reason,
			Call: e.Call, Arg: e.Arg, Ret: e.Ret, Err: e.Err, Data: e.Data, From: e.From, To: e.To,
			SndQueued: e.SndQueued, RcvQueued: e.RcvQueued, Text: e.Text,
		}
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLadderCloseGolden(t *testing.T) {
	events := closeFixture(t)
	var b bytes.Buffer
	if err := Ladder(&b, events, LadderOptions{NoTime: true}); err != nil {
		t.Fatal(err)
	}
	checkWidth(t, b.String(), 100)
	golden(t, "close.ladder.golden", b.Bytes())

	var tm bytes.Buffer
	if err := Ladder(&tm, events, LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	checkWidth(t, tm.String(), 100)
	golden(t, "close.ladder-time.golden", tm.Bytes())

	var c bytes.Buffer
	if err := Ladder(&c, events, LadderOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.String(), "\x1b[") {
		t.Error("Color: no ANSI escapes")
	}
	if plain := ansi.ReplaceAllString(c.String(), ""); plain != tm.String() {
		t.Errorf("coloured ladder without its escapes differs from the plain one:\n%s", plain)
	}
}

// arrowRows returns the rows of a ladder that draw segments, margins cut.
func arrowRows(out string) []string {
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "▶│") || strings.Contains(line, "│◀") {
			rows = append(rows, line[strings.Index(line, "│"):strings.LastIndex(line, "│")])
		}
	}
	return rows
}

func TestLadderCloseLive(t *testing.T) {
	events := closeTrace(t)
	var b bytes.Buffer
	if err := Ladder(&b, events, LadderOptions{NoTime: true}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	checkWidth(t, out, 100)

	// Nothing that changes from run to run may show: no ephemeral port,
	// no absolute sequence number.
	for _, e := range events {
		if e.Kind != trace.Segment {
			continue
		}
		if e.Flags == "S" {
			port := e.Src[strings.LastIndexByte(e.Src, ':')+1:]
			if strings.Contains(out, ":"+port) {
				t.Errorf("ladder shows the ephemeral port %s", port)
			}
		}
		if strings.Contains(e.Flags, "S") {
			if s := strconv.FormatUint(uint64(e.Seq), 10); strings.Contains(out, s) {
				t.Errorf("ladder shows the absolute ISN %s", s)
			}
		}
	}
	for _, want := range []string{`P. seq 1:4 ack 1 len 3 "aaa"`, "R. seq 5 ack 1", "↳ close()", "[FIN-WAIT-2]", `write(7) = 7 "Hi, aaa"`} {
		if !strings.Contains(out, want) {
			t.Errorf("ladder lacks %q", want)
		}
	}
	// One arrow per segment sent, and the segments of a live run are
	// those of the recorded one, in the same order (each causes the next).
	rows := arrowRows(out)
	if want := countOut(events); len(rows) != want {
		t.Errorf("ladder has %d arrows, want %d (one per segment sent)", len(rows), want)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "close.ladder.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(rows, "\n"), strings.Join(arrowRows(string(want)), "\n"); got != want {
		t.Errorf("arrows of a live run differ from the golden file:\n%s\n--- want:\n%s", got, want)
	}
}

func countOut(events []trace.Event) int {
	n := 0
	for _, e := range events {
		if e.Kind == trace.Segment && e.Dir == "out" {
			n++
		}
	}
	return n
}

func TestLadderBulkCollapses(t *testing.T) {
	events := bulkTrace(t, 2<<20)
	if n := countOut(events); n < 1000 {
		t.Fatalf("bulk trace has only %d segments sent", n)
	}
	var b bytes.Buffer
	if err := Ladder(&b, events, LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	checkWidth(t, out, 100)
	if lines := strings.Count(out, "\n"); lines > 60 {
		t.Errorf("bulk ladder has %d lines, want at most 60", lines)
	}
	if !regexp.MustCompile(`client ═▶ server  \S+ ×\d+ seq 1:2097153 \(2\.0 MiB\)`).MatchString(out) {
		t.Error("bulk ladder lacks the summary line of the 2 MiB run")
	}

	// Without collapsing, one arrow per segment.
	var all bytes.Buffer
	if err := Ladder(&all, events, LadderOptions{CollapseAfter: -1, Color: true}); err != nil {
		t.Fatal(err)
	}
	checkWidth(t, all.String(), 100)
	if lines := strings.Count(all.String(), "\n"); lines < countOut(events) {
		t.Errorf("uncollapsed ladder has %d lines for %d segments", lines, countOut(events))
	}
}

// seg builds a segment event for synthetic traces.
func seg(host, dir, flags string, seq, ack uint32, n int) trace.Event {
	src, dst := "10.0.0.1:40000", "10.0.0.2:80"
	if (host == "server") == (dir == "out") {
		src, dst = dst, src
	}
	e := trace.Event{Kind: trace.Segment, Host: host, Conn: "c1", Dir: dir, Src: src, Dst: dst, Flags: flags, Seq: seq, Ack: ack, Len: n, Win: 100}
	if n > 0 {
		e.Payload = bytes.Repeat([]byte("x"), min(n, trace.PayloadPreview))
	}
	return e
}

func TestLadderWithoutSYNAndLost(t *testing.T) {
	// A trace that starts mid-connection: sequence numbers count from the
	// first ones seen. The second segment never arrives.
	events := []trace.Event{
		seg("client", "out", "P.", 1000, 5000, 10),
		seg("server", "in", "P.", 1000, 5000, 10),
		seg("server", "out", ".", 5000, 1010, 0),
		seg("client", "in", ".", 5000, 1010, 0),
		seg("client", "out", "P.", 1010, 5000, 5),
		{Kind: trace.Note, Text: "cable <cut> & \"lost\""},
		{Kind: trace.Call, Host: "client", Conn: "c1", Call: "write", Arg: "3", Ret: 3, Data: "é\x00"},
	}
	var b bytes.Buffer
	if err := Ladder(&b, events, LadderOptions{NoTime: true}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{"P. seq 0:10 ack 0 len 10", ". ack 10", "P. seq 10:15 ack 0 len 5", "✕", "# cable <cut>", `\u00e9`} {
		if !strings.Contains(out, want) {
			t.Errorf("ladder lacks %q", want)
		}
	}
	if strings.Count(out, "✕") != 1 {
		t.Error("want exactly one lost segment")
	}
	checkWidth(t, out, 100)

	var n bytes.Buffer
	if err := Ladder(&n, events[:4], LadderOptions{NoTime: true, Width: 60}); err != nil {
		t.Fatal(err)
	}
	checkWidth(t, n.String(), 60)
}

func TestColorWanted(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv("NO_COLOR", "")
	if ColorWanted(f) {
		t.Error("ColorWanted(regular file) = true")
	}
	if ColorWanted(nil) {
		t.Error("ColorWanted(nil) = true")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		t.Setenv("TERM", "xterm")
		if !ColorWanted(tty) {
			t.Error("ColorWanted(/dev/tty) = false")
		}
		t.Setenv("NO_COLOR", "1")
		if ColorWanted(tty) {
			t.Error("ColorWanted(/dev/tty) with NO_COLOR=1 = true")
		}
	}
}
