package archive

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

func mustName(t *testing.T, s string) segname.Name {
	t.Helper()
	n, err := segname.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// History files as PostgreSQL writes them (writeTimeLineHistory copies
// the parent's file, then adds "\n" and its own line) parse; what makes
// readTimeLineHistory stop with FATAL, and what it never writes, does not,
// and the error names the line.
func TestParseHistory(t *testing.T) {
	three := "1\t0/3000098\tno recovery target specified\n\n2\t0/50000D8\tno recovery target specified\n"
	es, err := ParseHistory(3, []byte(three))
	if err != nil || len(es) != 2 || es[0].Parent != 1 || es[1].Parent != 2 || es[1].Switch != 0x50000D8 || es[1].Reason != "no recovery target specified" {
		t.Fatalf("timeline 3: %+v, %v", es, err)
	}
	for _, ok := range []struct {
		tli  uint32
		text string
	}{
		{2, "1\t0/3000000\tno recovery target specified\n"},
		{2, "# edited by hand\n  \n1\t1F/FF000028\tat restore point \"before upgrade\"\n"},
		{2, "1\t0/3000000\n"},                     // no reason: PostgreSQL reads only two fields
		{2, "1\t0/3000000\treason\r\n"},           // written on another system
		{2, "1\t0/3000000\tbefore\n\x00\x00\x00"}, // a NUL ends a line's text for PostgreSQL too
		{9, "1\t0/3000000\tx\n4\t0/3000000\tsame point: a recovery target at the branch\n"},
	} {
		if _, err := ParseHistory(ok.tli, []byte(ok.text)); err != nil {
			t.Errorf("timeline %d %q: %v", ok.tli, ok.text, err)
		}
	}
	segment := make([]byte, 16<<20)
	copy(segment, "\x10\xd1\x02\x00\x01\x00\x00\x00")
	for _, c := range []struct {
		tli  uint32
		text string
		want string
	}{
		{2, "", "no parent timeline"},
		{2, "# only a comment\n\n", "no parent timeline"},
		{2, "garbage\n", `line 1 ("garbage"): expected a numeric parent timeline ID`},
		{2, "1\n", "line 1 (\"1\"): expected a switch point"},
		{2, "1\t03000000\tx\n", "expected a switch point (X/X)"},
		{2, "1\t0/3000000/7\tx\n", "expected a switch point (X/X)"},
		{2, "1\t123456789/0\tx\n", "expected a switch point (X/X)"},
		{2, "-1\t0/3000000\tx\n", "expected a numeric parent"},
		{2, "4294967296\t0/3000000\tx\n", "expected a numeric parent"},
		{2, "0\t0/3000000\tx\n", "timeline 0 does not exist"},
		{2, "2\t0/3000000\tx\n", "parent timeline 2 is not below this file's timeline 2"},
		{2, "3\t0/3000000\tx\n", "not below"},
		{1, "1\t0/3000000\tx\n", "not below"},
		{4, "1\t0/3000000\tx\n\n1\t0/5000000\tx\n", "line 3 (\"1\\t0/5000000\\tx\"): timeline IDs must increase (1 follows 1)"},
		{4, "2\t0/3000000\tx\n1\t0/5000000\tx\n", "line 2"},
		{4, "1\t0/5000000\tx\n2\t0/3000000\tx\n", "switch point 0/3000000 is before the previous one, 0/5000000"},
		{2, "1\t0/3000000\t" + strings.Repeat("r", 1100) + "\n", "longer than the 1023 bytes"},
		{2, string(segment[:1<<20]), "line 1"},
		{2, string(segment), "more than a history file can be"},
	} {
		_, err := ParseHistory(c.tli, []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("timeline %d %.40q: error %v, want %q", c.tli, c.text, err, c.want)
		}
	}
}

// pg15Backup is a backup history file as PostgreSQL 15 writes it
// (pg_basebackup, wal_segment_size 16 MiB); pg96Backup as 9.6 does.
const (
	pg15Backup = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n" +
		"STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n" +
		"CHECKPOINT LOCATION: 0/2000060\n" +
		"BACKUP METHOD: streamed\n" +
		"BACKUP FROM: primary\n" +
		"START TIME: 2026-12-03 08:10:11 UTC\n" +
		"LABEL: pg_basebackup base backup\n" +
		"START TIMELINE: 1\n" +
		"STOP TIME: 2026-12-03 08:10:12 UTC\n" +
		"STOP TIMELINE: 1\n"
	pg96Backup = "START WAL LOCATION: 1/A0000028 (file 0000000300000001000000A0)\n" +
		"STOP WAL LOCATION: 1/A1000050 (file 0000000300000001000000A1)\n" +
		"CHECKPOINT LOCATION: 1/A0000060\n" +
		"BACKUP METHOD: pg_start_backup\n" +
		"BACKUP FROM: master\n" +
		"START TIME: 2019-03-01 10:00:00 CET\n" +
		"LABEL: nightly\n" +
		"STOP TIME: 2019-03-01 10:02:00 CET\n"
)

func TestParseBackupHistory(t *testing.T) {
	b, err := ParseBackupHistory(mustName(t, "000000010000000000000002.00000028.backup"), []byte(pg15Backup))
	if err != nil || b.Start != 0x2000028 || b.Stop != 0x2000100 || b.Label != "pg_basebackup base backup" {
		t.Fatalf("PostgreSQL 15: %+v, %v", b, err)
	}
	if _, err := ParseBackupHistory(mustName(t, "0000000300000001000000A0.00000028.backup"), []byte(pg96Backup)); err != nil {
		t.Fatalf("PostgreSQL 9.6: %v", err)
	}
	// 1 MiB segments: segment 0x20 of log 0 starts at 0/2000000 too, but
	// is named ...00000020; the segment size is inferred from the name.
	small := strings.ReplaceAll(pg15Backup, "000000010000000000000002", "000000010000000000000020")
	if _, err := ParseBackupHistory(mustName(t, "000000010000000000000020.00000028.backup"), []byte(small)); err != nil {
		t.Fatalf("1 MiB segments: %v", err)
	}
	// PostgreSQL 17 adds the incremental lines.
	incr := pg15Backup + "INCREMENTAL FROM LSN: 0/1000028\nINCREMENTAL FROM TLI: 1\n"
	if _, err := ParseBackupHistory(mustName(t, "000000010000000000000002.00000028.backup"), []byte(incr)); err != nil {
		t.Fatalf("PostgreSQL 17 incremental: %v", err)
	}
	name := "000000010000000000000002.00000028.backup"
	for _, c := range []struct {
		name, text, want string
	}{
		{name, "", "line 1"},
		{name, "LABEL: x\n" + pg15Backup, `line 1 ("LABEL: x"): expected START WAL LOCATION`},
		{name, strings.SplitAfter(pg15Backup, "\n")[0], "no STOP WAL LOCATION"},
		{"000000010000000000000003.00000028.backup", pg15Backup, "the backup started in 000000010000000000000002"},
		{"000000010000000000000002.00000030.backup", pg15Backup, "0/2000028 is not at offset 00000030"},
		{"000000020000000000000002.00000028.backup", pg15Backup, "line 2 (\"STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\"): the backup stopped on timeline 1 but this file's name says timeline 2"},
		{name, strings.Replace(pg15Backup, "STOP WAL LOCATION: 0/2000100", "STOP WAL LOCATION: 0/1000100", 1), "0/1000100 is not in 000000010000000000000002"},
		{name, strings.Replace(pg15Backup, "(file 000000010000000000000002)\nCHECK", "(file 00000001000000000000000Z)\nCHECK", 1), "line 2"},
		{name, strings.Replace(pg15Backup, "START TIMELINE: 1", "START TIMELINE: 2", 1), "START TIMELINE 2 but the backup started in 000000010000000000000002"},
		{name, strings.Replace(pg15Backup, "STOP TIMELINE: 1", "STOP TIMELINE: x", 1), "expected STOP TIMELINE: a timeline ID"},
		{name, strings.Replace(pg15Backup, "CHECKPOINT LOCATION: 0/2000060", "CHECKPOINT LOCATION: soon", 1), "line 3"},
		{name, pg15Backup + "STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n", "may appear only once"},
		{name, pg15Backup + "\x00", "binary data"},
		{name, strings.Repeat("x", MaxBackupContent+1), "more than a backup history file can be"},
	} {
		_, err := ParseBackupHistory(mustName(t, c.name), []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %.50q: error %v, want %q", c.name, c.text, err, c.want)
		}
	}
}

// Put refuses a history or backup history file that is not one, with the
// corrupt kind, and stores nothing; CheckFile (serve's push, verify) says
// the same; segments are not affected.
func TestPutChecksContentKind(t *testing.T) {
	l, _ := newArchive(t)
	ctx := context.Background()
	enc := func(b []byte) []byte {
		f, _, err := walfile.Encode(b, walfile.Zstd, walfile.PageInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	_, segment := readContentSummed(t)
	for _, c := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"00000002.history", []byte("not a history file\n"), "00000002.history is not a timeline history file: line 1"},
		// A segment under a history name: refused by its size before it is
		// decoded (the size limit of text files), before the parser sees it.
		{"00000002.history", segment, "00000002.history would be 16777216 bytes, more than a history file can be"},
		{"000000010000000000000002.00000028.backup", []byte("hello\n"), "is not a backup history file: line 1"},
	} {
		n := mustName(t, c.name)
		err := l.Put(ctx, n, enc(c.content))
		if KindOf(err) != KindCorrupt || !errors.Is(err, walfile.ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: kind %v, %v; want corrupt, %q", n, KindOf(err), err, c.want)
		}
		if _, err := os.Stat(l.path(n)); err == nil {
			t.Errorf("%s: stored", n)
		}
		if v := CheckFile(n, enc(c.content), 0); !errors.Is(v.Err, walfile.ErrCorrupt) || !strings.Contains(v.Err.Error(), c.want) {
			t.Errorf("%s: CheckFile: %v", n, v.Err)
		}
	}
	for name, text := range map[string]string{
		"00000002.history":                         "1\t0/3000000\tno recovery target specified\n",
		"000000010000000000000002.00000028.backup": pg15Backup,
	} {
		if err := l.Put(ctx, mustName(t, name), enc([]byte(text))); err != nil {
			t.Errorf("%s as PostgreSQL writes it: %v", name, err)
		}
	}
}
