package walfile

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// textSegment is a 16 MiB WAL-shaped segment whose first 9 MiB are
// compressible pages (so a zstd body has several frames), then zeros.
// testdata/v2-zstd.walfile was written from it by the version before
// SumBody (4d88004).
func textSegment() []byte {
	b := fakeSegment(16<<20, 5, 7000000000000000001, 0)
	for off := 4096; off < 9<<20; off += 4096 {
		n := copy(b[off:], fmt.Sprintf("page %d of the text segment;", off/4096))
		for i := off + n; i < off+4096; i++ {
			b[i] = byte('a' + i%23)
		}
	}
	return b
}

// Files whose sha256 covers the content (filtered, several zstd frames)
// still decode and are still checked against that sum.
func TestDecodesContentSummedFiles(t *testing.T) {
	file, err := os.ReadFile("testdata/v2-zstd.walfile")
	if err != nil {
		t.Fatal(err)
	}
	want := textSegment()
	got, h, err := Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	if h.SumKind != SumContent || h.Filter != PageHeaders || !bytes.Equal(got, want) {
		t.Fatalf("header %+v, content equal %v", h, bytes.Equal(got, want))
	}
	if h.SHA256 != sha256.Sum256(want) {
		t.Fatal("an old file's sum is not of its content")
	}
	if ok, err := CheckBody(file); ok || err != nil {
		t.Fatalf("CheckBody on a content-summed file: %v %v", ok, err)
	}
}

// New files carry the sha256 of the body: checked before decompressing,
// and zstd's own frame checksums check what decompression produced.
func TestNewFilesSumTheBody(t *testing.T) {
	for _, c := range []Compression{None, Gzip, Zstd} {
		file, h := encodeText(t, c)
		if h.SumKind != SumBody || h.SHA256 != sha256.Sum256(file[HeaderSize:]) {
			t.Fatalf("%v: header %+v does not sum the body", c, h)
		}
		if ok, err := CheckBody(file); !ok || err != nil {
			t.Fatalf("%v: CheckBody %v %v", c, ok, err)
		}
		bad := bytes.Clone(file)
		bad[HeaderSize+len(bad[HeaderSize:])/2] ^= 0x10
		if _, _, err := Decode(bad); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "stored body sha256") {
			t.Fatalf("%v: flipped body bit: %v", c, err)
		}
		if _, err := CheckBody(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v: CheckBody missed a flipped bit: %v", c, err)
		}
	}

	// A body that matches its header sum but decompresses to other bytes
	// (what a compressor bug would write) is caught by the frame checksum:
	// damage the last frame's XXH64 and make the header agree.
	file, h := encodeText(t, Zstd)
	bad := bytes.Clone(file)
	bad[len(bad)-1] ^= 0xff
	h.SHA256 = sha256.Sum256(bad[HeaderSize:])
	copy(bad, h.Marshal())
	if _, _, err := Decode(bad); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("zstd frame checksum not checked: %v", err)
	}
	// Every frame declares its checksum (Content_Checksum_flag, bit 2 of
	// the frame header descriptor after the 4-byte magic).
	frames := 0
	for _, part := range bytes.Split(file[HeaderSize:], []byte{0x28, 0xb5, 0x2f, 0xfd})[1:] {
		if frames++; part[0]&0x04 == 0 {
			t.Fatalf("frame %d has no content checksum", frames)
		}
	}
	if frames < 3 {
		t.Fatalf("%d frames, want 3 (9 MiB stored in 4 MiB frames)", frames)
	}
}

func TestHeaderRejectsUnknownSumKind(t *testing.T) {
	b := Header{Compression: Zstd, SumKind: SumBody}.Marshal()
	if _, err := UnmarshalHeader(b); err != nil {
		t.Fatal(err)
	}
	b = Header{Compression: Zstd, SumKind: 2}.Marshal()
	if _, err := UnmarshalHeader(b); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum kind") {
		t.Fatalf("unknown sum kind: %v", err)
	}
}

// A warmed encoder writes exactly what a new one writes: the warm-up is a
// page-fault optimisation, never a change to the archive's bytes.
func TestWarmEncoderOutput(t *testing.T) {
	seg := textSegment()
	for _, part := range [][]byte{seg[:4<<20], seg[4<<20 : 8<<20], seg[8<<20 : 9<<20]} {
		var fresh, warm bytes.Buffer
		if _, err := zstdFrame(&fresh, nil, [][]byte{part}); err != nil {
			t.Fatal(err)
		}
		zw, err := warmEncoder()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zstdFrame(&warm, zw, [][]byte{part}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh.Bytes(), warm.Bytes()) {
			t.Fatalf("warmed encoder wrote %d bytes, a new one %d", warm.Len(), fresh.Len())
		}
	}
}

// The content crc32c checks the final bytes, after the filter is undone:
// a header whose filter page size was changed (its own crc recomputed, so
// only the content check can tell) decodes to other bytes and is refused.
func TestContentCRCCoversTheFilter(t *testing.T) {
	file, h := encodeText(t, Zstd)
	if h.ContentCRC == 0 || h.Filter != PageHeaders {
		t.Fatalf("header %+v", h)
	}
	for _, shift := range []uint8{6, 12, 14} {
		bad := bytes.Clone(file)
		hh := h
		hh.PageShift = shift
		copy(bad, hh.Marshal())
		if _, _, err := Decode(bad); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "content crc32c") {
			t.Fatalf("page shift %d: %v", shift, err)
		}
	}
}

// encodeText encodes textSegment with c.
func encodeText(t *testing.T, c Compression) ([]byte, Header) {
	t.Helper()
	seg := textSegment()
	info, err := ParseLongHeader(seg)
	if err != nil {
		t.Fatal(err)
	}
	file, h, err := Encode(seg, c, info)
	if err != nil {
		t.Fatal(err)
	}
	return file, h
}
