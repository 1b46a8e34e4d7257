package wal

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A segment switched early is restored byte for byte, and its zero tail
// is allocated (not a hole: PostgreSQL may recycle the file and write
// into it, and must not meet a full disk there).
func TestWriteDestZeroTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		busy int
	}{{"idle", 100}, {"half", 8<<20 + 3}, {"full", 16 << 20}, {"all zeros", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			content := make([]byte, 16<<20)
			for i := range tc.busy {
				content[i] = byte(i%251) | 1
			}
			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			if err := writeDest(context.Background(), dest, content); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dest)
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("restored content differs (err %v, %d bytes)", err, len(got))
			}
			var st syscall.Stat_t
			if err := syscall.Stat(dest, &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 < st.Size {
				t.Errorf("%d bytes but only %d allocated: the zero tail is a hole", st.Size, st.Blocks*512)
			}
			if des, err := os.ReadDir(filepath.Dir(dest)); err != nil || len(des) != 1 {
				t.Errorf("temp file left behind: %v %v", des, err)
			}
		})
	}
}
