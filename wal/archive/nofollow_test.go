package archive

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

const secret = "SECRET-archive-host-file: root:$6$hash\n"

func mustParse(t *testing.T, s string) segname.Name {
	t.Helper()
	n, err := segname.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// within runs f and fails the test if it does not return in time: a FIFO
// opened for reading without a writer blocks forever.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s hangs (a FIFO was opened as if it were a file)", what)
	}
}

// Nothing under a WAL name that is not a regular file is read: a link to
// a secret (or to a real archived file) is refused by name, not followed,
// and list and verify report it as a file pgwarm-wal did not write.
func TestReadersFollowNoLinks(t *testing.T) {
	l, n, old, _ := archiveHoldingOld(t)
	ctx := context.Background()
	secretPath := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secretPath, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	toSecret, toReal := mustParse(t, "000000010000000000000006"), mustParse(t, "000000010000000000000007")
	if err := os.Symlink(secretPath, l.path(toSecret)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(l.path(n), l.path(toReal)); err != nil {
		t.Fatal(err)
	}
	for _, m := range []segname.Name{toSecret, toReal} {
		b, err := l.Get(ctx, m, 0)
		if KindOf(err) != KindForeign || !containsAll(err.Error(), []string{l.path(m), "symbolic link"}) {
			t.Fatalf("get %s through a link: kind %v, %v", m, KindOf(err), err)
		}
		if len(b) != 0 {
			t.Fatalf("get %s returned %d bytes", m, len(b))
		}
		// A push to the name compares with nothing behind the link and
		// changes nothing.
		if err := l.Put(ctx, m, old); KindOf(err) != KindForeign {
			t.Fatalf("put over a link at %s: kind %v, %v", m, KindOf(err), err)
		}
		if st, err := os.Lstat(l.path(m)); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s: the link was replaced: %v", m, err)
		}
	}
	if b, _ := os.ReadFile(secretPath); string(b) != secret {
		t.Fatal("the secret changed")
	}
	ls, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Entries) != 1 || !containsAll(strings.Join(ls.Foreign, " "), []string{toSecret.String(), toReal.String()}) {
		t.Fatalf("list: entries %v, foreign %v", ls.Names(), ls.Foreign)
	}
	r, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := r.Worst(); k != KindForeign {
		t.Fatalf("verify: worst %v, problems %+v", k, r.Problems)
	}
}

// A FIFO under a WAL name, or as the archive's metadata, hangs no reader.
func TestFIFOHangsNoReader(t *testing.T) {
	l, n, old, _ := archiveHoldingOld(t)
	ctx := context.Background()
	fifo := mustParse(t, "000000010000000000000006")
	if err := syscall.Mkfifo(l.path(fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	within(t, "get of a FIFO", func() {
		if _, err := l.Get(ctx, fifo, 0); KindOf(err) != KindForeign || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("get of a FIFO: kind %v, %v", KindOf(err), err)
		}
	})
	within(t, "put over a FIFO", func() {
		if err := l.Put(ctx, fifo, old); KindOf(err) != KindForeign {
			t.Errorf("put over a FIFO: kind %v, %v", KindOf(err), err)
		}
	})
	within(t, "verify with a FIFO", func() {
		r, err := l.Verify(ctx)
		if err != nil || !strings.Contains(strings.Join(problemNames(r), " "), fifo.String()) {
			t.Errorf("verify: %v %+v", err, r.Problems)
		}
	})
	meta := filepath.Join(l.Root, MetaFile)
	if err := os.Remove(meta); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(meta, 0o600); err != nil {
		t.Fatal(err)
	}
	within(t, "verify with a FIFO as "+MetaFile, func() {
		if _, err := l.Verify(ctx); KindOf(err) != KindForeign || !strings.Contains(err.Error(), meta) {
			t.Errorf("verify: kind %v, %v", KindOf(err), err)
		}
	})
	within(t, "get with a FIFO as "+MetaFile, func() {
		if _, err := l.Get(ctx, n, 0); KindOf(err) != KindForeign {
			t.Errorf("get: kind %v, %v", KindOf(err), err)
		}
	})
}

// pgwarm-archive.json behind a link is not the archive's binding.
func TestMetaLinkRefused(t *testing.T) {
	l, n, _, _ := archiveHoldingOld(t)
	meta := filepath.Join(l.Root, MetaFile)
	elsewhere := filepath.Join(t.TempDir(), MetaFile)
	if err := os.Rename(meta, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(context.Background(), n, 0); KindOf(err) != KindForeign || !strings.Contains(err.Error(), meta) {
		t.Fatalf("get with a linked %s: kind %v, %v", MetaFile, KindOf(err), err)
	}
}

// ROOT/wal is pgwarm-wal's own directory and must not be a link (every
// read and write would go where it points); the root itself may be one.
func TestWALDirLinkRefused(t *testing.T) {
	l, n, old, _ := archiveHoldingOld(t)
	ctx := context.Background()
	linkedRoot := filepath.Join(t.TempDir(), "archive")
	if err := os.Symlink(l.Root, linkedRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(linkedRoot, Options{}).Get(ctx, n, 0); err != nil {
		t.Fatalf("an archive root that is a link must work: %v", err)
	}

	other := NewLocal(t.TempDir(), Options{})
	if err := os.Symlink(l.walDir(), other.walDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(ctx, n, 0); KindOf(err) != KindBadInput || !containsAll(err.Error(), []string{other.walDir(), "symbolic link"}) {
		t.Fatalf("get through a linked wal directory: kind %v, %v", KindOf(err), err)
	}
	if _, err := other.List(ctx); KindOf(err) != KindBadInput {
		t.Fatalf("list through a linked wal directory: kind %v, %v", KindOf(err), err)
	}
	n6 := mustParse(t, "000000010000000000000006")
	if err := other.Put(ctx, n6, old); KindOf(err) != KindBadInput {
		t.Fatalf("put through a linked wal directory: kind %v, %v", KindOf(err), err)
	}
	if _, err := os.Lstat(l.path(n6)); err == nil {
		t.Fatal("put wrote through the linked wal directory")
	}
}

// Get refuses a segment of another cluster than the archive's binding,
// naming both: PostgreSQL must never be handed it (restore reads through
// Get, locally and on the archive host under serve). The segment is
// intact; only the archive it sits in belongs to another cluster.
func TestGetRefusesForeignCluster(t *testing.T) {
	old, _ := readContentSummed(t)
	h, err := walfile.UnmarshalHeader(old)
	if err != nil {
		t.Fatal(err)
	}
	l, n := newArchive(t)
	bound := h.SysID + 1
	meta, _ := json.Marshal(Meta{Format: 1, SysID: strconv.FormatUint(bound, 10), SegSize: h.SegSize})
	if err := os.WriteFile(filepath.Join(l.Root, MetaFile), meta, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(l.walDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.path(n), old, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := l.Get(context.Background(), n, 0)
	want := []string{l.path(n), strconv.FormatUint(h.SysID, 10), strconv.FormatUint(bound, 10), MetaFile}
	if KindOf(err) != KindForeign || !containsAll(err.Error(), want) || b != nil {
		t.Fatalf("get of a foreign segment: kind %v, %v", KindOf(err), err)
	}
	r, err := l.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := r.Worst(); k != KindForeign {
		t.Fatalf("verify no longer flags it: %+v", r.Problems)
	}
}

func problemNames(r Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Name)
	}
	return out
}
