package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/tcplab/tcplab/demo/cli"
)

// event is one JSON line of `tcplab run --format json`.
type event struct {
	T                                    float64
	Host, Kind, Conn, Dir, Flags, Reason string
	Call, Err, Data, From, To, Text, Arg string
	Src, Dst                             string
	Seq                                  uint32
	Ret, Len                             int
	// Summary is set on a long run's summary events (kind "summary").
	Summary *struct {
		Of     string
		Count  int
		Bytes  int64
		Seq    uint32
		SeqEnd uint32 `json:"seq_end"`
		Flags  map[string]int
	}
}

// runJSON runs the CLI in-process and returns its events and exit code.
func runJSON(t *testing.T, args ...string) ([]event, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), append(args, "--format", "json"), cli.Env{NewTUN: newTUN, Stdout: &out, Stderr: &errb})
	return jsonLines(t, out.Bytes()), errb.String(), code
}

// jsonLines decodes a trace tcplab wrote as JSON lines (--format json).
func jsonLines(t *testing.T, b []byte) []event {
	t.Helper()
	var evs []event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

// flagsSent returns the flags host sent, in order.
func flagsSent(evs []event, host string) []string {
	var f []string
	for _, e := range evs {
		if e.Kind == "segment" && e.Host == host && e.Dir == "out" {
			f = append(f, e.Flags)
		}
	}
	return f
}

func calls(evs []event, host, call string) []event {
	var r []event
	for _, e := range evs {
		if e.Kind == "call" && e.Host == host && e.Call == call {
			r = append(r, e)
		}
	}
	return r
}

func lastState(evs []event, host string) string {
	s := ""
	for _, e := range evs {
		if e.Kind == "state" && e.Host == host && e.Conn == "c1" {
			s = e.To
		}
	}
	return s
}

// checkArticle runs the article's two experiments on wire and checks every
// claim of the story: who sends what, in which order, the RST's sender and
// reason, what each read returns, and where each side ends.
func checkArticle(t *testing.T, wire string) {
	var wg sync.WaitGroup
	results := map[string][]event{}
	var mu sync.Mutex
	for _, name := range []string{"close", "shutdown"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs, stderr, code := runJSON(t, "run", name, "--wire", wire)
			if code != 0 {
				t.Errorf("tcplab run %s --wire %s = exit %d, stderr:\n%s", name, wire, code, stderr)
			}
			if wire == "tun" && !strings.Contains(stderr, "nsenter --net=/proc/") {
				t.Errorf("run %s did not print how to watch the wire with tcpdump:\n%s", name, stderr)
			}
			mu.Lock()
			results[name] = evs
			mu.Unlock()
		}()
	}
	wg.Wait()

	c := results["close"]
	if got, want := strings.Join(flagsSent(c, "client"), " "), "S . P. F. R."; got != want {
		t.Errorf("close: client sent %q, want %q", got, want)
	}
	if got, want := strings.Join(flagsSent(c, "server"), " "), "S. . . P."; got != want {
		t.Errorf("close: server sent %q, want %q", got, want)
	}
	for _, e := range c {
		if e.Kind == "segment" && e.Dir == "out" && strings.Contains(e.Flags, "R") {
			if e.Host != "client" || !strings.Contains(e.Reason, "after close()") {
				t.Errorf("close: RST from %s with reason %q, want client, data arrived after close()", e.Host, e.Reason)
			}
		}
	}
	if r := calls(c, "server", "read"); len(r) != 2 || r[0].Data != "aaa" || r[1].Err != "EOF" {
		t.Errorf("close: server reads = %+v, want \"aaa\" then EOF", r)
	}
	if s := lastState(c, "client"); s != "CLOSED" {
		t.Errorf("close: client ends in %s, want CLOSED (no TIME-WAIT after RST)", s)
	}

	s := results["shutdown"]
	if got, want := strings.Join(flagsSent(s, "client"), " "), "S . P. F. . ."; got != want {
		t.Errorf("shutdown: client sent %q, want %q", got, want)
	}
	if got, want := strings.Join(flagsSent(s, "server"), " "), "S. . . P. F."; got != want {
		t.Errorf("shutdown: server sent %q, want %q", got, want)
	}
	if r := calls(s, "client", "read"); len(r) != 2 || r[0].Data != "Hi, aaa" || r[1].Err != "EOF" {
		t.Errorf("shutdown: client reads = %+v, want \"Hi, aaa\" then EOF", r)
	}
	if st := lastState(s, "client"); st != "TIME-WAIT" {
		t.Errorf("shutdown: client ends in %s, want TIME-WAIT", st)
	}
	if st := lastState(s, "server"); st != "CLOSED" {
		t.Errorf("shutdown: server ends in %s, want CLOSED", st)
	}
}

// TestArticleOnMemoryWire checks the same story on the in-memory wire (no
// root needed).
func TestArticleOnMemoryWire(t *testing.T) {
	checkArticle(t, "memory")
}
