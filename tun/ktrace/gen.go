package ktrace

// The BPF programs are compiled from bpf/ktrace.c with clang and committed
// (ktrace_bpfel.go, ktrace_bpfel.o), so building needs no clang. After a
// change to bpf/ktrace.c, run `make bpf` at the repository root (needs
// clang and libbpf-dev: apt-get install clang libbpf-dev).
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -tags linux -target bpfel -type event ktrace bpf/ktrace.c -- -O2 -g -Wall -Werror -I../bpfinclude -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
