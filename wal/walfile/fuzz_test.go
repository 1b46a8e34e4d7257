package walfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/pgwarm/pgwarm/wal/waltest"
)

// FuzzDecode feeds Decode and the limited decoders arbitrary bytes, seeded
// with valid files of every compression: they must never panic, anything
// refused must wrap ErrCorrupt, anything accepted must be as long as its
// header says and within the limit, with every page header valid when
// the limit checks pages. An archived file is input from another host
// (and, over ssh, from whatever holds a push key), so a reader must fail
// cleanly on it, and never decode much more than the limit.
func FuzzDecode(f *testing.F) {
	seg := fakeSegment(1<<20, 3, 7000000000000000001, 3000)
	waltest.StampPageHeaders(seg)
	info, err := ParseLongHeader(seg)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range []Compression{None, Gzip, Zstd} {
		file, _, err := Encode(seg, c, info)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(file, uint8(0))
		f.Add(file, uint8(1))
		f.Add(file, uint8(2))
	}
	for _, c := range []Compression{None, Gzip, Zstd} {
		// Small inputs the fuzzer mutates fast: a history file.
		file, _, err := Encode([]byte("1\t0/3000000\tno recovery target specified\n"), c, PageInfo{})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(file, uint8(0))
	}
	f.Add(Header{Compression: Zstd, SumKind: SumBody, Size: 1 << 40}.Marshal(), uint8(0))
	f.Fuzz(func(t *testing.T, file []byte, mode uint8) {
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
		// The limits readers use: a text file's 1 MiB, a segment of the
		// seed's 1 MiB with its pages checked (whole, or a .partial's
		// prefix).
		lim := Limit{Size: 1 << 20}
		switch mode % 3 {
		case 1:
			lim.WAL = &WALPages{Start: 3 << 20, TLI: 1}
		case 2:
			lim.WAL = &WALPages{Start: 3 << 20, TLI: 1, Prefix: true}
		}
		content, h, err := DecodeLimited(file, lim)
		if _, cerr := CheckLimited(file, lim); (cerr == nil) != (err == nil) {
			t.Fatalf("DecodeLimited: %v, CheckLimited: %v", err, cerr)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("refused without ErrCorrupt: %v", err)
			}
			return
		}
		if uint64(len(content)) != h.Size || h.Size > lim.Size {
			t.Fatalf("accepted %d bytes, header says %d, limit %d", len(content), h.Size, lim.Size)
		}
		if lim.WAL != nil && !lim.WAL.Prefix {
			if err := CheckPages(content[:h.Stored], h, *lim.WAL); err != nil {
				t.Fatalf("accepted content whose pages fail: %v", err)
			}
		}
		// Without a limit, what the limited decoder accepts decodes the
		// same.
		if h.Size <= 64<<20 {
			plain, _, err := Decode(file)
			if err != nil || !bytes.Equal(plain, content) {
				t.Fatalf("Decode disagrees: %v", err)
			}
		}
	})
}
