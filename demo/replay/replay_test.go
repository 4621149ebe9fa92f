package replay

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tcplab/tcplab/demo/explain"
	"github.com/tcplab/tcplab/demo/pcapng"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack/trace"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// capture runs the built-in scenario name on the memory wire and returns
// its capture as `tcplab run --wire memory --pcap` writes it.
func capture(t *testing.T, name string) []byte {
	t.Helper()
	_, events, err := scenario.SimulateBuiltin(context.Background(), name, scenario.SimConfig{KeepPackets: true})
	if err != nil {
		t.Fatalf("simulate %s: %v", name, err)
	}
	var b bytes.Buffer
	if _, err := pcapng.Write(&b, events, pcapng.Options{}); err != nil {
		t.Fatalf("pcapng: %v", err)
	}
	return b.Bytes()
}

// conns explains a capture, keeping each connection's packets.
func conns(t *testing.T, name string, file []byte) []*explain.Conn {
	t.Helper()
	var cs []*explain.Conn
	if _, err := explain.Analyze(name, bytes.NewReader(file), true, func(c *explain.Conn) { cs = append(cs, c) }); err != nil {
		t.Fatalf("explain %s: %v", name, err)
	}
	return cs
}

// replayed builds connection c's scenario, parses it and runs it on the
// memory wire, and returns the replay and the run's teardown pattern.
func replayed(t *testing.T, name string, c *explain.Conn) (*Replay, []string) {
	t.Helper()
	r, err := Build(c, Options{Source: name + ".pcapng"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	s, err := scenario.Parse(name+"-replay.lab", strings.NewReader(r.Lab))
	if err != nil {
		t.Fatalf("the replay does not parse: %v\n%s", err, r.Lab)
	}
	res, events, err := scenario.Simulate(context.Background(), s, scenario.SimConfig{})
	if err != nil {
		t.Fatalf("simulate the replay: %v", err)
	}
	if res.Stopped {
		t.Errorf("the replay stopped: %v\n%s", res.Failures, r.Lab)
	}
	return r, Pattern(events)
}

// injected reports whether the catalogue scenario crafts segments with
// inject (a blind RST, a RST into TIME-WAIT): no application call makes
// them, so a replay cannot reproduce its capture.
func injected(t *testing.T, name string) bool {
	src, err := scenario.Source(name)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^\s*inject\b`).Match(src)
}

// silent are the catalogue's scenarios whose connections end without a FIN
// or RST on the wire (gVisor's keepalive timeout closes without a RST; the
// connects of accept-queue-overflow stay blocked or open): their replays
// must send none either.
var silent = map[string]bool{"keepalive-timeout": true, "accept-queue-overflow": true}

// Each catalogue scenario's capture, replayed connection by connection on
// gVisor, sends the same FINs and RSTs in the same order as the capture
// shows; the generated scenario parses and runs to its end. The stories
// that need overlapping calls are among them: close-syn-sent (a close()
// while a non-blocking connect() waits) and accept-queue-overflow (connects
// left blocked in the background by a full accept queue).
func TestReplayReproducesTeardown(t *testing.T) {
	for _, name := range scenario.Names() {
		if injected(t, name) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cs := conns(t, name, capture(t, name))
			if len(cs) == 0 {
				t.Fatal("no connection in the capture")
			}
			teardowns := 0
			for _, c := range cs {
				r, got := replayed(t, name, c)
				teardowns += len(r.Pattern)
				if d := Differ(r.Pattern, got); d != "" {
					t.Errorf("conn %d: teardown differs: %s\ncapture %q\nreplay  %q\n%s", c.N, d, r.Pattern, got, r.Lab)
				}
			}
			if teardowns == 0 && !silent[name] {
				t.Errorf("no FIN or RST in the capture of %s", name)
			}
			if teardowns != 0 && silent[name] {
				t.Errorf("the capture of %s has FINs or RSTs: %d (it is listed as silent)", name, teardowns)
			}
		})
	}
}

// A bulk transfer in two writes with reads between, then the close
// experiment's teardown: the replay has several writes and reads, and the
// same teardown.
func TestReplayBulk(t *testing.T) {
	src := `# bulk: two big writes, reads between, a close, a late answer.
server listen 8080
client connect server:8080
server accept
client write 60000
server read 32768
server read 32768
client write 40000
client close
server read all
server write 1000
`
	s, err := scenario.Parse("bulk.lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	_, events, err := scenario.Simulate(context.Background(), s, scenario.SimConfig{KeepPackets: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := pcapng.Write(&b, events, pcapng.Options{Only: "client"}); err != nil {
		t.Fatal(err)
	}
	cs := conns(t, "bulk", b.Bytes())
	r, got := replayed(t, "bulk", cs[0])
	if d := Differ(r.Pattern, got); d != "" || strings.Join(got, ", ") != "client FIN, client RST" {
		t.Errorf("teardown %q, capture %q: %s\n%s", got, r.Pattern, d, r.Lab)
	}
	var wrote, reads int
	for _, l := range strings.Split(r.Lab, "\n") {
		var n int
		if _, err := fmt.Sscanf(l, "client write %d", &n); err == nil {
			wrote += n
		}
		if strings.HasPrefix(l, "server read") {
			reads++
		}
	}
	if wrote != 100000 || reads < 2 {
		t.Errorf("the replay writes %d bytes (want 100000) and reads %d times (want 2 or more):\n%s", wrote, reads, r.Lab)
	}
}

// The scenarios of two replays, against golden files (go test
// ./demo/replay -update rewrites them).
func TestReplayGolden(t *testing.T) {
	for _, name := range []string{"close", "linger-zero"} {
		t.Run(name, func(t *testing.T) {
			cs := conns(t, name, capture(t, name))
			r, err := Build(cs[0], Options{Source: name + ".pcapng"})
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+"-replay.lab")
			if *update {
				os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(golden, []byte(r.Lab), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./demo/replay -update)", err)
			}
			if r.Lab != string(want) {
				t.Errorf("replay of %s differs from %s:\n--- want\n%s\n--- got\n%s", name, golden, want, r.Lab)
			}
			if _, err := scenario.Parse(golden, bytes.NewReader(want)); err != nil {
				t.Errorf("golden file does not parse: %v", err)
			}
		})
	}
}

// A trace's pattern and the reasons of its FINs and RSTs.
func TestPatternOfTrace(t *testing.T) {
	_, events, err := scenario.SimulateBuiltin(context.Background(), "close", scenario.SimConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(Pattern(events), ", "); got != "client FIN, client RST" {
		t.Errorf("Pattern = %s", got)
	}
	if r := Reason(events, "client RST"); !strings.Contains(r, "after close()") {
		t.Errorf("Reason(client RST) = %q", r)
	}
	if r := Reason(events, "server FIN"); r != "" {
		t.Errorf("Reason(server FIN) = %q, want none", r)
	}
}

// The patterns and their difference.
func TestPatternDiffer(t *testing.T) {
	for _, tc := range []struct {
		want, got []string
		diff      string
	}{
		{[]string{"client FIN", "client RST"}, []string{"client FIN", "client RST"}, ""},
		{[]string{"client FIN", "client RST"}, []string{"client FIN", "server FIN"}, "server FIN where the capture has client RST"},
		{[]string{"client FIN"}, []string{"client FIN", "server FIN"}, "then server FIN, which the capture does not have"},
		{[]string{"client FIN", "server FIN"}, []string{"client FIN"}, "no server FIN (the capture has it)"},
	} {
		if got := Differ(tc.want, tc.got); got != tc.diff {
			t.Errorf("Differ(%q, %q) = %q, want %q", tc.want, tc.got, got, tc.diff)
		}
	}
}

// FuzzReplay feeds replay arbitrary captures: every connection explain
// finds either cannot be replayed (an error) or becomes a scenario that
// parses. Its seeds are in testdata/fuzz/FuzzReplay: the client's view of
// the close, linger-zero and connect-refused runs on the memory wire
// (tcplab run NAME --wire memory --pcap F --pcap-view client), kept as
// files so that a fuzz worker does not run a lab to start.
func FuzzReplay(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		explain.Analyze("fuzz.pcap", bytes.NewReader(data), true, func(c *explain.Conn) {
			r, err := Build(c, Options{})
			if err != nil {
				return
			}
			if _, err := scenario.Parse("fuzz.lab", strings.NewReader(r.Lab)); err != nil {
				t.Fatalf("conn %d: the replay does not parse: %v\n%s", c.N, err, r.Lab)
			}
		})
	})
}

// The stories with overlapping calls: the replay of close-syn-sent closes a
// non-blocking socket while its connect() waits (the wire held, so that
// the SYN/ACK comes after the close) and sends the capture's lone client
// RST; each connect of accept-queue-overflow that got no answer becomes a
// background connect left blocked by a listener a stand-in connection
// fills, says so in its notes, and in the replay's run the server answers
// only the stand-in's SYN.
func TestReplayOverlap(t *testing.T) {
	cs := conns(t, "close-syn-sent", capture(t, "close-syn-sent"))
	if len(cs) != 1 {
		t.Fatalf("close-syn-sent: %d connections, want 1", len(cs))
	}
	r, got := replayed(t, "close-syn-sent", cs[0])
	for _, want := range []string{"wire hold", "client set nonblock on on c", "client connect server:9527 on c  expect error EINPROGRESS", "client close on c", "wire release"} {
		if !strings.Contains(r.Lab, "\n"+want) {
			t.Errorf("close-syn-sent: the replay lacks %q:\n%s", want, r.Lab)
		}
	}
	if strings.Join(got, ", ") != "client RST" {
		t.Errorf("close-syn-sent: the replay's teardown is %q, want client RST", got)
	}

	name := "accept-queue-overflow"
	cs = conns(t, name, capture(t, name))
	blocked := 0
	for _, c := range cs {
		if c.Established() {
			continue
		}
		blocked++
		r, err := Build(c, Options{Source: name + ".pcapng"})
		if err != nil {
			t.Fatalf("conn %d: Build: %v", c.N, err)
		}
		if !strings.Contains(r.Lab, "expect blocked &") || len(r.Notes) == 0 || !strings.Contains(strings.Join(r.Notes, " "), "stand-in") {
			t.Errorf("conn %d: want a blocked background connect and a note naming the stand-in:\nnotes %q\n%s", c.N, r.Notes, r.Lab)
		}
		s, err := scenario.Parse("replay.lab", strings.NewReader(r.Lab))
		if err != nil {
			t.Fatalf("conn %d: the replay does not parse: %v\n%s", c.N, err, r.Lab)
		}
		_, events, err := scenario.Simulate(context.Background(), s, scenario.SimConfig{})
		if err != nil {
			t.Fatalf("conn %d: simulate: %v", c.N, err)
		}
		answered := map[string]bool{}
		for _, e := range events {
			if e.Kind == trace.Segment && e.Dir == "out" && e.Host == "server" && e.Flags == "S." {
				answered[e.Dst] = true
			}
		}
		if len(answered) != 1 {
			t.Errorf("conn %d: the server answered SYNs of %d connections (%v), want the stand-in's only", c.N, len(answered), answered)
		}
	}
	if blocked != 2 {
		t.Errorf("accept-queue-overflow: %d connections without a handshake, want 2", blocked)
	}
}
