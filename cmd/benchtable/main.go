// Command benchtable turns the output of tun's BenchmarkBulk into a table.
// It reads `go test -bench` output on stdin, copies every line to stderr as
// it arrives, and at the end prints on stdout one row per case: wire, MTU,
// trace, Gbit/s, the ratio to the kernel veth yardstick at the same MTU, and
// ns/op. `make bench` runs it:
//
//	go test -run '^$' -bench BenchmarkBulk -benchtime 1024x ./tun/ | go run ./cmd/benchtable
//
// It exits with status 1 if the input reports a failure or holds no result,
// so a pipeline ending in benchtable fails when the benchmark does.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}
