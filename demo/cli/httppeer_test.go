package cli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tcplab/tcplab/stack"
	"github.com/tcplab/tcplab/stack/memwire"
	"github.com/tcplab/tcplab/stack/trace"
)

func TestParseHTTPPeer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		want   httpPeer
		isHTTP bool
		err    string
	}{
		{"http", httpPeer{}, true, ""},
		{"http:noread", httpPeer{noRead: true}, true, ""},
		{"http:idle=2s", httpPeer{idle: 2 * time.Second}, true, ""},
		{"http:noread,idle=250ms", httpPeer{noRead: true, idle: 250 * time.Millisecond}, true, ""},
		{"echo", httpPeer{}, false, ""},
		{"https", httpPeer{}, false, ""},
		{"http:idle=0s", httpPeer{}, true, "want a duration above 0"},
		{"http:idle=x", httpPeer{}, true, "want a duration above 0"},
		{"http:idle=25h", httpPeer{}, true, "at most 24h"},
		{"http:fast", httpPeer{}, true, `unknown option "fast"`},
		{"http:", httpPeer{}, true, `unknown option ""`},
	} {
		got, isHTTP, err := parseHTTPPeer(tc.name)
		if isHTTP != tc.isHTTP || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseHTTPPeer(%q) = _, %v, %v; want %v, error containing %q", tc.name, isHTTP, err, tc.isHTTP, tc.err)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("parseHTTPPeer(%q) = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// httpLab starts h on the server of a memory-wire lab and returns the
// lab, a client connection to it, and a channel closed once the responder
// has returned and closed its connection.
func httpLab(t *testing.T, h httpPeer) (*stack.Lab, *stack.Conn, <-chan struct{}) {
	t.Helper()
	lab, err := stack.NewLab(memwire.New(memwire.Config{}), stack.Config{}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	l, err := lab.Server.Listen(80, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lab.Client.Dial(ctx, lab.ServerAddr(80))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer s.Close()
		h.serve(ctx, s, 5*time.Second, func(text string) {
			lab.Trace.Emit(trace.Event{Host: "server", Kind: trace.Note, Conn: s.ID(), Text: text})
		})
	}()
	return lab, c, done
}

// roundTrip writes req on c and reads the response.
func roundTrip(t *testing.T, c *stack.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	if _, err := c.Write(context.Background(), []byte(req)); err != nil {
		t.Fatalf("write the request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the response's body: %v", err)
	}
	return resp, string(b)
}

func waitDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the responder did not return: %s", what)
	}
}

// sentFlags returns the reasons of the segments host sent with exactly flags.
func sentFlags(lab *stack.Lab, host, flags string) []string {
	var r []string
	for _, e := range lab.Trace.Events() {
		if e.Kind == trace.Segment && e.Host == host && e.Dir == "out" && e.Flags == flags {
			r = append(r, e.Reason)
		}
	}
	return r
}

// TestHTTPPeerKeepAlive: two requests with bodies on one connection, each
// body read to its end and counted, the connection kept until the client
// closes; then the responder's FIN answers the client's.
func TestHTTPPeerKeepAlive(t *testing.T) {
	lab, c, done := httpLab(t, httpPeer{})
	br := bufio.NewReader(&socketReader{ctx: context.Background(), c: c, timeout: 10 * time.Second})
	body := strings.Repeat("x", 100000)
	resp, got := roundTrip(t, c, br, "POST /a HTTP/1.1\r\nHost: lab\r\nContent-Length: 100000\r\n\r\n"+body)
	if resp.StatusCode != 200 || resp.Close || got != "POST /a: read 100000 bytes of body\n" {
		t.Errorf("first response %d close=%v %q", resp.StatusCode, resp.Close, got)
	}
	resp, got = roundTrip(t, c, br, "POST /b HTTP/1.1\r\nHost: lab\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if resp.StatusCode != 200 || resp.Close || got != "POST /b: read 3 bytes of body\n" {
		t.Errorf("second response %d close=%v %q", resp.StatusCode, resp.Close, got)
	}
	c.Close()
	waitDone(t, done, "after the client's FIN")
	if r := sentFlags(lab, "server", "F."); len(r) != 1 {
		t.Errorf("server FINs %q, want one", r)
	}
	if r := sentFlags(lab, "server", "R."); len(r) != 0 {
		t.Errorf("server RSTs %q, want none", r)
	}
}

// TestHTTPPeerNoRead: http:noread answers a large POST as soon as its
// headers arrive, with Connection: close, and closes with the body unread:
// the server's RST, for the unread bytes.
func TestHTTPPeerNoRead(t *testing.T) {
	lab, c, done := httpLab(t, httpPeer{noRead: true})
	ctx := context.Background()
	if _, err := c.Write(ctx, []byte("POST /upload HTTP/1.1\r\nHost: lab\r\nContent-Length: 1048576\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// The first part of the body; the responder may or may not have
	// answered by then: the rest will arrive unread.
	if _, err := c.Write(ctx, make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	waitDone(t, done, "after answering")
	var notes []string
	for _, e := range lab.Trace.Events() {
		if e.Kind == trace.Note {
			notes = append(notes, e.Text)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "POST /upload with Content-Length 1048576: answering without reading the body") {
		t.Errorf("notes %q", notes)
	}
	// The response arrived before the RST: the client reads it.
	br := bufio.NewReader(&socketReader{ctx: ctx, c: c, timeout: 5 * time.Second})
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the response: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !resp.Close || string(got) != "POST /upload: body not read\n" {
		t.Errorf("response %d close=%v %q (%v), want 200, Connection: close, body not read", resp.StatusCode, resp.Close, got, err)
	}
	// Keep writing: whatever the server had not read when it closed, and
	// what arrives after, ends in its RST.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		if r := sentFlags(lab, "server", "R."); len(r) > 0 {
			// The body in the receive buffer at close(), or arriving
			// after it.
			if !strings.Contains(r[0], "unread") && !strings.Contains(r[0], "after close()") {
				t.Errorf("server RST reason %q, want unread bytes or data after close()", r[0])
			}
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		c.Write(wctx, make([]byte, 4096))
		cancel()
	}
	t.Errorf("the server never sent [R.]; its FINs: %q", sentFlags(lab, "server", "F."))
}

// TestHTTPPeerIdle: http:idle=100ms answers, then closes the idle
// connection with a FIN and says why.
func TestHTTPPeerIdle(t *testing.T) {
	lab, c, done := httpLab(t, httpPeer{idle: 100 * time.Millisecond})
	br := bufio.NewReader(&socketReader{ctx: context.Background(), c: c, timeout: 10 * time.Second})
	resp, got := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
	if resp.StatusCode != 200 || resp.Close || got != "GET /: read 0 bytes of body\n" {
		t.Errorf("response %d close=%v %q", resp.StatusCode, resp.Close, got)
	}
	waitDone(t, done, "after 100ms idle")
	if r := sentFlags(lab, "server", "F."); len(r) != 1 || !strings.Contains(r[0], "close()") {
		t.Errorf("server FINs %q, want one from close()", r)
	}
	found := false
	for _, e := range lab.Trace.Events() {
		found = found || (e.Kind == trace.Note && strings.Contains(e.Text, "no request for 100ms (idle=100ms): closing"))
	}
	if !found {
		t.Error("no note of the idle timeout")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("client read after the idle close = %v, want EOF", err)
	}
}
