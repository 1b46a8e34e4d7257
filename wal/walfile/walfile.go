// Package walfile is the on-disk format of one archived file: a fixed
// 72-byte header followed by the (optionally compressed) content. The header
// makes every archived file self-describing, so restore and verify need no
// side index and a file is either complete and checkable or detectably bad.
//
//	offset size field
//	0      8    magic "PGWARMW1"
//	8      1    compression (0 none, 1 gzip, 2 zstd)
//	9      3    reserved, zero
//	12     4    wal_segment_size from the WAL page header (0 if not WAL)
//	16     8    uncompressed content size
//	24     8    system identifier from the WAL page header (0 if not WAL)
//	32     32   sha256 of the uncompressed content
//	64     8    stored length: content bytes before its trailing zeros
//	72     4    crc32c of bytes 0..71 (catches a damaged header cheaply)
//	76     4    reserved, zero
//
// All integers are little-endian. Trailing zeros are not stored at all: a
// segment closed early by archive_timeout is a little WAL followed by
// zeros, and dropping them is what makes an idle switch cost a few hundred
// bytes instead of 16 MiB (and costs no CPU to compress).
package walfile

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/zstd"
)

const (
	HeaderSize = 80
	magic      = "PGWARMW1"
)

// Compression is the codec of the stored body.
type Compression uint8

const (
	None Compression = 0
	Gzip Compression = 1
	Zstd Compression = 2
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("unknown(%d)", uint8(c))
}

// ParseCompression reads the --compression flag value.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "zstd", "":
		return Zstd, nil
	case "gzip":
		return Gzip, nil
	case "none":
		return None, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want zstd, gzip or none)", s)
}

// Header describes one archived file.
type Header struct {
	Compression Compression
	SegSize     uint32
	Size        uint64
	SysID       uint64
	SHA256      [32]byte
	Stored      uint64 // content length without trailing zeros
}

// Sum is the content checksum in hex, as printed to operators.
func (h Header) Sum() string { return hex.EncodeToString(h.SHA256[:]) }

// ErrCorrupt is wrapped by every integrity failure.
var ErrCorrupt = errors.New("archived file is corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Marshal encodes h into HeaderSize bytes.
func (h Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	b[8] = byte(h.Compression)
	binary.LittleEndian.PutUint32(b[12:], h.SegSize)
	binary.LittleEndian.PutUint64(b[16:], h.Size)
	binary.LittleEndian.PutUint64(b[24:], h.SysID)
	copy(b[32:64], h.SHA256[:])
	binary.LittleEndian.PutUint64(b[64:], h.Stored)
	binary.LittleEndian.PutUint32(b[72:], crc32.Checksum(b[:72], castagnoli))
	return b
}

// UnmarshalHeader decodes and checks the header at the start of b.
func UnmarshalHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrCorrupt, len(b), HeaderSize)
	}
	if string(b[:8]) != magic {
		return Header{}, fmt.Errorf("%w: not a pgwarm-wal archive file (bad magic %q)", ErrCorrupt, b[:8])
	}
	if got, want := crc32.Checksum(b[:72], castagnoli), binary.LittleEndian.Uint32(b[72:]); got != want {
		return Header{}, fmt.Errorf("%w: header checksum %08x, expected %08x", ErrCorrupt, got, want)
	}
	if b[9]|b[10]|b[11]|b[76]|b[77]|b[78]|b[79] != 0 {
		return Header{}, fmt.Errorf("%w: reserved header bytes are not zero", ErrCorrupt)
	}
	h := Header{
		Compression: Compression(b[8]),
		SegSize:     binary.LittleEndian.Uint32(b[12:]),
		Size:        binary.LittleEndian.Uint64(b[16:]),
		SysID:       binary.LittleEndian.Uint64(b[24:]),
		Stored:      binary.LittleEndian.Uint64(b[64:]),
	}
	copy(h.SHA256[:], b[32:64])
	if h.Stored > h.Size {
		return Header{}, fmt.Errorf("%w: stored length %d exceeds content size %d", ErrCorrupt, h.Stored, h.Size)
	}
	if h.Compression > Zstd {
		return Header{}, fmt.Errorf("%w: unknown compression code %d", ErrCorrupt, b[8])
	}
	return h, nil
}

