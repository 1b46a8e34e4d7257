// Package waltest builds WAL-shaped test content.
package waltest

import "encoding/binary"

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
