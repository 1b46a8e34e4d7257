package walfile

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Limit says what one archived file may decode to. Decoding is a stream
// that enforces it as it goes: a body that inflates beyond the header's
// stored length is refused after at most one byte more than that length
// (which Limit.Size bounds) has been decoded, never inflated fully, and a
// WAL page with a bad header is refused when it is decoded, before the
// pages after it. The zero Limit is MaxContentSize and no page checks.
type Limit struct {
	// Size is the largest content size accepted (0: MaxContentSize). The
	// reader sets it from what the file's name says it is: the archive's
	// wal_segment_size for a segment, a small constant for a text file.
	Size uint64
	// WAL, when set, checks every page header of a segment.
	WAL *WALPages
}

// WALPages is what the pages of one segment must say, PostgreSQL's own
// rules for a page header (xlogreader's XLogReaderValidatePageHeader):
// the first page carries the long header of the cluster the file's
// header names and the segment's start address; every later page that
// holds stored content (before the trailing zeros) carries the first
// page's magic, no unknown xlp_info bits, a timeline that is not zero,
// never lower than the page before's and not above the file name's, and
// xlp_pageaddr equal to the segment's start plus the page's offset.
type WALPages struct {
	Start uint64 // LSN of the segment's first byte, from its name
	TLI   uint32 // the name's timeline
	// Prefix: only pages up to the first invalid one are checked, where
	// PostgreSQL's reader sees the end of WAL. For .partial files: the
	// last segment of a timeline, cut at the switch, whose tail can be
	// stale bytes of a recycled segment file.
	Prefix bool
}

// xlpAllFlags are the xlp_info bits PostgreSQL defines (9.6: 0x7; 0x8,
// XLP_FIRST_IS_OVERWRITE_CONTRECORD, since 15 and in back-branch
// releases).
const xlpAllFlags = 0x000F

// shortPageHeader is how much of a page header is checked past the first
// page: magic(2) info(2) tli(4) pageaddr(8) rem_len(4).
const shortPageHeader = 20

// longPageHeader is the first page's header, which ParseLongHeader reads.
const longPageHeader = 40

// zstdMaxWindow is the largest zstd window accepted: what the encoder of
// every pgwarm-wal version writes (klauspost's default, 8 MiB; a
// single-segment frame declares its content size, at most that). A frame
// asking for more is refused before the decoder allocates it.
const zstdMaxWindow = 8 << 20

// DecodeLimited checks a complete archive file against lim as it decodes
// it, and returns its content (h.Size bytes, the trailing zeros
// restored). Any damage wraps ErrCorrupt.
func DecodeLimited(file []byte, lim Limit) ([]byte, Header, error) {
	out, _, h, err := decodeStream(file, lim, true, false)
	return out, h, err
}

// CheckLimited is DecodeLimited without keeping the content: what the
// archive does with a pushed file and verify with every file. Memory is
// the decoder's and one page, whatever the file says.
func CheckLimited(file []byte, lim Limit) (Header, error) {
	_, _, h, err := decodeStream(file, lim, false, false)
	return h, err
}

// SumLimited is CheckLimited that also returns the sha256 of the content
// (the trailing zeros included): how the archive compares two files of
// the same name without holding either content.
func SumLimited(file []byte, lim Limit) ([32]byte, Header, error) {
	_, sum, h, err := decodeStream(file, lim, false, true)
	return sum, h, err
}

func decodeStream(file []byte, lim Limit, keep, wantSum bool) (out []byte, sum [32]byte, h Header, err error) {
	h, err = UnmarshalHeader(file)
	if err != nil {
		return nil, sum, Header{}, err
	}
	out, sum, err = decodeBody(file, h, lim, keep, wantSum)
	if err != nil {
		return nil, [32]byte{}, h, err
	}
	return out, sum, h, nil
}

