// Package segname parses and orders PostgreSQL WAL archive file names and
// holds the pure range logic used by cleanup and verify. Nothing here
// touches the filesystem.
package segname

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Kind is the type of a file PostgreSQL hands to archive_command.
type Kind int

const (
	Segment Kind = iota + 1 // 000000010000000000000003
	Partial                 // 000000010000000000000003.partial (end of an old timeline)
	Backup                  // 000000010000000000000003.00000028.backup (backup history)
	History                 // 00000002.history (timeline history)
)

func (k Kind) String() string {
	switch k {
	case Segment:
		return "segment"
	case Partial:
		return "partial"
	case Backup:
		return "backup"
	case History:
		return "history"
	}
	return "unknown"
}

// Name is a parsed WAL archive file name. For History only TLI is set.
type Name struct {
	Kind   Kind
	TLI    uint32
	Log    uint32 // high 32 bits of the segment position ("xlogid")
	Seg    uint32 // segment within Log
	Offset uint32 // Backup only: offset of the backup start inside the segment
}

// ErrInvalid is wrapped by every Parse failure.
var ErrInvalid = errors.New("not a WAL file name")

// Parse accepts exactly the names PostgreSQL produces (upper-case hex, fixed
// widths, timeline >= 1), so a parsed name can never contain a path
// separator or "..": Parse doubles as the path-traversal check for serve.
func Parse(s string) (Name, error) {
	bad := func(why string) (Name, error) {
		return Name{}, fmt.Errorf("%q is %w: %s", s, ErrInvalid, why)
	}
	switch {
	case len(s) == 24:
		n, ok := parseSeg(s)
		if !ok {
			return bad("expected 24 upper-case hex digits")
		}
		return n, nil
	case len(s) == 24+len(".partial") && s[24:] == ".partial":
		n, ok := parseSeg(s[:24])
		if !ok {
			return bad("expected 24 upper-case hex digits before .partial")
		}
		n.Kind = Partial
		return n, nil
	case len(s) == 24+1+8+len(".backup") && s[24] == '.' && s[33:] == ".backup":
		n, ok := parseSeg(s[:24])
		off, ok2 := hex32(s[25:33])
		if !ok || !ok2 {
			return bad("expected SEGMENT.OFFSET.backup in upper-case hex")
		}
		n.Kind, n.Offset = Backup, off
		return n, nil
	case len(s) == 8+len(".history") && s[8:] == ".history":
		tli, ok := hex32(s[:8])
		if !ok || tli == 0 {
			return bad("expected 8 upper-case hex digits (timeline >= 1) before .history")
		}
		return Name{Kind: History, TLI: tli}, nil
	}
	return bad("unknown form (want a segment, .partial, .backup or .history name)")
}

func parseSeg(s string) (Name, bool) {
	tli, ok1 := hex32(s[0:8])
	log, ok2 := hex32(s[8:16])
	seg, ok3 := hex32(s[16:24])
	if !ok1 || !ok2 || !ok3 || tli == 0 {
		return Name{}, false
	}
	return Name{Kind: Segment, TLI: tli, Log: log, Seg: seg}, true
}

// hex32 parses exactly 8 upper-case hex digits (PostgreSQL never writes
// lower case, and accepting it would allow two spellings of one file).
func hex32(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err == nil
}

// String is the canonical file name; Parse(n.String()) == n.
func (n Name) String() string {
	seg := fmt.Sprintf("%08X%08X%08X", n.TLI, n.Log, n.Seg)
	switch n.Kind {
	case Segment:
		return seg
	case Partial:
		return seg + ".partial"
	case Backup:
		return fmt.Sprintf("%s.%08X.backup", seg, n.Offset)
	case History:
		return fmt.Sprintf("%08X.history", n.TLI)
	}
	return "invalid"
}

// HasWALContent reports whether the file starts with WAL pages (and so
// carries the cluster's system identifier).
func (n Name) HasWALContent() bool { return n.Kind == Segment || n.Kind == Partial }

// SegNo is the absolute segment number for a segment size in bytes.
func (n Name) SegNo(segSize uint32) uint64 {
	return uint64(n.Log)*segsPerLog(segSize) + uint64(n.Seg)
}

// FromSegNo builds the segment Name for a timeline and segment number.
func FromSegNo(tli uint32, segno uint64, segSize uint32) Name {
	per := segsPerLog(segSize)
	return Name{Kind: Segment, TLI: tli, Log: uint32(segno / per), Seg: uint32(segno % per)}
}

