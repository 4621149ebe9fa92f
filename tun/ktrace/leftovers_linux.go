package ktrace

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
)

// Leftovers lists the eBPF programs loaded in the kernel now that carry the
// names of this package's programs (the kernel keeps the first 15
// characters): an Observer's programs live only as long as the process
// that opened it, so after it has gone there must be none. Tests use it
// to prove nothing is left behind. It needs root (CAP_SYS_ADMIN) to walk
// the kernel's program IDs. Cost: one bpf(2) call per loaded program.
func Leftovers() ([]string, error) {
	spec, err := loadKtrace()
	if err != nil {
		return nil, fmt.Errorf("ktrace: leftovers: %w", err)
	}
	ours := map[string]bool{}
	for name := range spec.Programs {
		if len(name) > 15 {
			name = name[:15]
		}
		ours[name] = true
	}
	var left []string
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return left, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ktrace: leftovers: walk program IDs: %w", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := p.Info()
		p.Close()
		if err == nil && ours[info.Name] {
			left = append(left, fmt.Sprintf("eBPF program %s (id %d)", info.Name, id))
		}
	}
}
