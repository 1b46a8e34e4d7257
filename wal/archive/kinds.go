package archive

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

// The contents of the two text kinds are checked before they are stored
// and before restore hands them over: a history file decides which
// timelines a standby follows (PostgreSQL stops with FATAL on one it
// cannot parse), and a name must not carry something else (a segment
// pushed as 00000002.history).
const (
	// MaxHistoryContent bounds a timeline history file: a short line per
	// promotion in the cluster's life, so thousands of promotions fit.
	MaxHistoryContent = 1 << 20
	// MaxBackupContent bounds a backup history file: a dozen lines and a
	// label of at most MAXPGPATH (1024) bytes.
	MaxBackupContent = 64 << 10
	// historyLineMax is PostgreSQL's line buffer in readTimeLineHistory
	// (MAXPGPATH): a longer line is read as two, and the second is a
	// syntax error there.
	historyLineMax = 1024 - 1
)

// CheckContentKind checks that the decoded content of a history or backup
// history file is one, in the format PostgreSQL writes (9.6 to 18), and
// agrees with its name. Segments and .partial files are checked by
// CheckWALContent. The error wraps walfile.ErrCorrupt and says which line
// is wrong. Pure.
func CheckContentKind(n segname.Name, content []byte) error {
	var err error
	switch n.Kind {
	case segname.History:
		_, err = ParseHistory(n.TLI, content)
	case segname.Backup:
		_, err = ParseBackupHistory(n, content)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %s is not a %s file: %v", walfile.ErrCorrupt, n, kindTitle(n.Kind), err)
	}
	return nil
}

func kindTitle(k segname.Kind) string {
	if k == segname.History {
		return "timeline history"
	}
	return "backup history"
}

// HistoryEntry is one line of a timeline history file: the timeline
// switched from Parent at the WAL position Switch.
type HistoryEntry struct {
	Parent uint32
	Switch uint64
	Reason string
}