// Encode builds a complete archive file from content.
func Encode(content []byte, c Compression, info PageInfo) ([]byte, Header, error) {
	h := Header{Compression: c, Size: uint64(len(content)), SHA256: sha256.Sum256(content),
		SysID: info.SysID, SegSize: info.SegSize}
	content = bytes.TrimRight(content, "\x00")
	h.Stored = uint64(len(content))
	var buf bytes.Buffer
	buf.Grow(HeaderSize + len(content)/8)
	buf.Write(h.Marshal())
	switch c {
	case None:
		buf.Write(content)
	case Gzip:
		zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		if err != nil {
			return nil, Header{}, err
		}
		if _, err := zw.Write(content); err != nil {
			return nil, Header{}, err
		}
		if err := zw.Close(); err != nil {
			return nil, Header{}, err
		}
	case Zstd:
		// SpeedDefault: WAL of a busy pgbench run compresses ~3x and a
		// forced idle switch (16 MiB of zeros) to a few hundred bytes; higher
		// levels cost more CPU than the bytes they save here (see bench/wal).
		// One goroutine: the archiver runs next to a busy PostgreSQL, and
		// parallel block encoding measured slower on a loaded 2-core host.
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
		if err != nil {
			return nil, Header{}, err
		}
		if _, err := zw.Write(content); err != nil {
			return nil, Header{}, err
		}
		if err := zw.Close(); err != nil {
			return nil, Header{}, err
		}
	default:
		return nil, Header{}, fmt.Errorf("unknown compression %d", c)
	}
	return buf.Bytes(), h, nil
}

// Decode checks a complete archive file and returns its content. Any
// damage (header, body, length, checksum) wraps ErrCorrupt.
func Decode(file []byte) ([]byte, Header, error) {
	h, err := UnmarshalHeader(file)
	if err != nil {
		return nil, Header{}, err
	}
	body := file[HeaderSize:]
	var content []byte
	switch h.Compression {
	case None:
		content = body
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, h, fmt.Errorf("%w: gzip body: %v", ErrCorrupt, err)
		}
		content, err = readLimited(zr, h.Stored)
		if err != nil {
			return nil, h, fmt.Errorf("%w: gzip body: %v", ErrCorrupt, err)
		}
	case Zstd:
		zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(max(2*h.Stored, 64<<20)))
		if err != nil {
			return nil, h, err
		}
		defer zr.Close()
		content, err = zr.DecodeAll(body, make([]byte, 0, h.Size))
		if uint64(len(content)) > h.Stored {
			return nil, h, fmt.Errorf("%w: zstd body is longer than the header says", ErrCorrupt)
		}
		if err != nil {
			return nil, h, fmt.Errorf("%w: zstd body: %v", ErrCorrupt, err)
		}
	}
	if uint64(len(content)) != h.Stored {
		return nil, h, fmt.Errorf("%w: stored content is %d bytes, header says %d", ErrCorrupt, len(content), h.Stored)
	}
	if h.Size > h.Stored {
		full := make([]byte, h.Size) // zeroed: restores the trailing zeros
		copy(full, content)
		content = full
	}
	if sum := sha256.Sum256(content); sum != h.SHA256 {
		return nil, h, fmt.Errorf("%w: content sha256 %x, header says %s", ErrCorrupt, sum, h.Sum())
	}
	return content, h, nil
}

// readLimited reads at most size+1 bytes, so a corrupt stream cannot make
// us allocate without bound; the length check happens in Decode.
func readLimited(r io.Reader, size uint64) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(min(size, 1<<30)))
	_, err := io.Copy(&buf, io.LimitReader(r, int64(size)+1))
	return buf.Bytes(), err
}