func decodeBody(file []byte, h Header, lim Limit, keep, wantSum bool) ([]byte, [32]byte, error) {
	var sum [32]byte
	limit := lim.Size
	if limit == 0 || limit > MaxContentSize {
		limit = MaxContentSize
	}
	if h.Size > limit {
		return nil, sum, fmt.Errorf("%w: content size %d is more than this file can hold (%d)", ErrCorrupt, h.Size, limit)
	}
	// The moved headers are read whole before the first page: for WAL
	// their page must be one PostgreSQL can have (1 to 64 KiB; the long
	// header must then agree), so they are at most 2.3% of the limit.
	if lim.WAL != nil && h.Filter == PageHeaders && (h.PageShift < 10 || h.PageShift > 16) {
		return nil, sum, fmt.Errorf("%w: filter pages of %d bytes cannot be WAL pages", ErrCorrupt, 1<<h.PageShift)
	}
	body := file[HeaderSize:]
	if h.SumKind == SumBody {
		if bs := sha256.Sum256(body); bs != h.SHA256 {
			return nil, sum, fmt.Errorf("%w: stored body sha256 %x, header says %s", ErrCorrupt, bs, h.Sum())
		}
	}
	src, closeSrc, err := bodyReader(h.Compression, body)
	if err != nil {
		return nil, sum, err
	}
	defer closeSrc()
	var out []byte
	if keep {
		out = make([]byte, h.Size) // zeroed: restores the trailing zeros
	}
	s := &sink{h: h, out: out}
	if h.SumKind == SumContent || wantSum {
		s.sum = sha256.New()
	}
	if lim.WAL != nil {
		s.pages = &pageChecker{w: *lim.WAL, h: h}
	}
	// One byte more than the stored length is all a body may yield: that
	// byte tells "too long" apart from "exact".
	r := io.LimitReader(src, int64(h.Stored)+1)
	if h.Filter == PageHeaders {
		err = unfilterStream(r, h, s)
	} else {
		err = copyStream(r, h, s)
	}
	if err != nil {
		return nil, sum, err
	}
	// The end of the stream is where zstd checks its last frame's XXH64.
	if n, err := io.ReadFull(r, make([]byte, 1)); n != 0 {
		return nil, sum, fmt.Errorf("%w: %s body decodes to more than the %d bytes its header says", ErrCorrupt, h.Compression, h.Stored)
	} else if err != io.EOF {
		return nil, sum, err
	}
	if err := s.finish(); err != nil {
		return nil, sum, err
	}
	return out, s.contentSum, nil
}

// bodyReader returns the decompressed stream of body.
func bodyReader(c Compression, body []byte) (io.Reader, func(), error) {
	switch c {
	case None:
		return bytes.NewReader(body), func() {}, nil
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip body: %v", ErrCorrupt, err)
		}
		return &codecErrs{r: zr, what: "gzip"}, func() {}, nil
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, nil, err
		}
		return &codecErrs{r: zr, what: "zstd"}, zr.Close, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown compression code %d", ErrCorrupt, c)
}

// codecErrs marks a decompressor's errors as corruption.
type codecErrs struct {
	r    io.Reader
	what string
}

func (c *codecErrs) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %s body: %v", ErrCorrupt, c.what, err)
	}
	return n, err
}

// readFull is io.ReadFull whose short read means the body is too short.
func readFull(r io.Reader, p []byte, h Header, at uint64) error {
	n, err := io.ReadFull(r, p)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: stored content is %d bytes, header says %d", ErrCorrupt, at+uint64(n), h.Stored)
	}
	return err
}

