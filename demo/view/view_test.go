package view

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplab/tcplab/demo/explain"
	"github.com/tcplab/tcplab/demo/pcapng"
	"github.com/tcplab/tcplab/demo/render"
	"github.com/tcplab/tcplab/demo/scenario"
	"github.com/tcplab/tcplab/stack/trace"
)

var (
	closeOnce   sync.Once
	closeEvents []trace.Event
	closeErr    error
)

// closeTrace runs the close experiment on the memory wire (virtual time)
// with packets kept, once for the package's tests.
func closeTrace(t testing.TB) []trace.Event {
	t.Helper()
	closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, events, err := scenario.SimulateBuiltin(ctx, "close", scenario.SimConfig{KeepPackets: true, QuietWindow: 10 * time.Millisecond})
		if err == nil && len(res.Failures) > 0 {
			err = res.Failures[0]
		}
		closeEvents, closeErr = events, err
	})
	if closeErr != nil {
		t.Fatal(closeErr)
	}
	return closeEvents
}

// closeJSON is the close experiment's trace as `tcplab run --format json`
// writes it, with a comment line as tcplab prints them.
func closeJSON(t testing.TB) []byte {
	var b bytes.Buffer
	if err := render.NewJSON(&b).WriteAll(closeTrace(t)); err != nil {
		t.Fatal(err)
	}
	b.WriteString("# close: all 9 expectations held\n")
	return b.Bytes()
}

// theRST returns the trace's RST as the client sent it.
func theRST(t testing.TB, events []trace.Event) trace.Event {
	t.Helper()
	for _, e := range events {
		if e.Kind == trace.Segment && e.Dir == "out" && strings.Contains(e.Flags, "R") {
			return e
		}
	}
	t.Fatal("the close experiment's trace has no RST")
	return trace.Event{}
}

// serveData serves d on 127.0.0.1 and returns /data.json as the page
// gets it, decoded.
func serveData(t *testing.T, d *Data) *Data {
	t.Helper()
	srv, err := Listen(d, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	}()
	resp, err := http.Get(srv.URL() + "data.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /data.json: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	var got Data
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("GET /data.json: %v", err)
	}
	return &got
}

// findRST returns the item of the first RST sent (or seen on the wire).
func findRST(t *testing.T, d *Data) *Item {
	t.Helper()
	for _, it := range d.Items {
		if it.Kind == "segment" && it.Dir != "in" && strings.Contains(it.Flags, "R") {
			return it
		}
	}
	t.Fatalf("no RST among the %d items", len(d.Items))
	return nil
}

func field(it *Item, k string) string {
	for _, f := range it.Fields {
		if f[0] == k {
			return f[1]
		}
	}
	return ""
}

