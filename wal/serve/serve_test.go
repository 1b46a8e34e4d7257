package serve

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
	"github.com/pgwarm/pgwarm/wal/waltest"
)

func TestParseRightsFile(t *testing.T) {
	got, err := ParseRightsFile("# cluster main\npg1 push\n\n  pg2   get,cleanup  # standby\npg3 get,push@12\n")
	if err != nil {
		t.Fatal(err)
	}
	if !got["pg1"].Allows("push") || got["pg1"].Allows("get") || got["pg1"].Timeline != 0 ||
		!got["pg2"].Allows("get") || !got["pg2"].Allows("list") || got["pg2"].Allows("push") ||
		!got["pg3"].Allows("push") || !got["pg3"].Allows("get") || got["pg3"].Timeline != 12 {
		t.Fatalf("rights: %v", got)
	}
	for content, want := range map[string]string{
		"pg1":                  "line 1: want NAME OPERATIONS",
		"pg1 push\npg1 get":    "line 2: pg1 is listed twice",
		"pg1 push extra":       "line 1: want NAME OPERATIONS",
		"pg1 push\npg2 delete": `line 2: --allow: unknown operation "delete"`,
		"pg1 push@":            "push@T needs a timeline T of 1 or more",
		"pg1 push@0":           "push@T needs a timeline",
		"pg1 push@01":          "push@T needs a timeline",
		"pg1 push@-1":          "push@T needs a timeline",
		"pg1 push@x":           "push@T needs a timeline",
		"pg1 push@4294967296":  "push@T needs a timeline",
		"pg1 push@1,push@2":    "push is named twice",
		"pg1 push,push@2":      "push is named twice",
		"pg1 push@1 ,get":      "line 1: want NAME OPERATIONS",
	} {
		if _, err := ParseRightsFile(content); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", content, err, want)
		}
	}
}

// The rights file is read for every request, so a change reaches a key
// whose connection was opened under the old rights.
func TestRightsFileReadPerRequest(t *testing.T) {
	content := "pg1 push\npg2 get,cleanup\n"
	cfg := Config{Root: t.TempDir(), RightsFile: "/etc/pgwarm/archive-main.rights", As: "pg2",
		ReadFile: func(string) ([]byte, error) { return []byte(content), nil }}
	list := func() error {
		_, err := handle(context.Background(), cfg, "pgwarm-wal-op list", bytes.NewReader(nil))
		return err
	}
	if err := list(); err != nil {
		t.Fatalf("pg2 may list under get: %v", err)
	}
	content = "pg1 get,cleanup\npg2 push\n"
	err := list()
	if archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), `operation "list" is not allowed for pg2's ssh key (/etc/pgwarm/archive-main.rights grants only push)`) {
		t.Fatalf("after the swap: %v", err)
	}
	content = "pg1 push\n"
	if err := list(); archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), "grants only nothing") {
		t.Fatalf("a key without a line may do nothing: %v", err)
	}
	cfg.ReadFile = func(string) ([]byte, error) { return nil, fs.ErrPermission }
	if err := list(); archive.KindOf(err) != archive.KindDenied || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "cannot read its rights file") {
		t.Fatalf("unreadable rights file: %v", err)
	}
	content = "pg2 get,delete\n"
	cfg.ReadFile = func(string) ([]byte, error) { return []byte(content), nil }
	if err := list(); archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("broken rights file: %v", err)
	}
}

// segment returns a 1 MiB WAL segment whose first page names it.
func segment(t *testing.T, name string) []byte {
	t.Helper()
	n, err := segname.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	return waltest.IdleSegment(n, 1<<20, 7300000000000000001)
}

// push runs one push request of content as name under rights.
func push(t *testing.T, root, rights, name string, content []byte) error {
	t.Helper()
	n, err := segname.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	var info walfile.PageInfo
	if n.HasWALContent() {
		if info, err = walfile.ParseLongHeader(content); err != nil {
			t.Fatal(err)
		}
	}
	file, _, err := walfile.Encode(content, walfile.Zstd, info)
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	if err := archive.WriteFrame(&in, archive.FrameData, file); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Root: root, RightsFile: "/home/backup/.ssh/pgwarm-main.rights", As: "pg1",
		ReadFile: func(string) ([]byte, error) { return []byte("pg1 " + rights + "\n"), nil }}
	_, err = handle(context.Background(), cfg, "pgwarm-wal-op push "+name, &in)
	return err
}

