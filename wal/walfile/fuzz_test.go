package walfile

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// FuzzDecode feeds Decode arbitrary bytes, seeded with valid files of
// every compression: it must never panic, anything it refuses must wrap
// ErrCorrupt, and anything it accepts must be as long as its header says.
// An archived file is input from another host (and, over ssh, from
// whatever holds a push key), so a restore must fail cleanly on it.
func FuzzDecode(f *testing.F) {
	seg := fakeSegment(1<<20, 3, 7000000000000000001, 3000)
	info, err := ParseLongHeader(seg)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range []Compression{None, Gzip, Zstd} {
		file, _, err := Encode(seg, c, info)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(file)
	}
	f.Add(Header{Compression: Zstd, SumKind: SumBody, Size: 1 << 40}.Marshal())
	f.Fuzz(func(t *testing.T, file []byte) {
		// Whoever writes a hostile file can make its checksums agree:
		// recompute them, so the fuzzer explores past them into the
		// header's fields and the decompressors.
		if len(file) >= HeaderSize && file[11] == byte(SumBody) {
			sum := sha256.Sum256(file[HeaderSize:])
			copy(file[32:64], sum[:])
		}
		if len(file) >= HeaderSize {
			binary.LittleEndian.PutUint32(file[72:], crc32.Checksum(file[:72], castagnoli))
		}
		// Readers bound the size by the file's name before decoding
		// (archive.DecodeFor); past that, a big claimed size only makes
		// the fuzzer slow.
		if h, err := UnmarshalHeader(file); err == nil && h.Size > 64<<20 {
			return
		}
		content, h, err := Decode(file)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("refused without ErrCorrupt: %v", err)
			}
			return
		}
		if uint64(len(content)) != h.Size {
			t.Fatalf("accepted %d bytes, header says %d", len(content), h.Size)
		}
	})
}
