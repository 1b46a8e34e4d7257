package walfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// walSegment is a 1 MiB segment of timeline tli at segno with pages
// pages written (page headers on every one, some record bytes), the rest
// zeros.
func walSegment(segno uint64, tli uint32, pages int) []byte {
	seg := fakeSegment(1<<20, segno, 7000000000000000001, 0)
	binary.LittleEndian.PutUint32(seg[4:], tli)
	for i := 1; i < pages; i++ {
		off := i * 8192
		binary.LittleEndian.PutUint16(seg[off:], 0xD110)
		binary.LittleEndian.PutUint32(seg[off+4:], tli)
		binary.LittleEndian.PutUint64(seg[off+8:], segno<<20+uint64(off))
		copy(seg[off+24:], "a record that crosses no page")
	}
	copy(seg[40:], "the first record")
	return seg
}

func checkSeg(t *testing.T, seg []byte, w WALPages) error {
	t.Helper()
	info, err := ParseLongHeader(seg)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, c := range []Compression{None, Gzip, Zstd} {
		file, _, err := Encode(seg, c, info)
		if err != nil {
			t.Fatal(err)
		}
		_, _, derr := DecodeLimited(file, Limit{Size: 1 << 20, WAL: &w})
		_, cerr := CheckLimited(file, Limit{Size: 1 << 20, WAL: &w})
		if (derr == nil) != (cerr == nil) {
			t.Fatalf("%v: DecodeLimited %v, CheckLimited %v", c, derr, cerr)
		}
		errs = append(errs, derr)
	}
	for _, e := range errs[1:] {
		if (e == nil) != (errs[0] == nil) {
			t.Fatalf("compressions disagree: %v", errs)
		}
	}
	return errs[0]
}

// PostgreSQL's page header rules, page by page, on every codec (with and
// without the PageHeaders filter): what real WAL looks like passes, a
// crafted page is refused where it is.
func TestPageChecks(t *testing.T) {
	w := WALPages{Start: 3 << 20, TLI: 2}
	ok := func(what string, seg []byte, w WALPages) {
		t.Helper()
		if err := checkSeg(t, seg, w); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	bad := func(what string, seg []byte, w WALPages, msg string) {
		t.Helper()
		err := checkSeg(t, seg, w)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", what, err, msg)
		}
	}
	ok("busy, all pages written", walSegment(3, 2, 128), w)
	ok("switched early: zero pages after the last written one", walSegment(3, 2, 5), w)

	// Before PostgreSQL 14 the pages after a switch carry headers and
	// nothing else: the last one's header is cut by the trailing zeros.
	seg := walSegment(3, 2, 128)
	for i := 5; i < 128; i++ {
		clear(seg[i*8192+24 : (i+1)*8192])
	}
	ok("pre-14 switch: empty pages with headers", seg, w)

	// The first segment of a new timeline: pages copied from the parent
	// timeline, then the new one's.
	seg = walSegment(3, 1, 128)
	for i := 60; i < 128; i++ {
		binary.LittleEndian.PutUint32(seg[i*8192+4:], 2)
	}
	ok("timeline switch inside the segment", seg, w)

	seg = walSegment(3, 2, 128)
	binary.LittleEndian.PutUint32(seg[61*8192+4:], 1)
	bad("timeline going back", seg, w, "offset 499712")
	bad("page on a later timeline than the name", walSegment(3, 3, 128), w, "timeline 3, later than the file's name")

	seg = walSegment(3, 2, 128)
	binary.LittleEndian.PutUint64(seg[7*8192+8:], 9<<20)
	bad("page from another segment (a recycled file)", seg, w, "offset 57344 (LSN 0/0030E000) says it is at LSN 0/00900000")

	seg = walSegment(3, 2, 5)
	seg[100*8192+500] = 1
	bad("a zero page before more content", seg, w, "offset 40960")

	seg = walSegment(3, 2, 128)
	binary.LittleEndian.PutUint16(seg[3*8192+2:], 0x0010)
	bad("unknown xlp_info bits", seg, w, "unknown xlp_info bits 0x0010")

	seg = walSegment(3, 2, 128)
	binary.LittleEndian.PutUint16(seg[3*8192:], 0xD10D)
	bad("another magic", seg, w, "magic 0xD10D")

	bad("first page elsewhere", walSegment(4, 2, 3), w, "first page is at LSN 0/00400000")

	// A .partial: valid pages up to where WAL ends, then stale bytes.
	seg = walSegment(3, 2, 128)
	binary.LittleEndian.PutUint64(seg[50*8192+8:], 1<<20)
	ok(".partial with a stale tail", seg, WALPages{Start: 3 << 20, TLI: 2, Prefix: true})
	bad("the same as a segment", seg, w, "offset 409600")
	bad(".partial whose first page is wrong", walSegment(4, 2, 3), WALPages{Start: 3 << 20, TLI: 2, Prefix: true}, "first page")
}

