package wal

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// createTemp creates a new file in dir for writing under a name nobody
// can have prepared: random, and opened O_CREAT|O_EXCL|O_NOFOLLOW, so a
// symbolic link (or anything else) already at that name fails the open
// instead of being written through. A fixed temp name next to DEST would
// let whoever can write that directory point it at any file restore's
// user may write.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 8 {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		path := filepath.Join(dir, prefix+hex.EncodeToString(rnd[:])+".tmp")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("creating a temp file in %s: every random name was taken (someone is filling the directory)", dir)
}

// writeNew writes data to dir/name through a fresh temp file and a rename,
// so a reader sees the old file or the new one and nothing is written
// through a link planted in dir. No fsync: for the prefetch spool, a cache.
func writeNew(dir, name string, data []byte) error {
	f, err := createTemp(dir, "."+name+"-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