// copyStream passes the stored content of an unfiltered body to s.
func copyStream(r io.Reader, h Header, s *sink) error {
	var buf []byte
	if s.out == nil {
		buf = make([]byte, min(h.Stored, 256<<10))
	}
	for off := uint64(0); off < h.Stored; {
		n := min(h.Stored-off, 256<<10)
		var p []byte
		if s.out != nil {
			p = s.out[off : off+n] // decoded in place
		} else {
			p = buf[:n]
		}
		if err := readFull(r, p, h, off); err != nil {
			return err
		}
		if err := s.write(p, s.out != nil); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// unfilterStream undoes PageHeaders a page at a time: the moved headers
// come first (2.3% of a segment with 8 KiB pages), then every page's rest
// in order, so each page is whole, and checked, as soon as its rest is
// decoded.
func unfilterStream(r io.Reader, h Header, s *sink) error {
	pages, hdrLen := pageLayout(int(h.Stored), h.PageShift)
	hdrs := make([]byte, hdrLen)
	if err := readFull(r, hdrs, h, 0); err != nil {
		return err
	}
	size := 1 << h.PageShift
	page := make([]byte, size)
	var base uint64
	hp, got := 0, hdrLen
	for i := 0; i < pages; i++ {
		off := i * size
		n := min(size, int(h.Stored)-off)
		hl := min(pageHeaderLen, n)
		copy(page, hdrs[hp:hp+hl])
		hp += hl
		if i == 0 {
			if hl >= 16 {
				base = binary.LittleEndian.Uint64(page[8:])
			}
		} else {
			xorPageAddr(page[:hl], base, off)
		}
		if err := readFull(r, page[hl:n], h, uint64(got)); err != nil {
			return err
		}
		got += n - hl
		if err := s.write(page[:n], false); err != nil {
			return err
		}
	}
	return nil
}

// sink takes the stored content in order and checks it: the content crc
// (SumBody) or sha256 (SumContent), the WAL pages, and keeps it in out
// when out is not nil.
type sink struct {
	h     Header
	out   []byte
	off   uint64
	crcs  []byte    // little-endian crc32c of every zstdFrameSize chunk
	crc   uint32    // of the chunk in progress
	sum   hash.Hash // of the content, when it is wanted
	pages *pageChecker

	contentSum [32]byte // set by finish when sum is not nil
}

// write takes the next stored bytes; inPlace says p already is out[off:].
func (s *sink) write(p []byte, inPlace bool) error {
	if s.pages != nil {
		if err := s.pages.write(p, s.off); err != nil {
			return err
		}
	}
	if s.out != nil && !inPlace {
		copy(s.out[s.off:], p)
	}
	if s.sum != nil {
		s.sum.Write(p)
	}
	for len(p) > 0 {
		room := zstdFrameSize - int(s.off%zstdFrameSize)
		k := min(room, len(p))
		s.crc = crc32.Update(s.crc, castagnoli, p[:k])
		s.off += uint64(k)
		p = p[k:]
		if s.off%zstdFrameSize == 0 {
			s.crcs = binary.LittleEndian.AppendUint32(s.crcs, s.crc)
			s.crc = 0
		}
	}
	return nil
}

func (s *sink) finish() error {
	if s.off != s.h.Stored {
		return fmt.Errorf("%w: stored content is %d bytes, header says %d", ErrCorrupt, s.off, s.h.Stored)
	}
	if s.pages != nil {
		if err := s.pages.finish(s.off); err != nil {
			return err
		}
	}
	if s.sum != nil {
		var zero [64 << 10]byte
		for rest := s.h.Size - s.h.Stored; rest > 0; {
			k := min(rest, uint64(len(zero)))
			s.sum.Write(zero[:k])
			rest -= k
		}
		copy(s.contentSum[:], s.sum.Sum(nil))
	}
	switch s.h.SumKind {
	case SumContent:
		if s.contentSum != s.h.SHA256 {
			return fmt.Errorf("%w: content sha256 %x, header says %s", ErrCorrupt, s.contentSum, s.h.Sum())
		}
	case SumBody:
		if s.off%zstdFrameSize != 0 {
			s.crcs = binary.LittleEndian.AppendUint32(s.crcs, s.crc)
		}
		if crc := crc32.Checksum(s.crcs, castagnoli); crc != s.h.ContentCRC {
			return fmt.Errorf("%w: content crc32c %08x, header says %08x (the body is intact: its decoding went wrong)", ErrCorrupt, crc, s.h.ContentCRC)
		}
	}
	return nil
}

// pageChecker checks WAL page headers as the stored content streams by.
// Bytes past the stored length are zeros: a page that starts before it
// is checked with its header padded by zeros, a page that starts after it
// is one of the zero pages that end an idle segment.
type pageChecker struct {
	w        WALPages
	h        Header
	next     uint64 // offset of the page whose header is being collected
	hdr      [longPageHeader]byte
	have     int
	pageSize uint64 // from the long header; 0 before it is read
	magic    uint16
	tli      uint32
	done     bool // Prefix: the rest is past the end of WAL
}

func (c *pageChecker) need() int {
	if c.next == 0 {
		return longPageHeader
	}
	return shortPageHeader
}

// write takes stored bytes p at offset off; calls are contiguous.
func (c *pageChecker) write(p []byte, off uint64) error {
	for !c.done {
		i := c.next + uint64(c.have) - off // index in p of the next header byte
		if i >= uint64(len(p)) {
			return nil
		}
		c.have += copy(c.hdr[c.have:c.need()], p[i:])
		if c.have < c.need() {
			return nil
		}
		if err := c.check(); err != nil {
			return err
		}
	}
	return nil
}

// finish checks the page the stored content ends in, when its header was
// cut by the trailing zeros, and the first page of an all-zero segment.
func (c *pageChecker) finish(stored uint64) error {
	if c.done || (c.next != 0 && c.next >= stored) {
		return nil
	}
	clear(c.hdr[c.have:])
	c.have = c.need()
	return c.check()
}

// check checks the collected header of the page at c.next and moves on to
// the next page.
func (c *pageChecker) check() error {
	b := c.hdr[:c.need()]
	at := c.next
	c.have = 0
	if at == 0 {
		p, err := ParseLongHeader(b)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		switch {
		case p.SysID != c.h.SysID || p.SegSize != c.h.SegSize:
			return fmt.Errorf("%w: header says cluster %d / segment size %d, WAL says %d / %d", ErrCorrupt, c.h.SysID, c.h.SegSize, p.SysID, p.SegSize)
		case p.PageAddr != c.w.Start:
			return fmt.Errorf("%w: first page is at LSN %s but the file's name puts it at %s", ErrCorrupt, lsn(p.PageAddr), lsn(c.w.Start))
		case p.TLI > c.w.TLI:
			return fmt.Errorf("%w: first page is on timeline %d, later than the file's name (%d)", ErrCorrupt, p.TLI, c.w.TLI)
		case c.h.Filter == PageHeaders && p.BlockSz != 1<<c.h.PageShift:
			return fmt.Errorf("%w: the file's filter pages are %d bytes but its WAL pages are %d", ErrCorrupt, 1<<c.h.PageShift, p.BlockSz)
		}
		c.magic, c.tli, c.pageSize = p.Magic, p.TLI, uint64(p.BlockSz)
		c.next = c.pageSize
		return nil
	}
	if err := c.checkPage(b, at); err != nil {
		if c.w.Prefix {
			c.done = true
			return nil
		}
		return fmt.Errorf("%w: the WAL page at offset %d (LSN %s) %v; PostgreSQL would not read past it", ErrCorrupt, at, lsn(c.w.Start+at), err)
	}
	c.next += c.pageSize
	return nil
}

func (c *pageChecker) checkPage(b []byte, at uint64) error {
	magic := binary.LittleEndian.Uint16(b[0:])
	info := binary.LittleEndian.Uint16(b[2:])
	tli := binary.LittleEndian.Uint32(b[4:])
	addr := binary.LittleEndian.Uint64(b[8:])
	switch {
	case magic != c.magic:
		return fmt.Errorf("has magic 0x%04X, the first page 0x%04X", magic, c.magic)
	case info&^xlpAllFlags != 0:
		return fmt.Errorf("has unknown xlp_info bits 0x%04X", info)
	case tli == 0 || tli < c.tli || tli > c.w.TLI:
		return fmt.Errorf("is on timeline %d (the page before: %d, the file's name: %d)", tli, c.tli, c.w.TLI)
	case addr != c.w.Start+at:
		return fmt.Errorf("says it is at LSN %s", lsn(addr))
	}
	c.tli = tli
	return nil
}

func lsn(p uint64) string { return fmt.Sprintf("%X/%08X", p>>32, uint32(p)) }

// CheckPages applies the page checks of w to stored, the content of a
// file with header h before its trailing zeros: what ship checks before
// it sends a segment, so that it never sends one the archive refuses.
func CheckPages(stored []byte, h Header, w WALPages) error {
	c := &pageChecker{w: w, h: h}
	if err := c.write(stored, 0); err != nil {
		return err
	}
	return c.finish(uint64(len(stored)))
}
