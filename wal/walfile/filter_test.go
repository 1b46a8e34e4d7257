package walfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"testing"
)

// walLike builds n bytes of content shaped like WAL: a page header at the
// start of every 8 KiB page (pageaddr counting up from start) and
// repetitive records with a little noise between them.
func walLike(n int, start uint64, seed int64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewSource(seed))
	for i := range b {
		if r.Intn(16) == 0 {
			b[i] = byte(r.Intn(256))
		} else {
			b[i] = "pgbench record   "[i%17]
		}
	}
	for off := 0; off+24 <= n; off += 8192 {
		binary.LittleEndian.PutUint16(b[off:], 0xD110)
		binary.LittleEndian.PutUint16(b[off+2:], 0x0005)
		binary.LittleEndian.PutUint32(b[off+4:], 1)
		binary.LittleEndian.PutUint64(b[off+8:], start+uint64(off))
		binary.LittleEndian.PutUint32(b[off+16:], uint32(r.Intn(300)))
		clear(b[off+20 : off+24])
	}
	return b
}

// The permutation must give back exactly the input, whatever the bytes and
// wherever the length ends (inside a header, inside the pageaddr, exactly
// on a page boundary).
func TestPageHeadersFirstRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, shift := range []uint8{6, 10, 13} {
		page := 1 << shift
		for _, n := range []int{0, 1, 15, 16, 17, 23, 24, 25, page - 1, page, page + 1, page + 12, page + 24, 3*page + 100, 5 * page} {
			for _, src := range [][]byte{walLike(n, 5<<24, int64(n)), randBytes(r, n)} {
				var w bytes.Buffer
				if err := writePieces(&w, pageHeadersFirst(src, shift)); err != nil {
					t.Fatal(err)
				}
				if w.Len() != n {
					t.Fatalf("shift %d n %d: permutation is %d bytes", shift, n, w.Len())
				}
				got := make([]byte, n)
				undoPageHeadersFirst(got, w.Bytes(), shift)
				if !bytes.Equal(got, src) {
					t.Fatalf("shift %d n %d: round trip changed the content", shift, n)
				}
			}
		}
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

// WAL (a page size in the page header) is filtered when compressed, never
// when stored as is, and every combination decodes to the original.
func TestEncodeUsesPageHeaderFilter(t *testing.T) {
	seg := walLike(1<<20, 3<<20, 3)
	copy(seg, fakeSegment(1<<20, 3, 7000000000000000001, 0)[:40])
	seg = append(seg[:600000], make([]byte, 1<<20-600000)...) // trailing zeros, mid-page
	info, err := ParseLongHeader(seg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Compression{None, Gzip, Zstd} {
		file, h, err := Encode(seg, c, info)
		if err != nil {
			t.Fatal(err)
		}
		wantFilter := PageHeaders
		if c == None {
			wantFilter = NoFilter
		}
		if h.Filter != wantFilter || (wantFilter == PageHeaders) != (h.PageShift == 13) {
			t.Fatalf("%v: filter %d shift %d", c, h.Filter, h.PageShift)
		}
		got, h2, err := Decode(file)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if !bytes.Equal(got, seg) || h2 != h {
			t.Fatalf("%v: round trip changed content or header", c)
		}
		if c == Zstd {
			plain, _, err := Encode(seg, c, PageInfo{SysID: info.SysID, SegSize: info.SegSize}) // no page size: no filter
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("zstd: %d bytes with the filter, %d without", len(file), len(plain))
			if got, _, err := Decode(plain); err != nil || !bytes.Equal(got, seg) {
				t.Fatalf("unfiltered: %v", err)
			}
		}
	}
	// Non-WAL content (history files) is never filtered.
	if _, h, err := Encode([]byte("1\t0/3000000\tno recovery target specified\n"), Zstd, PageInfo{}); err != nil || h.Filter != NoFilter {
		t.Fatalf("history file: filter %d, %v", h.Filter, err)
	}
}

// Files written before the filter existed (testdata/v1-*, made by that
// version from fakeSegment(1<<20, 3, 7000000000000000001, 6000)) still
// decode, checksum included.
func TestDecodesFilesWithoutFilter(t *testing.T) {
	want := fakeSegment(1<<20, 3, 7000000000000000001, 6000)
	for _, c := range []Compression{None, Gzip, Zstd} {
		file, err := os.ReadFile("testdata/v1-" + c.String() + ".walfile")
		if err != nil {
			t.Fatal(err)
		}
		got, h, err := Decode(file)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if h.Filter != NoFilter || h.Compression != c || !bytes.Equal(got, want) {
			t.Fatalf("%v: header %+v, content equal %v", c, h, bytes.Equal(got, want))
		}
	}
}

// A header naming a filter or page size this version does not know is
// refused as corrupt, even with a valid header checksum.
func TestHeaderRejectsUnknownFilter(t *testing.T) {
	for _, h := range []Header{
		{Compression: Zstd, Filter: 2, PageShift: 13},
		{Compression: Zstd, Filter: PageHeaders, PageShift: 0},
		{Compression: Zstd, Filter: PageHeaders, PageShift: 40},
		{Compression: Zstd, Filter: NoFilter, PageShift: 13},
	} {
		if _, err := UnmarshalHeader(h.Marshal()); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%+v: %v", h, err)
		}
	}
	b := Header{Compression: Zstd, Filter: PageHeaders, PageShift: 13}.Marshal()
	if h, err := UnmarshalHeader(b); err != nil || h.Filter != PageHeaders || h.PageShift != 13 {
		t.Fatalf("valid filtered header: %+v %v", h, err)
	}
}

func TestSplitPieces(t *testing.T) {
	pieces := [][]byte{[]byte("abc"), nil, []byte("defg"), []byte("h")}
	for at := 0; at <= 8; at++ {
		a, b := splitPieces(pieces, at)
		if got := string(bytes.Join(a, nil)) + "|" + string(bytes.Join(b, nil)); got != "abcdefgh"[:at]+"|"+"abcdefgh"[at:] {
			t.Fatalf("at %d: %q", at, got)
		}
	}
}

// Above zstdFrameSize, zstd writes several frames compressed concurrently;
// restore reads them as one stream, and damage in either is caught.
func TestZstdFramesRoundTrip(t *testing.T) {
	seg := walLike(9<<20+100, 7<<24, 7) // three frames, the last one short
	copy(seg, fakeSegment(16<<20, 7, 42, 0)[:40])
	seg = append(seg, make([]byte, 7<<20-100)...)
	info, err := ParseLongHeader(seg)
	if err != nil {
		t.Fatal(err)
	}
	file, h, err := Encode(seg, Zstd, info)
	if err != nil {
		t.Fatal(err)
	}
	if h.Stored <= zstdFrameSize || h.Filter != PageHeaders {
		t.Fatalf("header %+v", h)
	}
	if n := bytes.Count(file[HeaderSize:], []byte{0x28, 0xB5, 0x2F, 0xFD}); n < 3 {
		t.Fatalf("%d zstd frame magics in the body, want 3", n)
	}
	got, _, err := Decode(file)
	if err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("round trip: %v", err)
	}
	for _, off := range []int{HeaderSize + 10, len(file) / 2, len(file) - 3} {
		bad := bytes.Clone(file)
		bad[off] ^= 0x10
		if _, _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: %v", off, err)
		}
	}
}
