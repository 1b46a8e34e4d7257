package ops

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL write-ahead log position (pg_lsn), a byte offset in
// the WAL stream. The zero LSN means "unknown".
type LSN uint64

// ParseLSN reads PostgreSQL's "X/Y" notation (two hex numbers of up to 32
// bits each, as pg_lsn prints them).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("bad LSN %q: want X/Y in hex", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("bad LSN %q: %v", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("bad LSN %q: %v", s, err)
	}
	return LSN(h<<32 | l), nil
}

// String prints l the way PostgreSQL does ("0/3000148").
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// MarshalText makes LSNs readable in JSON.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText accepts "X/Y" and "" (unknown).
func (l *LSN) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*l = 0
		return nil
	}
	v, err := ParseLSN(string(b))
	*l = v
	return err
}

// Sub is how many bytes l is ahead of m; 0 when it is not ahead (a standby
// may briefly report a replay position past the primary's last flush).
func (l LSN) Sub(m LSN) uint64 {
	if l <= m {
		return 0
	}
	return uint64(l - m)
}

// SegmentEnd is the LSN at which the WAL segment named name (24 hex digits:
// timeline, log, segment) ends, for segments of segSize bytes. ok is false
// for anything else (.history, .backup, .partial files).
func SegmentEnd(name string, segSize uint64) (LSN, bool) {
	if len(name) != 24 || segSize == 0 || (1<<32)%segSize != 0 {
		return 0, false
	}
	log, err1 := strconv.ParseUint(name[8:16], 16, 32)
	seg, err2 := strconv.ParseUint(name[16:24], 16, 32)
	if _, err := strconv.ParseUint(name[:8], 16, 32); err != nil || err1 != nil || err2 != nil {
		return 0, false
	}
	perLog := (1 << 32) / segSize
	if seg >= perLog {
		return 0, false
	}
	return LSN((log*perLog + seg + 1) * segSize), true
}

// SegmentTimeline is the timeline of a WAL segment or history file name.
func SegmentTimeline(name string) (uint32, bool) {
	if len(name) < 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(name[:8], 16, 32)
	return uint32(v), err == nil
}
