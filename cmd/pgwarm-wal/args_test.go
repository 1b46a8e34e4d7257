package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Flags may follow the arguments, as in pgwarm: PostgreSQL renders %p %f
// last, but an operator retyping a command need not know the order.
func TestFlagsAfterArguments(t *testing.T) {
	root := t.TempDir()
	src := t.TempDir()
	seg := fakeSegment(seg1, sysA, 1)
	p := writeFile(t, src, seg1, seg)
	var stderr bytes.Buffer
	if code := run([]string{"pgwarm-wal", "ship", p, seg1, "--archive", root}, &stderr, &stderr); code != 0 {
		t.Fatalf("ship PATH NAME --archive: exit %d: %s", code, stderr.String())
	}
	dest := filepath.Join(src, "RECOVERYXLOG")
	if code := run([]string{"pgwarm-wal", "restore", seg1, dest, "--archive", root}, &stderr, &stderr); code != 0 {
		t.Fatalf("restore NAME DEST --archive: exit %d: %s", code, stderr.String())
	}
	if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("restored %d bytes (%v), want the shipped segment", len(got), err)
	}
}