// A body that inflates far beyond the header's claim is refused after at
// most one byte past the stored length: decoding a 4 GiB zstd bomb (a
// few KB of RLE blocks) under a 1 MiB limit allocates a few MiB, not
// gigabytes.
func TestBombIsNotInflated(t *testing.T) {
	prefix := walSegment(3, 1, 1)[:8192]
	body := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50} // no content size, 1 MiB window
	body = append(body, byte(len(prefix)<<3), byte(len(prefix)>>5), byte(len(prefix)>>13))
	body = append(body, prefix...)
	for n := 0; n < 4<<30; n += 128 << 10 {
		v := uint32(128<<10)<<3 | 1<<1
		if n+128<<10 == 4<<30 {
			v |= 1
		}
		body = append(body, byte(v), byte(v>>8), byte(v>>16), 0)
	}
	for _, stored := range []uint64{8192, 1 << 20} {
		h := Header{Compression: Zstd, SumKind: SumBody, SegSize: 1 << 20, Size: 1 << 20, SysID: 7000000000000000001, Stored: stored}
		h.SHA256 = sha256Sum(body)
		file := append(h.Marshal(), body...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := DecodeLimited(file, Limit{Size: 1 << 20})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "decodes to more than") {
			t.Fatalf("stored %d: %v", stored, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
			t.Fatalf("stored %d: decoding the bomb allocated %d MiB", stored, got>>20)
		}
	}
	// With the page checks, the second page (zeros) stops it first.
	h := Header{Compression: Zstd, SumKind: SumBody, SegSize: 1 << 20, Size: 1 << 20, SysID: 7000000000000000001, Stored: 1 << 20}
	h.SHA256 = sha256Sum(body)
	_, _, err := DecodeLimited(append(h.Marshal(), body...), Limit{Size: 1 << 20, WAL: &WALPages{Start: 3 << 20, TLI: 1}})
	if err == nil || !strings.Contains(err.Error(), "offset 8192") {
		t.Fatalf("with page checks: %v", err)
	}
	if !bytes.Equal(body[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatal("not a zstd frame")
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// The moved headers of a filtered file are read before its first page:
// a filter page no WAL page can have (64 bytes: the headers would be 3/8
// of a 1 GiB claim) is refused before they are allocated.
func TestFilterPageMustBeAWALPage(t *testing.T) {
	h := Header{Compression: Zstd, Filter: PageHeaders, PageShift: 6, SumKind: SumBody,
		SegSize: 1 << 30, Size: 1 << 30, SysID: 7000000000000000001, Stored: 1 << 30}
	body := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50}
	for n := 0; n < 1<<30; n += 128 << 10 {
		v := uint32(128<<10)<<3 | 1<<1
		if n+128<<10 == 1<<30 {
			v |= 1
		}
		body = append(body, byte(v), byte(v>>8), byte(v>>16), 0)
	}
	h.SHA256 = sha256Sum(body)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := DecodeLimited(append(h.Marshal(), body...), Limit{Size: 1 << 30, WAL: &WALPages{Start: 3 << 30, TLI: 1}})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cannot be WAL pages") {
		t.Fatalf("err = %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Fatalf("allocated %d MiB before refusing", got>>20)
	}
}