// StartLSN is the WAL position of the first byte of the segment.
func (n Name) StartLSN(segSize uint32) uint64 { return n.SegNo(segSize) * uint64(segSize) }

func segsPerLog(segSize uint32) uint64 {
	if segSize == 0 {
		segSize = DefaultSegSize
	}
	return 0x100000000 / uint64(segSize)
}

// DefaultSegSize is PostgreSQL's default wal_segment_size.
const DefaultSegSize = 16 << 20

// ValidSegSize mirrors PostgreSQL's IsValidWalSegSize: a power of two
// between 1 MiB and 1 GiB.
func ValidSegSize(s uint32) bool {
	return s >= 1<<20 && s <= 1<<30 && s&(s-1) == 0
}

// Less orders names the way an operator reads an archive: by timeline
// (history first within it), then position, then kind.
func Less(a, b Name) bool {
	if a.TLI != b.TLI {
		return a.TLI < b.TLI
	}
	if (a.Kind == History) != (b.Kind == History) {
		return a.Kind == History
	}
	if a.Log != b.Log {
		return a.Log < b.Log
	}
	if a.Seg != b.Seg {
		return a.Seg < b.Seg
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Offset < b.Offset
}

// Sort sorts names in place with Less.
func Sort(ns []Name) { sort.Slice(ns, func(i, j int) bool { return Less(ns[i], ns[j]) }) }

// CleanupSet returns the names archive_cleanup_command may delete for the
// restart point oldest (%r): segments and .partial files on oldest's
// timeline strictly before it. History and backup-history files are never
// returned, nor anything on another timeline (a sibling timeline may still
// be needed by another standby).
func CleanupSet(names []Name, oldest Name) []Name {
	var out []Name
	for _, n := range names {
		if n.Kind != Segment && n.Kind != Partial {
			continue
		}
		if n.TLI != oldest.TLI {
			continue
		}
		if n.Log < oldest.Log || n.Log == oldest.Log && n.Seg < oldest.Seg {
			out = append(out, n)
		}
	}
	Sort(out)
	return out
}

// Gap is a run of missing segments First..Last (inclusive) on one timeline.
type Gap struct {
	TLI         uint32
	First, Last Name
}

func (g Gap) Count(segSize uint32) uint64 {
	return g.Last.SegNo(segSize) - g.First.SegNo(segSize) + 1
}

// Gaps finds holes between the first and last archived segment of each
// timeline. Segments before the first are not gaps: cleanup removes them on
// purpose. A .partial file fills its own slot (it is the tail of a timeline).
func Gaps(names []Name, segSize uint32) []Gap {
	byTLI := map[uint32][]uint64{}
	for _, n := range names {
		if n.Kind == Segment || n.Kind == Partial {
			byTLI[n.TLI] = append(byTLI[n.TLI], n.SegNo(segSize))
		}
	}
	tlis := make([]uint32, 0, len(byTLI))
	for t := range byTLI {
		tlis = append(tlis, t)
	}
	sort.Slice(tlis, func(i, j int) bool { return tlis[i] < tlis[j] })
	var gaps []Gap
	for _, t := range tlis {
		nos := byTLI[t]
		sort.Slice(nos, func(i, j int) bool { return nos[i] < nos[j] })
		for i := 1; i < len(nos); i++ {
			if nos[i] > nos[i-1]+1 {
				gaps = append(gaps, Gap{TLI: t,
					First: FromSegNo(t, nos[i-1]+1, segSize),
					Last:  FromSegNo(t, nos[i]-1, segSize)})
			}
		}
	}
	return gaps
}

// Timelines returns the sorted set of timelines that have any file.
func Timelines(names []Name) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, n := range names {
		if !seen[n.TLI] {
			seen[n.TLI] = true
			out = append(out, n.TLI)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// WorthWaiting decides whether restore --wait should wait for want, given
// what the archive holds, the way pg_standby does: history files, backup
// files and .partial files are probes answered at once; a segment is only
// waited for on the newest timeline the archive knows (or on an empty
// archive). A probe for a timeline beyond the newest, or for an old
// timeline that has been superseded, fails at once.
func WorthWaiting(want Name, archived []Name) bool {
	if want.Kind != Segment {
		return false
	}
	tlis := Timelines(archived)
	if len(tlis) == 0 {
		return true
	}
	return want.TLI == tlis[len(tlis)-1]
}
