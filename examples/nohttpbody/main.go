// Command nohttpbody is a Go net/http server whose handler answers a POST
// without reading its body: the classic cause of a RST on large uploads.
//
// Go's server sees the handler's answer with more than 256 KiB of body
// unread, adds "Connection: close", sends the answer, shuts down its write
// side (a FIN), sleeps 500 ms (rstAvoidanceDelay, in net/http/server.go)
// hoping the client reads the answer, then close()s the socket with the
// rest of the body unread: the Linux kernel resets the connection. A client
// still writing its body gets ECONNRESET or EPIPE, and may never read the
// answer.
//
// Run it in the lab as the server, against a gVisor client that posts 1 MiB:
//
//	go build -o bin/nohttpbody ./examples/nohttpbody
//	sudo bin/tcplab exec --side server examples/nohttpbody.lab -- bin/nohttpbody
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := os.Getenv("TCPLAB_LISTEN") // set by tcplab exec --side server
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	http.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		// Answer at once; r.Body is never read.
		fmt.Fprintf(w, "no thanks: %d bytes not read\n", r.ContentLength)
		fmt.Printf("answered %s %s (Content-Length %d) without reading the body\n", r.Method, r.URL, r.ContentLength)
	})
	log.Fatal(http.ListenAndServe(addr, nil))
}
