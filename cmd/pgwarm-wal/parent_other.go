//go:build !linux

package main

// Without PR_SET_PDEATHSIG and /proc only the getppid poll watches the
// parent.
func setParentDeathSignal() {}

func parentOf(int) int { return -1 }
