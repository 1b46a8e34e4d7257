package wal

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
)

const victimContent = "a file restore's user may write, but must not\n"

func victim(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "postgresql.auto.conf")
	if err := os.WriteFile(p, []byte(victimContent), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func victimIntact(t *testing.T, p string) {
	t.Helper()
	if b, err := os.ReadFile(p); err != nil || string(b) != victimContent {
		t.Fatalf("written through a planted link: %s changed (%d bytes now, %v)", p, len(b), err)
	}
}

// A link planted at the temp file name next to DEST (the fixed name
// earlier versions used) is not written through, and DEST ends up a
// regular file with the content.
func TestWriteDestFollowsNoPlantedLink(t *testing.T) {
	v := victim(t)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if err := os.Symlink(v, dest+".pgwarm-wal.tmp"); err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("WAL!"), 4096)
	if err := writeDest(context.Background(), dest, content); err != nil {
		t.Fatal(err)
	}
	victimIntact(t, v)
	st, err := os.Lstat(dest)
	if err != nil || !st.Mode().IsRegular() {
		t.Fatalf("DEST is not a regular file: %v %v", st.Mode(), err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, content) {
		t.Fatal("DEST content differs")
	}
}

// Once ctx is done nothing is written to DEST.
func TestWriteDestNotAfterCancel(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := writeDest(ctx, dest, []byte("x")); err == nil {
		t.Fatal("written after cancel")
	}
	if des, _ := os.ReadDir(filepath.Dir(dest)); len(des) != 0 {
		t.Fatalf("left %v", des)
	}
}

type getOnly struct {
	archive.Archive
	file []byte
}

func (g getOnly) Get(context.Context, segname.Name, time.Duration) ([]byte, error) {
	return g.file, nil
}

// The spool is written through fresh temp files only, read without
// following links, and a spool directory that is a link is not used (the
// removals of fromSpool would happen wherever it points).
func TestSpoolFollowsNoLinks(t *testing.T) {
	v := victim(t)
	p := Prefetch{Spool: t.TempDir(), Ahead: 2, Archive: "ssh://a@b/srv/x"}
	dir := p.spoolDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const segSize = 16 << 20
	n, _ := segname.Parse("000000010000000000000005")
	next := segname.FromSegNo(1, n.SegNo(segSize)+1, segSize)
	// The temp names earlier versions used.
	for _, name := range []string{"last.tmp", "." + next.String() + ".tmp"} {
		if err := os.Symlink(v, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	p.behind(n, segSize, true)
	p.fill(context.Background(), getOnly{file: []byte("spooled bytes")}, n, segSize)
	victimIntact(t, v)
	if b, err := os.ReadFile(filepath.Join(dir, next.String())); err != nil || string(b) != "spooled bytes" {
		t.Fatalf("spooled %q %v", b, err)
	}

	// A spooled name that is a link is not read.
	if err := os.Remove(filepath.Join(dir, next.String())); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(v, filepath.Join(dir, next.String())); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.ReadRegular(filepath.Join(dir, next.String())); archive.KindOf(err) != archive.KindForeign {
		t.Fatalf("ReadRegular through a link: %v", err)
	}

	// A spool directory that is a link: nothing there is removed.
	elsewhere := filepath.Dir(v)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, dir); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.fromSpool(n, archive.Cluster{}); ok {
		t.Fatal("a hit from a linked spool")
	}
	p.fill(context.Background(), getOnly{file: []byte("spooled bytes")}, n, segSize)
	victimIntact(t, v)
	if des, _ := os.ReadDir(elsewhere); len(des) != 1 {
		t.Fatalf("the linked spool's target was changed: %v", des)
	}
}
