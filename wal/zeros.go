package wal

import "os"

// writeZeros writes n zero bytes at off.
func writeZeros(f *os.File, off, n int64) error {
	zero := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := f.WriteAt(zero[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}
