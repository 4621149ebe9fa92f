package program

import (
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// netnsInode returns the inode of the network namespace at path.
func netnsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// killLeftovers kills (SIGKILL) every process whose network namespace has
// inode ino and whose process group is this one's (the program's: it is
// started in tcplab's group, and so are its children unless they leave
// it), other than this process, until none is left (at most a few rounds,
// for children forked meanwhile), and returns their pids. These are what a
// program left running when it ended: `go run`'s child, a shell's
// background job; they would keep the lab's namespace alive after tcplab.
// A process someone else put in the namespace (a tcpdump started with
// nsenter from another shell) is in another group and is left alone; a
// daemon that left the group by setsid escapes too. Cost: one readdir of
// /proc and a stat per process, per round.
func killLeftovers(ino uint64) []int {
	self, group := os.Getpid(), unix.Getpgrp()
	killed := map[int]bool{}
	var pids []int
	for round := 0; round < 5; round++ {
		found := false
		entries, err := os.ReadDir("/proc")
		if err != nil {
			break
		}
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil || st.Ino != ino {
				continue
			}
			if pg, err := unix.Getpgid(pid); err != nil || pg != group {
				continue
			}
			if unix.Kill(pid, syscall.SIGKILL) != nil {
				continue // gone meanwhile
			}
			found = true
			if !killed[pid] {
				killed[pid] = true
				pids = append(pids, pid)
			}
		}
		if !found {
			break
		}
	}
	return pids
}
