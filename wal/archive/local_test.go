package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
	"github.com/pgwarm/pgwarm/wal/waltest"
)

// contentSummed is a file written by pgwarm-wal before SumBody (4d88004):
// the sha256 in its header is of the content. It is a copy of
// wal/walfile/testdata/v2-zstd.walfile (segment 5 of cluster
// 7000000000000000001, 16 MiB, three zstd frames).
const contentSummed = "testdata/content-summed-000000010000000000000005.walfile"

func newArchive(t *testing.T) (*Local, segname.Name) {
	t.Helper()
	n, err := segname.Parse("000000010000000000000005")
	if err != nil {
		t.Fatal(err)
	}
	return NewLocal(t.TempDir(), Options{}), n
}

// readContentSummed returns an old-format file and its content. The
// testdata file still decodes, but its pages past the first are text, not
// WAL, which the archive now refuses (every page header is checked): the
// content gets the page headers PostgreSQL writes, and the file is summed
// the old way, over the content, as that version wrote it.
func readContentSummed(t *testing.T) (file, content []byte) {
	t.Helper()
	file, err := os.ReadFile(contentSummed)
	if err != nil {
		t.Fatal(err)
	}
	content, h, err := walfile.Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	waltest.StampPageHeaders(content)
	return contentSummedFile(t, content, h.Compression), content
}

// contentSummedFile encodes content as pgwarm-wal wrote files before
// SumBody (4d88004): the header's sha256 is of the content, no content crc.
func contentSummedFile(t *testing.T, content []byte, c walfile.Compression) []byte {
	t.Helper()
	file := encode(t, content, c)
	h, err := walfile.UnmarshalHeader(file)
	if err != nil {
		t.Fatal(err)
	}
	h.SumKind, h.SHA256, h.ContentCRC = walfile.SumContent, sha256.Sum256(content), 0
	copy(file, h.Marshal())
	return file
}

// archiveHoldingOld is a new archive that holds the old-format file (as
// segment n), with that file and its content.
func archiveHoldingOld(t *testing.T) (l *Local, n segname.Name, old, content []byte) {
	t.Helper()
	old, content = readContentSummed(t)
	l, n = newArchive(t)
	if err := l.Put(context.Background(), n, old); err != nil {
		t.Fatalf("storing the old file: %v", err)
	}
	return l, n, old, content
}

