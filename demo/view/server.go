package view

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// Config tunes Listen. The zero value listens on 127.0.0.1 at a port the
// kernel picks and serves until its context ends.
type Config struct {
	// Addr is where to listen: "" (127.0.0.1, a random port), a port
	// ("8080") or "127.0.0.1:PORT". Any other address is refused (see
	// CheckAddr): the page is for this machine only.
	Addr string
	// Once stops the server after it has served the data once (the page
	// has loaded): for tests and for taking a screenshot.
	Once bool
}

// CheckAddr returns the listening address for a --addr value: "" means
// 127.0.0.1:0 (a random port), "PORT" means 127.0.0.1:PORT, and
// "127.0.0.1:PORT" is taken as is. Anything else (another address, a
// host name, ":PORT", which means every address) is an error saying so.
func CheckAddr(addr string) (string, error) {
	if addr == "" {
		return "127.0.0.1:0", nil
	}
	if p, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", strconv.FormatUint(p, 10)), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if _, perr := strconv.ParseUint(port, 10, 16); perr != nil {
			err = fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
	}
	if err != nil {
		return "", fmt.Errorf("view: --addr %q: %v; give a port (8080) or 127.0.0.1:PORT", addr, err)
	}
	if host != "127.0.0.1" {
		return "", fmt.Errorf("view: --addr %q: the page listens on 127.0.0.1 only (no other address, no name, not every address): give a port (8080) or 127.0.0.1:PORT", addr)
	}
	return addr, nil
}

// Server serves one Data on 127.0.0.1.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	data []byte
	once bool
	done chan struct{} // closed when Once has been satisfied
	stop sync.Once
}

// Listen builds the JSON of d and binds the address cfg names (127.0.0.1
// only). Serve serves it. Cost: the JSON document in memory.
func Listen(d *Data, cfg Config) (*Server, error) {
	addr, err := CheckAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(d); err != nil {
		return nil, fmt.Errorf("view: encode data: %w", err)
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("view: listen on %s: %w", addr, err)
	}
	s := &Server{ln: ln, data: b.Bytes(), once: cfg.Once, done: make(chan struct{})}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Addr returns the address the server listens on (127.0.0.1:PORT).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the page's address: http://127.0.0.1:PORT/.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Serve serves until ctx ends (or, with Config.Once, until the data has
// been served once), then shuts the server down, waiting up to a second
// for requests in flight. It returns nil then.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case <-ctx.Done():
	case <-s.done:
	case err := <-errc:
		return fmt.Errorf("view: serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("view: serve: %w", err)
	}
	return nil
}

// Handler returns the page's handler: "/" (the page), its scripts and
// styles, and "/data.json". Requests whose Host is not the server's own
// 127.0.0.1 address are refused (403), so that a web page on a name that
// resolves to 127.0.0.1 (DNS rebinding) cannot read the data.
func (s *Server) Handler() http.Handler {
	sub, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /data.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(s.data)
		if s.once {
			s.stop.Do(func() { close(s.done) })
		}
	})
	mux.Handle("GET /", files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != s.ln.Addr().String() {
			http.Error(w, "tcplab view answers only on "+s.ln.Addr().String(), http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}