// ParseHistory parses the history file of timeline tli as PostgreSQL's
// readTimeLineHistory does ("PARENT<TAB>X/X<TAB>REASON" lines, # comments
// and blank lines ignored, a NUL ends a line's text as it ends a C
// string), and refuses what makes it stop with FATAL (a line without a
// timeline or switch point, parent timelines not increasing or not below
// tli) and what PostgreSQL never writes: no parent at all, timeline 0,
// switch points going backwards, lines longer than its line buffer.
// Pure.
func ParseHistory(tli uint32, content []byte) ([]HistoryEntry, error) {
	if len(content) > MaxHistoryContent {
		return nil, fmt.Errorf("%d bytes, more than a history file can be (%d)", len(content), MaxHistoryContent)
	}
	var out []HistoryEntry
	for i, raw := range bytes.Split(content, []byte("\n")) {
		line := string(raw)
		if j := strings.IndexByte(line, 0); j >= 0 {
			line = line[:j]
		}
		bad := func(format string, a ...any) ([]HistoryEntry, error) {
			return nil, fmt.Errorf("line %d (%s): "+format, append([]any{i + 1, quoteShort(line)}, a...)...)
		}
		if len(raw) > historyLineMax {
			return bad("longer than the %d bytes PostgreSQL reads as one line", historyLineMax)
		}
		// Fields as sscanf("%u\t%X/%X") finds them: separated by C's
		// isspace, which is ASCII only (a UTF-8 no-break space is no
		// separator to PostgreSQL, so it must not be one here either).
		t := strings.TrimLeft(line, cSpace)
		if t == "" || t[0] == '#' {
			continue
		}
		first, rest := cutCField(t)
		parent, err := strconv.ParseUint(first, 10, 32)
		if err != nil {
			return bad("expected a numeric parent timeline ID first")
		}
		second, reason := cutCField(rest)
		if second == "" {
			return bad("expected a switch point (X/X) after the timeline ID")
		}
		lsn, ok := parseLSN(second)
		if !ok {
			return bad("expected a switch point (X/X) after the timeline ID, got %q", second)
		}
		e := HistoryEntry{Parent: uint32(parent), Switch: lsn, Reason: strings.Trim(reason, cSpace)}
		switch {
		case e.Parent == 0:
			return bad("timeline 0 does not exist")
		case len(out) > 0 && e.Parent <= out[len(out)-1].Parent:
			return bad("timeline IDs must increase (%d follows %d)", e.Parent, out[len(out)-1].Parent)
		case e.Parent >= tli:
			return bad("parent timeline %d is not below this file's timeline %d", e.Parent, tli)
		case len(out) > 0 && e.Switch < out[len(out)-1].Switch:
			return bad("switch point %s is before the previous one, %s", FormatLSN(e.Switch), FormatLSN(out[len(out)-1].Switch))
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no parent timeline: PostgreSQL writes at least the line of the timeline %d branched from", tli)
	}
	return out, nil
}

// cSpace is what C's isspace accepts in PostgreSQL's history parsing.
const cSpace = " \t\n\v\f\r"

// cutCField returns the field at the start of s (up to C whitespace) and
// the rest after the whitespace that follows it.
func cutCField(s string) (field, rest string) {
	s = strings.TrimLeft(s, cSpace)
	if i := strings.IndexAny(s, cSpace); i >= 0 {
		return s[:i], strings.TrimLeft(s[i:], cSpace)
	}
	return s, ""
}

// BackupHistory is what a backup history file (pg_backup_stop) records.
type BackupHistory struct {
	Start, Stop         uint64
	StartFile, StopFile segname.Name
	Label               string
}

// ParseBackupHistory parses a backup history file as do_pg_backup_stop
// writes it from 9.6 to 18 ("START WAL LOCATION: X/X (file NAME)" first,
// then "STOP WAL LOCATION: X/X (file NAME)", CHECKPOINT LOCATION, BACKUP
// METHOD, BACKUP FROM, START TIME, LABEL, START TIMELINE, STOP TIME, STOP
// TIMELINE, INCREMENTAL FROM ...; lines a version does not write are not
// required, lines it may add are not refused) and checks it belongs at n:
// the backup started at offset n.Offset of n's segment, and stopped on
// n's timeline (the name is made from the stop timeline). Pure.
func ParseBackupHistory(n segname.Name, content []byte) (BackupHistory, error) {
	var b BackupHistory
	if len(content) > MaxBackupContent {
		return b, fmt.Errorf("%d bytes, more than a backup history file can be (%d)", len(content), MaxBackupContent)
	}
	if i := bytes.IndexByte(content, 0); i >= 0 {
		return b, fmt.Errorf("line %d holds binary data (a NUL byte); PostgreSQL writes text", bytes.Count(content[:i], []byte("\n"))+1)
	}
	lines := strings.Split(string(content), "\n")
	var haveStop bool
	var segSize uint32
	for i, line := range lines {
		bad := func(format string, a ...any) (BackupHistory, error) {
			return BackupHistory{}, fmt.Errorf("line %d (%s): "+format, append([]any{i + 1, quoteShort(line)}, a...)...)
		}
		key, val, _ := strings.Cut(strings.TrimRight(line, "\r"), ": ")
		if i == 0 && key != "START WAL LOCATION" {
			return bad("expected START WAL LOCATION: X/X (file NAME) first")
		}
		switch key {
		case "START WAL LOCATION", "STOP WAL LOCATION":
			if (key == "START WAL LOCATION") != (i == 0) || key == "STOP WAL LOCATION" && haveStop {
				return bad("%s may appear only once and START WAL LOCATION only first", key)
			}
			lsn, file, ok := parseLocation(val)
			if !ok {
				return bad("expected %s: X/X (file NAME) with a WAL segment name", key)
			}
			if key == "START WAL LOCATION" {
				if file.Log != n.Log || file.Seg != n.Seg || file.TLI > n.TLI {
					return bad("the backup started in %s, but this file's name says segment %08X%08X of timeline %d or before", file, n.Log, n.Seg, n.TLI)
				}
				if segSize = segSizeFor(lsn, file, n.Offset); segSize == 0 {
					return bad("%s is not at offset %08X of %s for any valid segment size", FormatLSN(lsn), n.Offset, file)
				}
				b.Start, b.StartFile = lsn, file
				continue
			}
			if file.TLI != n.TLI {
				return bad("the backup stopped on timeline %d but this file's name says timeline %d", file.TLI, n.TLI)
			}
			if segname.FromSegNo(file.TLI, lsn/uint64(segSize), segSize) != file {
				return bad("%s is not in %s", FormatLSN(lsn), file)
			}
			if lsn < b.Start {
				return bad("the backup stopped at %s, before it started (%s)", FormatLSN(lsn), FormatLSN(b.Start))
			}
			b.Stop, b.StopFile, haveStop = lsn, file, true
		case "CHECKPOINT LOCATION", "INCREMENTAL FROM LSN":
			if _, ok := parseLSN(val); !ok {
				return bad("expected %s: X/X", key)
			}
		case "START TIMELINE", "STOP TIMELINE", "INCREMENTAL FROM TLI":
			tl, err := strconv.ParseUint(val, 10, 32)
			switch {
			case err != nil || tl == 0:
				return bad("expected %s: a timeline ID", key)
			case key == "START TIMELINE" && uint32(tl) != b.StartFile.TLI:
				return bad("START TIMELINE %d but the backup started in %s", tl, b.StartFile)
			case key == "STOP TIMELINE" && uint32(tl) != n.TLI:
				return bad("STOP TIMELINE %d but this file's name says timeline %d", tl, n.TLI)
			}
		case "LABEL":
			b.Label = val
		}
		// Anything else (BACKUP METHOD, times, a label's own lines) is
		// informational: PostgreSQL never reads this file back.
	}
	if !haveStop {
		return b, fmt.Errorf("no STOP WAL LOCATION line: PostgreSQL writes one into every backup history file")
	}
	return b, nil
}

// segSizeFor finds the wal_segment_size under which lsn lies in file at
// offset off (a backup file's name says where it started, not the segment
// size), or 0.
func segSizeFor(lsn uint64, file segname.Name, off uint32) uint32 {
	for s := uint32(1 << 20); s != 0 && s <= 1<<30; s <<= 1 {
		if segname.FromSegNo(file.TLI, lsn/uint64(s), s) == file && uint32(lsn%uint64(s)) == off {
			return s
		}
	}
	return 0
}

// parseLocation reads "X/X (file NAME)".
func parseLocation(s string) (uint64, segname.Name, bool) {
	l, rest, ok := strings.Cut(s, " (file ")
	if !ok || !strings.HasSuffix(rest, ")") {
		return 0, segname.Name{}, false
	}
	lsn, ok := parseLSN(l)
	f, err := segname.Parse(strings.TrimSuffix(rest, ")"))
	if !ok || err != nil || f.Kind != segname.Segment {
		return 0, segname.Name{}, false
	}
	return lsn, f, true
}

// parseLSN reads "X/X" as PostgreSQL prints an LSN (%X/%X: up to 8 hex
// digits each side).
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || len(hi) == 0 || len(hi) > 8 || len(lo) == 0 || len(lo) > 8 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// FormatLSN prints an LSN as PostgreSQL does.
func FormatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn)) }

// quoteShort quotes a line for an error message, cut to what a terminal
// line can show: a 16 MiB segment under a history name is one long line.
func quoteShort(s string) string {
	if len(s) > 60 {
		return strconv.Quote(s[:60]) + "..."
	}
	return strconv.Quote(s)
}