func encode(t *testing.T, content []byte, c walfile.Compression) []byte {
	t.Helper()
	info, err := walfile.ParseLongHeader(content)
	if err != nil {
		t.Fatal(err)
	}
	file, _, err := walfile.Encode(content, c, info)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// An archive filled by an older pgwarm-wal (content sums) and a retry
// by this one (body sums) must agree on "same content", and a conflict
// must name the content checksums an operator can compare with sha256sum.
func TestPutComparesContentAcrossSumKinds(t *testing.T) {
	ctx := context.Background()
	for _, c := range []walfile.Compression{walfile.Zstd, walfile.Gzip, walfile.None} {
		l, n, old, content := archiveHoldingOld(t)
		if err := l.Put(ctx, n, encode(t, content, c)); err != nil {
			t.Fatalf("%v: same content, other sum kind: %v", c, err)
		}
		other := bytes.Clone(content)
		other[5000] ^= 1
		err := l.Put(ctx, n, encode(t, other, c))
		want := []string{fmt.Sprintf("%x", sha256.Sum256(content)), fmt.Sprintf("%x", sha256.Sum256(other)), "different content"}
		if KindOf(err) != KindConflict || !containsAll(err.Error(), want) {
			t.Fatalf("%v: different content: kind %v, %v", c, KindOf(err), err)
		}
		if now, _ := os.ReadFile(l.path(n)); !bytes.Equal(now, old) {
			t.Fatalf("%v: the archived file changed", c)
		}
	}
}

// A file whose body no longer matches its checksum (damaged between
// ship and archive) is refused before it takes the name.
func TestPutRefusesDamagedBody(t *testing.T) {
	_, content := readContentSummed(t)
	l, n := newArchive(t)
	file := encode(t, content, walfile.Zstd)
	file[len(file)-100] ^= 0x40
	err := l.Put(context.Background(), n, file)
	if KindOf(err) != KindCorrupt || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged body: kind %v, %v", KindOf(err), err)
	}
	if _, err := os.Stat(filepath.Join(l.Root, WALDir, n.String())); err == nil {
		t.Fatal("a damaged file was stored")
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// A header claiming a size its name cannot have (a segment longer than the
// cluster's segments, a history file of 32 MiB) is refused before anything
// allocates that size: on push, and by every reader (DecodeFor).
func TestImplausibleSizesRefused(t *testing.T) {
	_, content := readContentSummed(t)
	file := encode(t, content, walfile.Zstd)
	h, err := walfile.UnmarshalHeader(file)
	if err != nil {
		t.Fatal(err)
	}
	lie := func(size uint64) []byte {
		b := bytes.Clone(file)
		hh := h
		hh.Size = size
		copy(b, hh.Marshal())
		return b
	}
	hist, err := segname.Parse("00000002.history")
	if err != nil {
		t.Fatal(err)
	}
	l, n := newArchive(t)
	for _, c := range []struct {
		name segname.Name
		file []byte
	}{
		{n, lie(walfile.MaxContentSize)},
		{n, lie(uint64(h.SegSize) * 2)},
		{hist, lie(32 << 20)},
	} {
		err := l.Put(context.Background(), c.name, c.file)
		if KindOf(err) != KindCorrupt || !strings.Contains(err.Error(), "would be") {
			t.Fatalf("%s: push of an implausible size: kind %v, %v", c.name, KindOf(err), err)
		}
		if _, err := os.Stat(l.path(c.name)); err == nil {
			t.Fatalf("%s: stored", c.name)
		}
		if _, _, err := DecodeFor(c.name, c.file, 0); !errors.Is(err, walfile.ErrCorrupt) || !strings.Contains(err.Error(), "would be") {
			t.Fatalf("%s: DecodeFor: %v", c.name, err)
		}
	}
	if _, err := walfile.UnmarshalHeader(lie(walfile.MaxContentSize + 1)); !errors.Is(err, walfile.ErrCorrupt) {
		t.Fatalf("a size over 1 GiB passed the header check: %v", err)
	}
}

// The same body under a header with another size is not the same file:
// a history file and the same bytes followed by zeros (which are never
// stored) are different content.
func TestSameBodyOtherSizeIsAConflict(t *testing.T) {
	l, _ := newArchive(t)
	n, err := segname.Parse("00000002.history")
	if err != nil {
		t.Fatal(err)
	}
	text := []byte("1\t0/3000000\tno recovery target specified\n")
	enc := func(b []byte) []byte {
		f, _, err := walfile.Encode(b, walfile.Zstd, walfile.PageInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ctx := context.Background()
	if err := l.Put(ctx, n, enc(text)); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, n, enc(text)); err != nil {
		t.Fatalf("identical retry: %v", err)
	}
	if err := l.Put(ctx, n, enc(append(bytes.Clone(text), 0, 0, 0))); KindOf(err) != KindConflict {
		t.Fatalf("same text plus zeros: kind %v, %v", KindOf(err), err)
	}
}

// A damaged copy written by an older version is repaired by a retry of
// the same content from this one (its header still names that content),
// and never by other content.
func TestRepairsDamagedOldCopy(t *testing.T) {
	l, n, old, content := archiveHoldingOld(t)
	ctx := context.Background()
	damaged := bytes.Clone(old)
	damaged[len(damaged)-10] ^= 0x08
	if err := os.WriteFile(l.path(n), damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(content)
	other[6000] ^= 1
	if err := l.Put(ctx, n, encode(t, other, walfile.Zstd)); KindOf(err) != KindCorrupt {
		t.Fatalf("other content over a damaged copy: kind %v, %v", KindOf(err), err)
	}
	fresh := encode(t, content, walfile.Gzip)
	if err := l.Put(ctx, n, fresh); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if now, _ := os.ReadFile(l.path(n)); !bytes.Equal(now, fresh) {
		t.Fatal("the damaged copy was not replaced")
	}
}

// A segment whose header says the cluster's segments are 1 GiB (and is
// 1 GiB: self-consistent) in an archive of 16 MiB segments is refused by
// Get before any reader allocates it, and reported by verify.
func TestArchiveSegmentSizeBindsReaders(t *testing.T) {
	l, _, old, _ := archiveHoldingOld(t)
	ctx := context.Background()
	h, err := walfile.UnmarshalHeader(old)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Clone(old)
	h.SegSize, h.Size = 1<<30, 1<<30
	copy(big, h.Marshal())
	n6, _ := segname.Parse("000000010000000000000006")
	if err := os.WriteFile(l.path(n6), big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(ctx, n6, 0); KindOf(err) != KindCorrupt || !strings.Contains(err.Error(), "the archive's are 16777216") {
		t.Fatalf("get: kind %v, %v", KindOf(err), err)
	}
	if v := CheckFile(n6, big, 16<<20); v.Err == nil {
		t.Fatal("CheckFile with the archive's segment size accepted it")
	}
	r, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range r.Problems {
		found = found || p.Name == n6.String()
	}
	if !found {
		t.Fatalf("verify does not report %s: %+v", n6, r.Problems)
	}
}