func TestDataTrace(t *testing.T) {
	events := closeTrace(t)
	want := theRST(t, events)
	d, err := Load("close.jsonl", bytes.NewReader(closeJSON(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := serveData(t, d)
	if got.Source != "trace" || len(got.Conns) != 1 {
		t.Fatalf("source %q, %d connections; want trace, 1", got.Source, len(got.Conns))
	}
	c := got.Conns[0]
	if c.Lanes != [2]string{"client", "server"} {
		t.Errorf("lanes %v, want [client server]", c.Lanes)
	}
	rst := findRST(t, got)
	if rst.Reason != want.Reason || want.Reason == "" {
		t.Errorf("RST reason %q, want the trace's %q", rst.Reason, want.Reason)
	}
	if rst.Host != "client" || rst.Dir != "out" || rst.Lane != 0 || rst.Arrive < 0 {
		t.Errorf("RST host %s dir %s lane %d arrive %d; want client out lane 0 with its arrival", rst.Host, rst.Dir, rst.Lane, rst.Arrive)
	} else if a := got.Items[rst.Arrive]; a.Host != "server" || a.Dir != "in" || a.Of != rst.I || a.Reason != want.Reason {
		t.Errorf("RST arrival: %s %s of %d reason %q", a.Host, a.Dir, a.Of, a.Reason)
	}
	if f := field(rst, "reason"); f != want.Reason {
		t.Errorf("details field reason = %q", f)
	}
	if f := field(rst, "flags"); f != want.Flags {
		t.Errorf("details field flags = %q, want %q", f, want.Flags)
	}
	// The time-sequence series: the client's RST and its data, the
	// server's ACKs with a window edge above them; state bands and buffers.
	var kinds []int
	for _, s := range c.Dirs[0].Segs {
		kinds = append(kinds, int(s[4]))
	}
	if len(kinds) == 0 || kinds[0] != segSYN || kinds[len(kinds)-1] != segRST {
		t.Errorf("client→server segment kinds %v: want a SYN first and the RST last", kinds)
	}
	for _, a := range c.Dirs[0].Acks {
		if a[3] < a[2] {
			t.Errorf("window edge %v below the ack %v", a[3], a[2])
		}
	}
	if c.Dirs[0].WScale == 0 || !strings.HasPrefix(c.Dirs[0].WScaleBy, "inferred") {
		t.Errorf("server's window scale %d (%s): want one inferred", c.Dirs[0].WScale, c.Dirs[0].WScaleBy)
	}
	var states []string
	for _, b := range c.States {
		if b.Lane == 0 {
			states = append(states, b.State)
		}
	}
	if s := strings.Join(states, " "); !strings.Contains(s, "FIN-WAIT-2 CLOSED") {
		t.Errorf("client's state bands %q: want FIN-WAIT-2 then CLOSED", s)
	}
	if len(c.Buffers) == 0 {
		t.Error("no buffer levels")
	}
}

func TestDataTcplabPcapng(t *testing.T) {
	events := closeTrace(t)
	want := theRST(t, events)
	var b bytes.Buffer
	if _, err := pcapng.Write(&b, events, pcapng.Options{Application: "tcplab"}); err != nil {
		t.Fatal(err)
	}
	d, err := Load("close.pcapng", bytes.NewReader(b.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := serveData(t, d)
	if got.Source != "tcplab pcapng" || len(got.Conns) != 1 {
		t.Fatalf("source %q, %d connections; want tcplab pcapng, 1", got.Source, len(got.Conns))
	}
	rst := findRST(t, got)
	if rst.Reason != want.Reason || rst.Host != "client" || rst.Arrive < 0 {
		t.Errorf("RST: host %s reason %q arrive %d; want client, %q, with its arrival", rst.Host, rst.Reason, rst.Arrive, want.Reason)
	}
	for _, it := range got.Items {
		if it.Lost {
			t.Errorf("item %d (%s) marked lost in a trace where every segment arrived", it.I, it.Label)
		}
	}
	c := got.Conns[0]
	if !strings.Contains(c.Dirs[0].WScaleBy, "option") {
		t.Errorf("window scale from %q: want the SYN's option", c.Dirs[0].WScaleBy)
	}
	found := false
	for _, s := range c.States {
		found = found || (s.Lane == 1 && s.State == "CLOSE-WAIT")
	}
	if !found {
		t.Errorf("no CLOSE-WAIT band for the server from the comments: %+v", c.States)
	}
}

// A pcapng of one host's view has none of the other's arrivals: nothing it
// sent is lost for that.
func TestDataTcplabPcapngOneHost(t *testing.T) {
	var b bytes.Buffer
	if _, err := pcapng.Write(&b, closeTrace(t), pcapng.Options{Application: "tcplab", Only: "client"}); err != nil {
		t.Fatal(err)
	}
	d, err := Load("client.pcapng", bytes.NewReader(b.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Conns[0]
	if c.Lanes[0] != "client" || c.Lanes[1] != c.Addrs[1] || !strings.HasPrefix(c.Label, "client 198.18.") {
		t.Errorf("lanes %v, label %q: want the client and the server's bare address", c.Lanes, c.Label)
	}
	for _, it := range d.Items {
		if it.Lost {
			t.Errorf("item %d (%s) marked lost, though the file has no arrival of the server's", it.I, it.Label)
		}
	}
	if rst := findRST(t, d); rst.Reason == "" {
		t.Error("the client's RST has no reason")
	}
}

func TestDataCapture(t *testing.T) {
	events := closeTrace(t)
	// A capture taken at the client by something else than tcplab, gzip'd.
	var b bytes.Buffer
	if _, err := pcapng.Write(&b, events, pcapng.Options{Application: "tcpdump", Only: "client", NoComments: true}); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b.Bytes())
	zw.Close()
	d, err := Load("close.pcapng.gz", bytes.NewReader(z.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := serveData(t, d)
	if got.Source != "capture" || len(got.Conns) != 1 {
		t.Fatalf("source %q, %d connections; want capture, 1", got.Source, len(got.Conns))
	}
	rst := findRST(t, got)
	if rst.Host != "client" || rst.Dir != "wire" {
		t.Errorf("RST from %s dir %s, want client wire", rst.Host, rst.Dir)
	}
	if !strings.Contains(rst.Reason, "FIN-WAIT") || !strings.HasPrefix(rst.ReasonBy, "inferred") {
		t.Errorf("RST reason %q (%s): want explain's inferred data-after-close reason", rst.Reason, rst.ReasonBy)
	}
	if f := field(rst, "cause class"); f != explain.ClassDataAfter {
		t.Errorf("cause class %q, want %q", f, explain.ClassDataAfter)
	}
	c := got.Conns[0]
	if c.Summary[0][0] != "teardown" || !strings.Contains(c.Summary[0][1], explain.TeardownHalfReset) {
		t.Errorf("summary %v: want the teardown %q first", c.Summary, explain.TeardownHalfReset)
	}
	var client []string
	for _, s := range c.States {
		if s.Lane == 0 {
			client = append(client, s.State)
		}
	}
	if s := strings.Join(client, " "); !strings.Contains(s, "FIN-WAIT-2 CLOSED") {
		t.Errorf("client's inferred states %q: want FIN-WAIT-2 then CLOSED", s)
	}
	if len(c.Dirs[1].Segs) == 0 || len(c.Dirs[1].Acks) == 0 {
		t.Errorf("server→client series: %d segments, %d acks", len(c.Dirs[1].Segs), len(c.Dirs[1].Acks))
	}
}

// ReadTrace reads back what the JSON renderer writes: written again, the
// events give the same bytes.
func TestReadTraceRoundTrip(t *testing.T) {
	in := closeJSON(t)
	events, err := ReadTrace(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := render.NewJSON(&out).WriteAll(events); err != nil {
		t.Fatal(err)
	}
	want := string(in[:bytes.LastIndex(in, []byte("# close"))])
	if got := out.String(); got != want {
		t.Errorf("written again, the trace differs:\n got %.300s\nwant %.300s", got, want)
	}
	if n := len(closeTrace(t)); len(events) != n {
		t.Errorf("read %d events, want %d", len(events), n)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"{\"kind\":\"note\",\"t\":0}\nnot json\n", "line 2"},
		{"{\"t\":0}\n", "no \"kind\""},
		{"# only a comment\n", "no events"},
		{"\n", "no events"},
	} {
		_, err := Load("x", strings.NewReader(tc.in), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "127.0.0.1:0"},
		{"8080", "127.0.0.1:8080"},
		{"0", "127.0.0.1:0"},
		{"127.0.0.1:9000", "127.0.0.1:9000"},
	} {
		got, err := CheckAddr(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CheckAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"0.0.0.0:8080", ":8080", "localhost:8080", "[::1]:8080", "[::]:80", "192.0.2.1:80", "127.0.0.2:80", "70000", "127.0.0.1:http", "x"} {
		got, err := CheckAddr(in)
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("CheckAddr(%q) = %q, %v; want an error naming 127.0.0.1", in, got, err)
		}
		if _, err := Listen(&Data{}, Config{Addr: in}); err == nil {
			t.Errorf("Listen(Addr %q) succeeded", in)
		}
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	srv, err := Listen(&Data{File: "x"}, Config{Once: true})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") || srv.URL() != "http://"+addr+"/" {
		t.Fatalf("listening on %s (URL %s), want 127.0.0.1 and a port", addr, srv.URL())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL()+path, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// A page on a name that resolves to 127.0.0.1 (DNS rebinding) gets nothing.
	if code, _ := get("attacker.example:"+strings.Split(addr, ":")[1], "data.json"); code != http.StatusForbidden {
		t.Errorf("GET with a foreign Host: %d, want 403", code)
	}
	if code, body := get("", ""); code != 200 || !strings.Contains(body, "view.js") {
		t.Errorf("GET /: %d, want the page", code)
	}
	if code, body := get("", "view.js"); code != 200 || !strings.Contains(body, "data.json") {
		t.Errorf("GET /view.js: %d", code)
	}
	// Once: the first /data.json ends Serve.
	if code, body := get("", "data.json"); code != 200 || !strings.Contains(body, `"file":"x"`) {
		t.Errorf("GET /data.json: %d %q", code, body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running after the data was served with Once")
	}
}

// relayCapture is a capture of two connections: the half-close-relay
// scenario as its client host saw it, written by "tcpdump".
func relayCapture(t *testing.T) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, events, err := scenario.SimulateBuiltin(ctx, "half-close-relay", scenario.SimConfig{KeepPackets: true, QuietWindow: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := pcapng.Write(&b, events, pcapng.Options{Application: "tcpdump", Only: "client", NoComments: true}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestCaptureConnAndLimit(t *testing.T) {
	capture := relayCapture(t)
	all, err := Load("relay.pcapng", bytes.NewReader(capture), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Conns) != 2 {
		t.Fatalf("%d connections, want 2", len(all.Conns))
	}
	second := all.Conns[1]
	for _, sel := range []string{"2", second.Addrs[1] + "-" + second.Addrs[0]} {
		one, err := Load("relay.pcapng", bytes.NewReader(capture), Options{Conn: sel})
		if err != nil {
			t.Fatalf("--conn %s: %v", sel, err)
		}
		if len(one.Conns) != 1 || one.Conns[0].ID != "2" || one.Conns[0].Addrs != second.Addrs {
			t.Errorf("--conn %s: connections %+v, want only connection 2 %v", sel, one.Conns, second.Addrs)
		}
		for _, it := range one.Items {
			if it.Conn != 0 {
				t.Errorf("--conn %s: item %d of connection %d", sel, it.I, it.Conn)
			}
		}
	}
	if _, err := Load("relay.pcapng", bytes.NewReader(capture), Options{Conn: "9"}); err == nil || !strings.Contains(err.Error(), "no connection 9 (the capture has 2)") {
		t.Errorf("--conn 9: %v", err)
	}
	if _, err := Load("relay.pcapng", bytes.NewReader(capture), Options{MaxItems: 5}); err == nil || !strings.Contains(err.Error(), "--conn") {
		t.Errorf("MaxItems 5: %v, want an error saying to choose a connection", err)
	}
	if _, err := Load("close.jsonl", bytes.NewReader(closeJSON(t)), Options{MaxItems: 5}); err == nil || !strings.Contains(err.Error(), "limit of 5") {
		t.Errorf("a trace past MaxItems: %v", err)
	}
}
