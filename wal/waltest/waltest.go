// Package waltest builds WAL-shaped test content.
package waltest

import (
	"encoding/binary"

	"github.com/pgwarm/pgwarm/wal/segname"
)

// StampPageHeaders gives every 8 KiB page of seg after the first the
// short page header PostgreSQL writes (magic and timeline of the first
// page, xlp_pageaddr from its start), over whatever the caller filled it
// with: readers check every page of a segment.
func StampPageHeaders(seg []byte) {
	start := binary.LittleEndian.Uint64(seg[8:])
	for off := 8192; off < len(seg); off += 8192 {
		binary.LittleEndian.PutUint16(seg[off:], binary.LittleEndian.Uint16(seg))
		binary.LittleEndian.PutUint16(seg[off+2:], 0)
		binary.LittleEndian.PutUint32(seg[off+4:], binary.LittleEndian.Uint32(seg[4:]))
		binary.LittleEndian.PutUint64(seg[off+8:], start+uint64(off))
	}
}

// IdleSegment is a segment of segSize bytes of cluster sysid whose first
// page carries the long header that names it (n) and whose rest is zeros,
// as a segment PostgreSQL switched right after it began.
func IdleSegment(n segname.Name, segSize uint32, sysid uint64) []byte {
	b := make([]byte, segSize)
	binary.LittleEndian.PutUint16(b[0:], 0xD110)
	binary.LittleEndian.PutUint16(b[2:], 0x0002) // XLP_LONG_HEADER
	binary.LittleEndian.PutUint32(b[4:], n.TLI)
	binary.LittleEndian.PutUint64(b[8:], n.StartLSN(segSize))
	binary.LittleEndian.PutUint64(b[24:], sysid)
	binary.LittleEndian.PutUint32(b[32:], segSize)
	binary.LittleEndian.PutUint32(b[36:], 8192)
	return b
}
