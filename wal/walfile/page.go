package walfile

import (
	"encoding/binary"
	"fmt"
)

// PageInfo is what the long header on the first page of a WAL segment says
// about the cluster that wrote it.
type PageInfo struct {
	Magic    uint16
	TLI      uint32
	PageAddr uint64 // LSN of the page; for page 0 the segment's start LSN
	SysID    uint64
	SegSize  uint32
	BlockSz  uint32
}

const xlpLongHeader = 0x0002

// ParseLongHeader reads XLogLongPageHeaderData from the first bytes of a
// segment: xlp_magic(2) xlp_info(2) xlp_tli(4) xlp_pageaddr(8)
// xlp_rem_len(4), padding to 24, xlp_sysid(8) xlp_seg_size(4)
// xlp_xlog_blcksz(4). Little-endian, as on every platform PostgreSQL ships
// WAL between (WAL is not portable across byte orders anyway).
//
// The magic changes with every major version (0xD062 in 8.3, 0xD110 in
// 15); any value in 0xD000..0xD3FF is accepted so new versions need no
// code change while random data is still rejected.
func ParseLongHeader(b []byte) (PageInfo, error) {
	if len(b) < 40 {
		return PageInfo{}, fmt.Errorf("file is %d bytes, too short for a WAL page header", len(b))
	}
	p := PageInfo{
		Magic:    binary.LittleEndian.Uint16(b[0:]),
		TLI:      binary.LittleEndian.Uint32(b[4:]),
		PageAddr: binary.LittleEndian.Uint64(b[8:]),
		SysID:    binary.LittleEndian.Uint64(b[24:]),
		SegSize:  binary.LittleEndian.Uint32(b[32:]),
		BlockSz:  binary.LittleEndian.Uint32(b[36:]),
	}
	info := binary.LittleEndian.Uint16(b[2:])
	switch {
	case p.Magic < 0xD000 || p.Magic > 0xD3FF:
		return PageInfo{}, fmt.Errorf("first page magic 0x%04X is not a PostgreSQL WAL magic", p.Magic)
	case info&xlpLongHeader == 0:
		return PageInfo{}, fmt.Errorf("first page has no long header (xlp_info 0x%04X): not the start of a segment", info)
	case p.SysID == 0:
		return PageInfo{}, fmt.Errorf("WAL page header has system identifier 0")
	case p.SegSize < 1<<20 || p.SegSize > 1<<30 || p.SegSize&(p.SegSize-1) != 0:
		return PageInfo{}, fmt.Errorf("WAL page header has implausible segment size %d", p.SegSize)
	case p.BlockSz < 1024 || p.BlockSz > 65536 || p.BlockSz&(p.BlockSz-1) != 0:
		return PageInfo{}, fmt.Errorf("WAL page header has implausible block size %d", p.BlockSz)
	case p.TLI == 0:
		return PageInfo{}, fmt.Errorf("WAL page header has timeline 0")
	}
	return p, nil
}