// A key writes only its own timeline: a primary on timeline 1 cannot
// store the history file (or any segment) of timeline 2 ahead of the real
// promotion, which would then conflict forever; the promoted host, given
// push@2, archives its history file, its segments and the .partial that
// ends timeline 1.
func TestPushOnlyOwnTimeline(t *testing.T) {
	root := t.TempDir()
	hist2 := []byte("1\t0/3000098\tno recovery target specified\n")
	stored := func(name string) bool { _, err := os.Stat(filepath.Join(root, "wal", name)); return err == nil }
	ok := func(rights, name string, content []byte) {
		t.Helper()
		if err := push(t, root, rights, name, content); err != nil {
			t.Fatalf("%s may push %s: %v", rights, name, err)
		}
	}
	denied := func(rights, name string, content []byte, why string) {
		t.Helper()
		err := push(t, root, rights, name, content)
		if archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), "push of "+name+" is not allowed for pg1's ssh key") ||
			!strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "pgwarm promote") || !strings.Contains(err.Error(), "pgwarm apply") {
			t.Fatalf("%s pushing %s: kind %v, %v; want denied, %q", rights, name, archive.KindOf(err), err, why)
		}
		if stored(name) {
			t.Fatalf("%s stored under %s", name, rights)
		}
	}
	ok("push@1", "000000010000000000000003", segment(t, "000000010000000000000003"))
	denied("push@1", "00000002.history", hist2, "it may write only timeline 1, and 00000002.history is of timeline 2")
	denied("push@1", "000000020000000000000003", segment(t, "000000020000000000000003"), "only timeline 1")
	denied("push@1", "000000010000000000000003.partial", segment(t, "000000010000000000000003"), "archives .partial files only of the timeline it branched from")
	denied("push@1", "000000020000000000000003.00000028.backup", []byte("START WAL LOCATION: 0/3000028 (file 000000020000000000000003)\nSTOP WAL LOCATION: 0/3000100 (file 000000020000000000000003)\n"), "only timeline 1")
	// A bare push (a rights file of an older pgwarm) keeps adding segments
	// of any timeline, but no history file.
	denied("push", "00000002.history", hist2, "names no timeline (push@T)")
	ok("push", "000000010000000000000004", segment(t, "000000010000000000000004"))

	// The promotion: push@2 archives timeline 2's history file, the
	// .partial of timeline 1, and its segments; not timeline 1's segments.
	ok("push@2", "00000002.history", hist2)
	ok("push@2", "000000010000000000000005.partial", segment(t, "000000010000000000000005"))
	ok("push@2", "000000020000000000000005", segment(t, "000000020000000000000005"))
	ok("get,push@2", "000000020000000000000005.00000028.backup", []byte("START WAL LOCATION: 0/5000028 (file 000000020000000000000005)\nSTOP WAL LOCATION: 0/5000100 (file 000000020000000000000005)\n"))
	// An earlier timeline's segment is what a primary rewound and then
	// promoted archives first (its pg_wal still marks it .ready), and its
	// archiver stops until that is stored: allowed (TestOpsDrillLab).
	ok("push@2", "000000010000000000000006", segment(t, "000000010000000000000006"))
	denied("push@2", "000000020000000000000006.partial", segment(t, "000000020000000000000006"), "only of the timeline it branched from")
	denied("push@2", "00000003.history", []byte("1\t0/3000098\tx\n\n2\t0/6000000\tx\n"), "only timeline 2")

	// Timeline 4 branched from 2: a .partial of 3 is not its to write once
	// its history file says so; before that, any older timeline's is.
	ok("push@4", "000000030000000000000007.partial", segment(t, "000000030000000000000007"))
	ok("push@4", "00000004.history", []byte("1\t0/3000098\tx\n\n2\t0/7000000\tx\n"))
	denied("push@4", "000000030000000000000008.partial", segment(t, "000000030000000000000008"), "branched from timeline 2 (its archived history file), not 3")
	ok("push@4", "000000020000000000000007.partial", segment(t, "000000020000000000000007"))
}
