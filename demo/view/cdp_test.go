package view

// A small client of the Chrome DevTools Protocol for the browser test: a
// WebSocket client (RFC 6455: the handshake, masked text frames out,
// unmasked frames in, fragments joined, pings answered) and CDP's
// request/response matching by id. Only what the test needs.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// wsConn is a client WebSocket connection.
type wsConn struct {
	c  net.Conn
	br *bufio.Reader
}

// dialWS opens the WebSocket at u (ws://host:port/path).
func dialWS(u string, timeout time.Duration) (*wsConn, error) {
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "ws" {
		return nil, fmt.Errorf("websocket: bad URL %q", u)
	}
	c, err := net.DialTimeout("tcp", pu.Host, timeout)
	if err != nil {
		return nil, fmt.Errorf("websocket: dial %s: %w", pu.Host, err)
	}
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", pu.RequestURI(), pu.Host, key)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("websocket: handshake: %w", err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, fmt.Errorf("websocket: handshake: %s, accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	c.SetDeadline(time.Time{})
	return &wsConn{c: c, br: br}, nil
}

// writeFrame sends one masked frame (a client must mask).
func (w *wsConn) writeFrame(op byte, p []byte) error {
	hdr := []byte{0x80 | op}
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	body := make([]byte, len(p))
	for i := range p {
		body[i] = p[i] ^ mask[i%4]
	}
	_, err := w.c.Write(append(hdr, body...))
	return err
}

// readMessage returns the next text or binary message, joining fragments
// and answering pings.
func (w *wsConn) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("websocket: frame of %d bytes", n)
		}
		var mask []byte
		if h[1]&0x80 != 0 {
			mask = make([]byte, 4)
			if _, err := io.ReadFull(w.br, mask); err != nil {
				return nil, err
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			return nil, err
		}
		if mask != nil {
			for i := range p {
				p[i] ^= mask[i%4]
			}
		}
		switch op {
		case 0x8:
			return nil, errors.New("websocket: closed by the browser")
		case 0x9:
			if err := w.writeFrame(0xA, p); err != nil {
				return nil, err
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, p...)
		if fin {
			return msg, nil
		}
	}
}

func (w *wsConn) Close() error {
	w.writeFrame(0x8, nil)
	return w.c.Close()
}

// cdpClient sends CDP commands on one target's WebSocket and waits for
// their answers, dropping the events in between.
type cdpClient struct {
	ws *wsConn
	id int
}

// call runs method with params and decodes its result into result (if
// not nil). It fails on a protocol error or after timeout.
func (c *cdpClient) call(method string, params any, result any, timeout time.Duration) error {
	c.id++
	req, err := json.Marshal(map[string]any{"id": c.id, "method": method, "params": params})
	if err != nil {
		return err
	}
	c.ws.c.SetDeadline(time.Now().Add(timeout))
	defer c.ws.c.SetDeadline(time.Time{})
	if err := c.ws.writeFrame(0x1, req); err != nil {
		return fmt.Errorf("cdp %s: %w", method, err)
	}
	for {
		b, err := c.ws.readMessage()
		if err != nil {
			return fmt.Errorf("cdp %s: %w", method, err)
		}
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &resp); err != nil {
			return fmt.Errorf("cdp %s: %w", method, err)
		}
		if resp.ID != c.id {
			continue // an event, or an answer to an earlier call
		}
		if resp.Error != nil {
			return fmt.Errorf("cdp %s: %s", method, resp.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(resp.Result, result)
		}
		return nil
	}
}

// eval evaluates a JavaScript expression in the page and decodes its
// value (returned by value) into out.
func (c *cdpClient) eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r, 20*time.Second); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("evaluate %q: %s %s", expr, r.ExceptionDetails.Text, strings.TrimSpace(r.ExceptionDetails.Exception.Description))
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// click presses and releases the left mouse button at x, y (CSS pixels of
// the viewport), as a user would.
func (c *cdpClient) click(x, y float64) error {
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		p := map[string]any{"type": typ, "x": x, "y": y}
		if typ != "mouseMoved" {
			p["button"], p["clickCount"] = "left", 1
		}
		if err := c.call("Input.dispatchMouseEvent", p, nil, 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}
