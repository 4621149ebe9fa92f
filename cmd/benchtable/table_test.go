package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/tcplab/tcplab/tun
BenchmarkBulk/wire=tun/mtu=1500/trace=off-2       	    1024	   7260605 ns/op	 144.42 MB/s	         1.155 Gbit/s
BenchmarkBulk/wire=tun/mtu=1500/trace=on-2        	    1024	  20564755 ns/op	  50.99 MB/s	         0.4079 Gbit/s	      2425 events/MiB	      2824 heap-MiB
BenchmarkBulk/wire=kernel-veth/mtu=1500-2         	    1024	    515498 ns/op	2034.10 MB/s	        16.00 Gbit/s
BenchmarkBulk/wire=kernel-veth/mtu=65000-2        	    1024	    460127 ns/op	2278.88 MB/s	        18.00 Gbit/s
BenchmarkBulk/wire=tun/mtu=65000/trace=off-2      	    1024	   1075308 ns/op	 975.14 MB/s	         8.000 Gbit/s
BenchmarkBulk/wire=tun/mtu=65000/trace=off-2      	    1024	   1075308 ns/op	 975.14 MB/s	         10.00 Gbit/s
BenchmarkLabSetup-2     	    10	  59914297 ns/op
PASS
ok  	github.com/tcplab/tcplab/tun	55.1s
`

func TestTable(t *testing.T) {
	var out, echo bytes.Buffer
	if err := run(strings.NewReader(sample), &out, &echo); err != nil {
		t.Fatal(err)
	}
	if echo.String() != sample {
		t.Errorf("echo differs from the input:\n%s", echo.String())
	}
	got := out.String()
	t.Logf("\n%s", got)
	for _, want := range []string{
		"| wire        | MTU   | trace | Gbit/s | vs kernel | ns/op    | MiB moved |",
		"| kernel-veth | 1500  | –     | 16.000 | 1.000     | 515498   | 1024      |",
		"| tun         | 1500  | off   | 1.155  | 0.072     | 7260605  | 1024      |",
		"| tun         | 1500  | on    | 0.408  | 0.025     | 20564755 | 1024      |",
		"| tun         | 65000 | off   | 9.000  | 0.500     | 1075308  | 1024      |", // mean of two runs
		"tun, MTU 1500, trace on: 2425 trace events per MiB moved, heap 2824 MiB after 1024 MiB.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if strings.Contains(got, "LabSetup") || strings.Contains(got, "different amounts") {
		t.Errorf("unexpected content:\n%s", got)
	}
	// Kernel rows come first within an MTU, the 1500 group first.
	if i, j := strings.Index(got, "kernel-veth | 1500"), strings.Index(got, "tun         | 1500"); i < 0 || j < i {
		t.Errorf("kernel row not first")
	}
}

func TestFailureAndSkip(t *testing.T) {
	var out, echo bytes.Buffer
	in := "BenchmarkBulk/wire=memory/mtu=1500/trace=off-2  64  4078155 ns/op  257.12 MB/s  2.057 Gbit/s\n" +
		"--- FAIL: BenchmarkBulk/wire=memory/mtu=65000/trace=off\n    bench_linux_test.go:1: boom\nFAIL\n"
	err := run(strings.NewReader(in), &out, &echo)
	if err == nil || !strings.Contains(err.Error(), "BenchmarkBulk/wire=memory/mtu=65000") {
		t.Errorf("err = %v, want the failure", err)
	}
	if !strings.Contains(out.String(), "| memory | 1500 | off   | 2.057  | n/a ") {
		t.Errorf("partial table missing:\n%s", out.String())
	}

	out.Reset()
	in = "--- SKIP: BenchmarkBulk/wire=kernel-veth/mtu=1500\n    bench_linux_test.go:62: skipping: tun: need root\nPASS\n"
	err = run(strings.NewReader(in), &out, &echo)
	if err == nil || !strings.Contains(err.Error(), "need root") {
		t.Errorf("err = %v, want no results with the skip reason", err)
	}
}

func TestCallsTable(t *testing.T) {
	in := sample + `pkg: github.com/tcplab/tcplab/tun/calltrace
BenchmarkCallLatency/calls=write-read/trace=off-2         	  200000	     11112 ns/op	      2778 ns/call
BenchmarkCallLatency/calls=write-read/trace=on-2          	  200000	     49091 ns/op	         1.000 events/call	         0 lost/call	     12273 ns/call
BenchmarkCallLatency/calls=write-read/trace=on-2          	  200000	     49091 ns/op	         0.900 events/call	         0.100 lost/call	     12473 ns/call
`
	var out, echo bytes.Buffer
	if err := run(strings.NewReader(in), &out, &echo); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Logf("\n%s", got)
	for _, want := range []string{
		"| calls      | call trace | ns/call | extra ns/call | traced/call | lost/call |",
		"| write-read | off        | 2778    | –             | –           | –         |",
		"| write-read | on         | 12373   | +9595         | 0.950       | 0.050     |", // mean of two runs
		"| tun         | 1500  | off   | 1.155  | 0.072     | 7260605  | 1024      |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}
