// Package walfile is the on-disk format of one archived file: a fixed
// 72-byte header followed by the (optionally compressed) content. The header
// makes every archived file self-describing, so restore and verify need no
// side index and a file is either complete and checkable or detectably bad.
//
//	offset size field
//	0      8    magic "PGWARMW1"
//	8      1    compression (0 none, 1 gzip, 2 zstd)
//	9      1    filter applied before compression (0 none, 1 page headers first)
//	10     1    log2 of the filter's page size (0 without a filter)
//	11     1    what the sha256 covers (0 the uncompressed content, 1 the body)
//	12     4    wal_segment_size from the WAL page header (0 if not WAL)
//	16     8    uncompressed content size
//	24     8    system identifier from the WAL page header (0 if not WAL)
//	32     32   sha256 (of the content or of the body, by byte 11)
//	64     8    stored length: content bytes before its trailing zeros
//	72     4    crc32c of bytes 0..71 (catches a damaged header cheaply)
//	76     4    content check (SumBody files; zero otherwise): crc32c of the
//	            crc32c of every 4 MiB of the stored content
//
// All integers are little-endian. Trailing zeros are not stored at all: a
// segment closed early by archive_timeout is a little WAL followed by
// zeros, and dropping them is what makes an idle switch cost a few hundred
// bytes instead of 16 MiB (and costs no CPU to compress).
//
// Checksums. Files written now (byte 11 = 1, SumBody) carry the sha256 of
// the body as stored, checked before anything is decompressed, and a
// crc32c of the content (before its trailing zeros), checked on the final
// bytes after decompression and the filter are undone: end to end, what
// ship read is what restore hands over. Their zstd frames also carry
// zstd's XXH64 (gzip has its CRC-32), which names the stage that failed.
// Hashing the ~0.5 MB body with sha256 and the content with crc32c
// (hardware, ~1 ms per 16 MiB) instead of sha256 over 16 MiB took
// checksumming from about a third of ship's CPU to a few percent. Older files (byte 11 = 0,
// SumContent) carry the sha256 of the uncompressed content and are checked
// that way. Equal content can have different bodies (another compression,
// another pgwarm-wal), so the archive decides "same content" by decoding
// both when the checksums differ.
//
// Filter 1 (PageHeaders) is a byte permutation of the stored content made
// for WAL: the first 24 bytes of every page (the page header, whose
// xlp_pageaddr is XORed with the address the page would have if the pages
// followed the first one) come first, then the rest of every page in order.
// Page headers interrupt every record and full-page image that crosses a
// page boundary; moved aside they cost the compressor a few bytes per page
// instead of breaking its matches, which makes busy WAL ~7% smaller with
// zstd. The permutation is exact for any bytes (garbage in, the same
// garbage out), so files written before the filter existed (byte 9 zero)
// read as before.
//
// A zstd body is one or more concatenated frames (one per 4 MiB of stored
// content, compressed concurrently); older files have one frame. Readers
// decode the concatenation.
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
	"math/bits"
	"sync"

	"github.com/klauspost/compress/zstd"
)

