//go:build !linux

package wal

import "os"

func allocateZeros(f *os.File, off, n int64) error { return writeZeros(f, off, n) }
