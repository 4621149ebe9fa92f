package tuntest

import (
	"os"
	"strconv"
	"strings"
)

// PidsWithArg returns the pids of the processes whose command line has
// arg as one of its words: tests mark the programs they start with a unique
// argument and look for survivors with it. It reads /proc/*/cmdline (one
// read per process).
func PidsWithArg(arg string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