const (
	HeaderSize = 80
	magic      = "PGWARMW1"
	// MaxContentSize is PostgreSQL's largest wal_segment_size; history and
	// backup label files are far smaller.
	MaxContentSize = 1 << 30
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

// Filter is the reversible transform applied before compression.
type Filter uint8

const (
	NoFilter    Filter = 0
	PageHeaders Filter = 1 // WAL page headers moved to the front
)

// pageHeaderLen is how much of each page PageHeaders moves: the short page
// header (XLogPageHeaderData, MAXALIGNed). The long header of a segment's
// first page is 40 bytes; its last 16 stay with the page body.
const pageHeaderLen = 24

// SumKind says what a header's sha256 covers.
type SumKind uint8

const (
	SumContent SumKind = 0 // the uncompressed content (files of older versions)
	SumBody    SumKind = 1 // the body as stored, after the header
)

func (k SumKind) String() string {
	if k == SumBody {
		return "stored"
	}
	return "content"
}

// Header describes one archived file.
type Header struct {
	Compression Compression
	Filter      Filter
	PageShift   uint8 // log2 of the filter's page size; 0 without a filter
	SumKind     SumKind
	SegSize     uint32
	Size        uint64
	SysID       uint64
	SHA256      [32]byte
	Stored      uint64 // content length without trailing zeros
	ContentCRC  uint32 // crc32c of the stored content (SumBody)
}

// Sum is the header's checksum in hex (of what SumKind says).
func (h Header) Sum() string { return hex.EncodeToString(h.SHA256[:]) }

// ErrCorrupt is wrapped by every integrity failure.
var ErrCorrupt = errors.New("archived file is corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Marshal encodes h into HeaderSize bytes.
func (h Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	b[8] = byte(h.Compression)
	b[9] = byte(h.Filter)
	b[10] = h.PageShift
	b[11] = byte(h.SumKind)
	binary.LittleEndian.PutUint32(b[12:], h.SegSize)
	binary.LittleEndian.PutUint64(b[16:], h.Size)
	binary.LittleEndian.PutUint64(b[24:], h.SysID)
	copy(b[32:64], h.SHA256[:])
	binary.LittleEndian.PutUint64(b[64:], h.Stored)
	binary.LittleEndian.PutUint32(b[72:], crc32.Checksum(b[:72], castagnoli))
	binary.LittleEndian.PutUint32(b[76:], h.ContentCRC)
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
	h := Header{
		Compression: Compression(b[8]),
		Filter:      Filter(b[9]),
		PageShift:   b[10],
		SumKind:     SumKind(b[11]),
		SegSize:     binary.LittleEndian.Uint32(b[12:]),
		Size:        binary.LittleEndian.Uint64(b[16:]),
		SysID:       binary.LittleEndian.Uint64(b[24:]),
		Stored:      binary.LittleEndian.Uint64(b[64:]),
		ContentCRC:  binary.LittleEndian.Uint32(b[76:]),
	}
	if h.SumKind == SumContent && h.ContentCRC != 0 {
		return Header{}, fmt.Errorf("%w: reserved header bytes are not zero", ErrCorrupt)
	}
	copy(h.SHA256[:], b[32:64])
	if h.Stored > h.Size {
		return Header{}, fmt.Errorf("%w: stored length %d exceeds content size %d", ErrCorrupt, h.Stored, h.Size)
	}
	// Decode allocates Size bytes: a header claiming more than any WAL file
	// can hold (a hostile push, a damaged disk) is refused instead of
	// exhausting the standby's memory.
	if h.SegSize != 0 && (h.SegSize < 1<<20 || h.SegSize > MaxContentSize || h.SegSize&(h.SegSize-1) != 0) {
		return Header{}, fmt.Errorf("%w: %d is not a WAL segment size (a power of two from 1 MiB to 1 GiB)", ErrCorrupt, h.SegSize)
	}
	if h.Size > MaxContentSize {
		return Header{}, fmt.Errorf("%w: content size %d is more than the largest WAL segment (%d)", ErrCorrupt, h.Size, MaxContentSize)
	}
	if h.SumKind > SumBody {
		return Header{}, fmt.Errorf("%w: unknown checksum kind %d (written by a newer pgwarm-wal?)", ErrCorrupt, b[11])
	}
	if h.Compression > Zstd {
		return Header{}, fmt.Errorf("%w: unknown compression code %d", ErrCorrupt, b[8])
	}
	switch {
	case h.Filter > PageHeaders:
		return Header{}, fmt.Errorf("%w: unknown filter code %d (written by a newer pgwarm-wal?)", ErrCorrupt, b[9])
	case h.Filter == NoFilter && h.PageShift != 0:
		return Header{}, fmt.Errorf("%w: page size without a filter", ErrCorrupt)
	case h.Filter == PageHeaders && (h.PageShift < 6 || h.PageShift > 20):
		return Header{}, fmt.Errorf("%w: implausible filter page size 2^%d", ErrCorrupt, h.PageShift)
	}
	return h, nil
}

// Encode builds a complete archive file from content. info.BlockSz, when
// set (WAL), enables the PageHeaders filter for compressed files.
func Encode(content []byte, c Compression, info PageInfo) ([]byte, Header, error) {
	if c > Zstd {
		return nil, Header{}, fmt.Errorf("unknown compression %d", c)
	}
	h := Header{Compression: c, SumKind: SumBody, Size: uint64(len(content)), SysID: info.SysID, SegSize: info.SegSize}
	stored := content[:storedLen(content)]
	h.Stored = uint64(len(stored))
	if c != None && info.BlockSz >= 1<<6 && info.BlockSz <= 1<<20 && info.BlockSz&(info.BlockSz-1) == 0 && len(stored) > pageHeaderLen {
		h.Filter, h.PageShift = PageHeaders, uint8(bits.TrailingZeros32(info.BlockSz))
	}
	out := make([]byte, HeaderSize, HeaderSize+len(stored)/8+4096)
	buf := bytes.NewBuffer(out)
	crcs := make([]uint32, crcChunks(len(stored)))
	if err := compress(buf, stored, h, crcs); err != nil {
		return nil, Header{}, err
	}
	h.ContentCRC = combineCRCs(crcs)
	file := buf.Bytes()
	h.SHA256 = sha256.Sum256(file[HeaderSize:])
	copy(file, h.Marshal())
	return file, h, nil
}

// compress writes the body of an archive file for stored to w.
// It also fills crcs, the crc32c of every zstdFrameSize chunk of stored:
// zstd's frame workers each take their chunk's, the other codecs here.
func compress(w io.Writer, stored []byte, h Header, crcs []uint32) error {
	pieces := [][]byte{stored}
	if h.Filter == PageHeaders {
		pieces = pageHeadersFirst(stored, h.PageShift)
	}
	if h.Compression == Zstd && len(crcs) > 1 {
		return zstdFrames(w, pieces, stored, crcs)
	}
	fillChunkCRCs(crcs, stored)
	switch h.Compression {
	case None:
		return writePieces(w, pieces)
	case Gzip:
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return err
		}
		if err := writePieces(zw, pieces); err != nil {
			return err
		}
		return zw.Close()
	case Zstd:
		_, err := zstdFrame(w, nil, pieces)
		return err
	}
	return fmt.Errorf("unknown compression %d", h.Compression)
}

// The content check of SumBody files is the crc32c of the little-endian
// crc32c of every zstdFrameSize chunk of the stored content, in order:
// chunked so that ship's frame workers compute it beside their frames
// instead of a third thread or a serial pass taking it (measured: 2–3 ms
// of a 25 ms ship either way).
func crcChunks(n int) int { return (n + zstdFrameSize - 1) / zstdFrameSize }

func chunkCRC(stored []byte, i int) uint32 {
	return crc32.Checksum(stored[i*zstdFrameSize:min((i+1)*zstdFrameSize, len(stored))], castagnoli)
}

func combineCRCs(crcs []uint32) uint32 {
	b := make([]byte, 4*len(crcs))
	for i, c := range crcs {
		binary.LittleEndian.PutUint32(b[4*i:], c)
	}
	return crc32.Checksum(b, castagnoli)
}

func fillChunkCRCs(crcs []uint32, stored []byte) {
	for i := range crcs {
		crcs[i] = chunkCRC(stored, i)
	}
}

// zstdFrameSize is how much content goes into one zstd frame. Frames are
// independent, so two cores compress them at once, and a decoder reads
// concatenated frames as one stream (restore is unchanged). Four frames
// per 16 MiB segment rather than two: how long a part takes depends on its
// content (COPY data compresses several times faster than full-page
// images), and with four the two workers even out. The split depends only
// on the content, never on the machine.
const zstdFrameSize = 4 << 20

// zstdWorkers is how many frames are compressed at once.
const zstdWorkers = 2

// zstdFrames compresses the concatenation of pieces (the filtered stored,
// as long as stored) as frames of zstdFrameSize, written in order; the
// worker that compresses frame i also fills crcs[i] from stored.
func zstdFrames(w io.Writer, pieces [][]byte, stored []byte, crcs []uint32) error {
	n := len(stored)
	var frames [][][]byte
	for rest := pieces; n > 0; n -= zstdFrameSize {
		var part [][]byte
		part, rest = splitPieces(rest, min(n, zstdFrameSize))
		frames = append(frames, part)
	}
	out := make([]bytes.Buffer, len(frames))
	errs := make([]error, len(frames))
	next := make(chan int, len(frames))
	for i := range frames {
		next <- i
	}
	close(next)
	encs := make([]*zstd.Encoder, min(zstdWorkers, len(frames)))
	for i := range encs {
		var err error
		if encs[i], err = warmEncoder(); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	panics := make(chan any, zstdWorkers)
	for _, zw := range encs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					panics <- r
				}
			}()
			for i := range next {
				crcs[i] = chunkCRC(stored, i)
				out[i].Grow(zstdFrameSize / 8)
				zw, errs[i] = zstdFrame(&out[i], zw, frames[i])
			}
		}()
	}
	wg.Wait()
	select {
	case r := <-panics:
		// A bug in a worker: re-raised here, where the command's recover
		// turns it into the internal-error exit status instead of the
		// runtime's exit 2 (which would read as "bad input").
		panic(r)
	default:
	}
	total := 0
	for i := range out {
		if errs[i] != nil {
			return errs[i]
		}
		total += out[i].Len()
	}
	// One allocation for the whole body instead of the buffer doubling
	// its way there: each doubling is garbage of up to a body's size
	// that a short-lived process with the collector off keeps resident.
	if g, ok := w.(interface{ Grow(int) }); ok {
		g.Grow(total)
	}
	for i := range out {
		if _, err := w.Write(out[i].Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// warmEncoder returns an encoder whose match tables have been written
// once, on this goroutine, before any worker runs. A new encoder's tables
// (about 1.3 MiB) are memory never touched: the first lookup into a page
// maps the kernel's shared zero page and the first store then copies it,
// and while another thread of this process runs on the other core each
// such copy costs a TLB-shootdown IPI (a VM exit on a VM). Measured on
// busy WAL: about a fifth of ship's CPU. Compressing a little noise here,
// while only one thread runs, takes the same page faults without the
// IPIs. Later frames cannot match the noise: Reset moves the window past
// it, so the output is what a new encoder writes (TestWarmEncoderOutput).
func warmEncoder() (*zstd.Encoder, error) {
	noise := make([]byte, 64<<10)
	x := uint64(0x9E3779B97F4A7C15)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = byte(x)
	}
	return zstdFrame(io.Discard, nil, [][]byte{noise})
}

// zstdFrame compresses pieces as one zstd frame with zw, or a new encoder
// when zw is nil (reusing one saves allocating and clearing its tables),
// and returns the encoder. SpeedDefault: with the PageHeaders filter busy
// pgbench WAL compresses a little better than libzstd level 3
// (pgBackRest's), at about half the CPU of SpeedBetterCompression. One
// goroutine per encoder: the parallelism is the split into frames.
func zstdFrame(w io.Writer, zw *zstd.Encoder, pieces [][]byte) (*zstd.Encoder, error) {
	if zw == nil {
		var err error
		zw, err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, err
		}
	} else {
		zw.Reset(w)
	}
	if err := writePieces(zw, pieces); err != nil {
		return zw, err
	}
	return zw, zw.Close()
}

