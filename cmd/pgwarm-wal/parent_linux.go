package main

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// setParentDeathSignal asks the kernel for SIGTERM when the parent exits.
// The kernel sends it when the parent *thread* that forked us exits;
// PostgreSQL's startup process and the shell are single-threaded, and the
// getppid poll covers any other parent.
func setParentDeathSignal() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0)
}

// parentOf returns the parent of pid from /proc, or -1.
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return -1
	}
	return ppid
}
