package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tcplab/tcplab/stack"
)

// httpPeer is the built-in peer http: a small HTTP/1.1 responder on the
// gVisor server, named http[:OPTION[,OPTION]] on the command line:
//
//	http               read each request's body to its end, answer 200, keep the connection alive
//	http:noread        answer as soon as the headers arrive, without reading the body, and close
//	http:idle=2s       close a kept-alive connection that brings no new request for 2 s
//
// Options combine: http:noread,idle=2s (idle then bounds the wait for the
// first request).
type httpPeer struct {
	noRead bool
	// idle bounds the wait for the next request on a kept-alive
	// connection; 0 waits as long as any built-in peer waits for a read
	// (--step-timeout + 5 s).
	idle time.Duration
}

// httpHelp is the help text of the http peer's options.
const httpHelp = `a small HTTP/1.1 server: reads each request and its body, answers 200 with
           the byte count, keeps the connection alive; options after a colon, comma-separated:
           http:noread (answer as soon as the headers arrive, without reading the body, then
           close: the classic RST on a large POST), http:idle=2s (close a kept-alive
           connection idle for 2 s)`

// parseHTTPPeer parses the options of a name http[:OPTIONS]; ok is false
// when name is not the http peer at all.
func parseHTTPPeer(name string) (p httpPeer, ok bool, err error) {
	base, opts, hasOpts := strings.Cut(name, ":")
	if base != "http" {
		return p, false, nil
	}
	if !hasOpts {
		return p, true, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, hasV := strings.Cut(o, "=")
		switch {
		case k == "noread" && !hasV:
			p.noRead = true
		case k == "read" && !hasV:
			p.noRead = false
		case k == "idle" && hasV:
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > 24*time.Hour {
				return p, true, fmt.Errorf("built-in peer %s: idle=%s: want a duration above 0 and at most 24h (2s, 500ms)", name, v)
			}
			p.idle = d
		default:
			return p, true, fmt.Errorf("built-in peer %s: unknown option %q: want noread, read or idle=DURATION", name, o)
		}
	}
	return p, true, nil
}

// socketReader reads a stack.Socket as an io.Reader, each read bounded
// by timeout.
type socketReader struct {
	ctx     context.Context
	c       stack.Socket
	timeout time.Duration
}

func (r *socketReader) Read(p []byte) (int, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	n, err := r.c.Read(ctx, p)
	if n == 0 && err == nil {
		return 0, io.EOF
	}
	return n, err
}

// serve answers HTTP/1.1 requests on c until the client closes, asks to
// close, the connection fails, or it is idle too long; it leaves closing c
// to the caller. note writes a line in the trace. Cost: one goroutine's
// stack, a 4 KiB and a 64 KiB buffer.
func (h httpPeer) serve(ctx context.Context, c stack.Socket, wait time.Duration, note func(string)) {
	idle := h.idle
	if idle == 0 {
		idle = wait
	}
	sr := &socketReader{ctx: ctx, c: c, timeout: idle}
	// 4 KiB, as Go's net/http: a request's headers, and what of its
	// body came with them.
	br := bufio.NewReaderSize(sr, 4<<10)
	buf := make([]byte, 64<<10)
	for n := 1; ; n++ {
		sr.timeout = idle
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				why := "--step-timeout + 5 s"
				if h.idle != 0 {
					why = "idle=" + h.idle.String()
				}
				note(fmt.Sprintf("http: no request for %s (%s): closing the connection", idle, why))
			}
			return
		}
		sr.timeout = wait
		req, err := http.ReadRequest(br)
		if err != nil {
			if ctx.Err() == nil {
				note("http: bad request: " + err.Error() + "; answering 400 and closing")
				c.Write(ctx, []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			}
			return
		}
		var body string
		keep := !req.Close
		if h.noRead {
			body = fmt.Sprintf("%s %s: body not read\n", req.Method, req.URL)
			if req.ContentLength != 0 {
				note(fmt.Sprintf("http: request %d, %s %s with Content-Length %d: answering without reading the body, then closing (noread)",
					n, req.Method, req.URL, req.ContentLength))
			}
			keep = false
		} else {
			if req.Header.Get("Expect") == "100-continue" && req.ContentLength != 0 {
				if _, err := c.Write(ctx, []byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
					return
				}
			}
			read := 0
			for {
				m, err := req.Body.Read(buf)
				read += m
				if err == io.EOF {
					break
				}
				if err != nil {
					return // the trace shows the failed read
				}
			}
			body = fmt.Sprintf("%s %s: read %d bytes of body\n", req.Method, req.URL, read)
		}
		resp := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		if !keep {
			resp += "Connection: close\r\n"
		}
		if _, err := c.Write(ctx, []byte(resp+"\r\n"+body)); err != nil || !keep {
			return
		}
	}
}