func writePieces(w io.Writer, pieces [][]byte) error {
	for _, p := range pieces {
		if len(p) == 0 {
			continue
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// splitPieces cuts the concatenation of pieces at byte at.
func splitPieces(pieces [][]byte, at int) (first, second [][]byte) {
	for i, p := range pieces {
		if at <= len(p) {
			first = append(append(first, pieces[:i]...), p[:at])
			second = append([][]byte{p[at:]}, pieces[i+1:]...)
			return first, second
		}
		at -= len(p)
	}
	return pieces, nil
}

// ZeroTail is how many whole 4 KiB blocks of zeros end content, in bytes:
// most of a segment PostgreSQL switched early.
func ZeroTail(content []byte) int {
	var zero [4096]byte
	n := len(content)
	for n >= len(zero) && bytes.Equal(content[n-len(zero):n], zero[:]) {
		n -= len(zero)
	}
	return len(content) - n
}

// storedLen is len(content) without its trailing zeros, compared a page
// at a time (an idle segment is 16 MiB of them).
func storedLen(content []byte) int {
	var zero [4096]byte
	n := len(content)
	for n >= len(zero) && bytes.Equal(content[n-len(zero):n], zero[:]) {
		n -= len(zero)
	}
	for n > 0 && content[n-1] == 0 {
		n--
	}
	return n
}

// pageLayout returns how PageHeaders splits n bytes into pages of
// 1<<shift: the number of pages and the length of the header part.
func pageLayout(n int, shift uint8) (pages, hdrLen int) {
	page := 1 << shift
	pages = (n + page - 1) / page
	if pages == 0 {
		return 0, 0
	}
	return pages, (pages-1)*pageHeaderLen + min(pageHeaderLen, n-(pages-1)*page)
}

// xorPageAddr XORs bytes 8..16 of a moved page header (xlp_pageaddr) with
// the address that page has when the pages follow the first one, so the
// headers of a normal segment become constant bytes.
func xorPageAddr(hdr []byte, base uint64, off int) {
	if len(hdr) >= 16 {
		binary.LittleEndian.PutUint64(hdr[8:], binary.LittleEndian.Uint64(hdr[8:])^(base+uint64(off)))
	}
}

// pageHeadersFirst returns the PageHeaders permutation of src as pieces
// to be concatenated: the moved headers, then every page's rest (slices of
// src, not copies).
func pageHeadersFirst(src []byte, shift uint8) [][]byte {
	page := 1 << shift
	pages, hdrLen := pageLayout(len(src), shift)
	hdrs := make([]byte, 0, hdrLen)
	pieces := make([][]byte, 1, pages+1)
	var base uint64
	for i := 0; i < pages; i++ {
		off := i * page
		start := len(hdrs)
		hdrs = append(hdrs, src[off:min(off+pageHeaderLen, len(src))]...)
		if body := src[min(off+pageHeaderLen, len(src)):min(off+page, len(src))]; len(body) > 0 {
			pieces = append(pieces, body)
		}
		if i == 0 {
			if len(hdrs) >= 16 {
				base = binary.LittleEndian.Uint64(hdrs[8:])
			}
			continue
		}
		xorPageAddr(hdrs[start:], base, off)
	}
	pieces[0] = hdrs
	return pieces
}

// undoPageHeadersFirst writes into dst (len(dst) == len(src)) the content
// whose PageHeaders permutation is src.
func undoPageHeadersFirst(dst, src []byte, shift uint8) {
	page := 1 << shift
	pages, hdrLen := pageLayout(len(src), shift)
	hp, bp := 0, hdrLen
	var base uint64
	for i := 0; i < pages; i++ {
		off := i * page
		hl := min(pageHeaderLen, len(src)-off)
		copy(dst[off:off+hl], src[hp:hp+hl])
		hp += hl
		if i == 0 {
			if hl >= 16 {
				base = binary.LittleEndian.Uint64(dst[8:])
			}
		} else {
			xorPageAddr(dst[off:off+hl], base, off)
		}
		bl := min(off+page, len(src)) - (off + hl)
		copy(dst[off+hl:off+hl+bl], src[bp:bp+bl])
		bp += bl
	}
}

// Decode checks a complete archive file and returns its content. Any
// damage (header, body, length, checksum) wraps ErrCorrupt. It decodes as
// a stream, with no limit but the header's (readers that know what the
// file is meant to be use DecodeLimited).
func Decode(file []byte) ([]byte, Header, error) {
	return DecodeLimited(file, Limit{})
}

// CheckBody checks a file's body against its header's sha256 without
// decompressing it, when the header covers the body (SumBody): what the
// archive does before storing a file it was sent. ok is false when the
// header covers the content instead and only Decode can tell.
func CheckBody(file []byte) (ok bool, err error) {
	h, err := UnmarshalHeader(file)
	if err != nil || h.SumKind != SumBody {
		return false, err
	}
	if sum := sha256.Sum256(file[HeaderSize:]); sum != h.SHA256 {
		return false, fmt.Errorf("%w: stored body sha256 %x, header says %s", ErrCorrupt, sum, h.Sum())
	}
	return true, nil
}
