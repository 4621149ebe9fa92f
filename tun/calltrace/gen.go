package calltrace

// The BPF programs are compiled from bpf/calltrace.c with clang and
// committed (calltrace_x86_bpfel.go/.o), so building needs no clang. After a
// change to bpf/calltrace.c, run `make bpf` at the repository root (needs
// clang and libbpf-dev).
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target amd64 -type call_event calltrace bpf/calltrace.c -- -O2 -g -Wall -Werror -I../bpfinclude -I/usr/include/x86_64-linux-gnu
