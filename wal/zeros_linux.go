package wal

import (
	"errors"
	"os"
	"syscall"
)

// allocateZeros extends f by n zero bytes at off with fallocate: allocated
// blocks that read as zeros, nothing written. Where the filesystem cannot
// (EOPNOTSUPP: some network and older filesystems), the zeros are written.
func allocateZeros(f *os.File, off, n int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, off, n)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return writeZeros(f, off, n)
	}
	return err
}
