package archive

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
	"github.com/pgwarm/pgwarm/wal/waltest"
)

const rpSegSize = 1 << 20

// seededArchive is an archive holding the named files (segments get a
// valid long page header; files are written in place, so only what
// cleanup reads, the headers and names, matters).
func rpArchive(t *testing.T, names ...string) *Local {
	t.Helper()
	l := NewLocal(t.TempDir(), Options{})
	if err := os.Mkdir(l.walDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, s := range names {
		n, err := segname.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		var content []byte
		if n.HasWALContent() {
			content = waltest.IdleSegment(n, rpSegSize, 7000000000000000001)
		} else {
			content = []byte("1\t0/3000000\tno recovery target specified\n")
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
		if err := os.WriteFile(l.path(n), file, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func rpSeg(i int) string { return segname.FromSegNo(1, uint64(i), rpSegSize).String() }

func rpSegs(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, rpSeg(i))
	}
	return out
}

func rpLeft(t *testing.T, l *Local) []string {
	t.Helper()
	ls, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ls.Entries {
		out = append(out, e.Name)
	}
	return out
}

func rpCleanup(t *testing.T, l *Local, point string, opt CleanupOptions) (CleanupResult, error) {
	t.Helper()
	n, err := segname.Parse(point)
	if err != nil {
		t.Fatal(err)
	}
	return l.Cleanup(context.Background(), n, opt)
}

// A restart point far ahead of the archive (a typo, a bug, a hostile
// caller) used to delete the whole timeline; it is refused, naming the
// newest archived segment, and nothing is removed.
func TestCleanupRefusesPointBeyondArchive(t *testing.T) {
	l := rpArchive(t, append(rpSegs(1, 5), "00000002.history", "000000020000000000000007")...)
	before := rpLeft(t, l)
	for point, why := range map[string]string{
		"0000000100000000000000FF": "beyond " + rpSeg(5) + ", the newest segment archived on timeline 1",
		"000000010000000000000006": "beyond " + rpSeg(5),
		// Timeline 2 has segment 7: that makes no timeline-1 name plausible.
		"000000010000000000000007": "beyond " + rpSeg(5),
		"000000030000000000000001": "on timeline 3, of which nothing is archived",
	} {
		_, err := rpCleanup(t, l, point, CleanupOptions{As: "pg2"})
		if KindOf(err) != KindBadInput || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "nothing removed") {
			t.Errorf("%s: %v, want a refusal saying %q", point, err, why)
		}
	}
	if got := rpLeft(t, l); !reflect.DeepEqual(got, before) {
		t.Fatalf("refused cleanups removed files: %v, was %v", got, before)
	}
	if _, err := os.Stat(filepath.Join(l.Root, RestartPointsDir, "pg2")); err == nil {
		t.Fatal("a refused restart point was recorded")
	}
	// The newest archived segment itself is a plausible restart point.
	res, err := rpCleanup(t, l, rpSeg(5), CleanupOptions{As: "pg2"})
	if err != nil || !reflect.DeepEqual(res.Removed, rpSegs(1, 4)) {
		t.Fatalf("cleanup at the newest segment: %v %v", res.Removed, err)
	}
}

// A streaming standby may be ahead of a lagging archive: its point is
// lowered to the newest archived segment (what is not archived yet cannot
// be deleted anyway) and recorded so.
func TestCleanupStreamingClamps(t *testing.T) {
	l := rpArchive(t, rpSegs(1, 5)...)
	res, err := rpCleanup(t, l, "0000000100000000000000FF", CleanupOptions{As: "pg2", Streaming: true})
	if err != nil || !res.Clamped || res.Recorded != rpSeg(5) || !reflect.DeepEqual(res.Removed, rpSegs(1, 4)) {
		t.Fatalf("streaming cleanup ahead of the archive: %+v %v", res, err)
	}
	if got := rpLeft(t, l); !reflect.DeepEqual(got, []string{rpSeg(5)}) {
		t.Fatalf("left %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(l.Root, RestartPointsDir, "pg2")); string(b) != rpSeg(5)+"\n" {
		t.Fatalf("record %q", b)
	}
	// A timeline with nothing archived yet: nothing to delete, nothing recorded.
	res, err = rpCleanup(t, l, "000000020000000000000009", CleanupOptions{As: "pg2", Streaming: true})
	if err != nil || len(res.Removed) != 0 || res.Recorded != "" || !strings.Contains(res.Note, "timeline 2 has nothing archived yet") {
		t.Fatalf("streaming on an unarchived timeline: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(l.Root, RestartPointsDir, "pg2")); string(b) != rpSeg(5)+"\n" {
		t.Fatalf("record moved to %q", b)
	}
}

// Two standbys: the one ahead removes nothing the one behind still needs;
// the one behind removes below its own point. A hand-run cleanup without
// --as is bounded by the records too.
func TestCleanupSeveralStandbys(t *testing.T) {
	l := rpArchive(t, rpSegs(1, 10)...)
	both := []string{"pg2", "pg3"}
	if _, err := rpCleanup(t, l, rpSeg(4), CleanupOptions{As: "pg3", Standbys: both}); err != nil {
		t.Fatal(err)
	}
	res, err := rpCleanup(t, l, rpSeg(9), CleanupOptions{As: "pg2", Standbys: both})
	if err != nil || !reflect.DeepEqual(res.Removed, rpSegs(1, 3)) || res.Bound != rpSeg(4) || res.BoundOf != "pg3's" {
		t.Fatalf("cleanup by the standby ahead: %+v %v", res, err)
	}
	if got := rpLeft(t, l); !reflect.DeepEqual(got, rpSegs(4, 10)) {
		t.Fatalf("left %v, want pg3's segments from %s kept", got, rpSeg(4))
	}
	res, err = rpCleanup(t, l, rpSeg(7), CleanupOptions{As: "pg3", Standbys: both})
	if err != nil || !reflect.DeepEqual(res.Removed, rpSegs(4, 6)) || res.BoundOf != "pg3's" {
		t.Fatalf("cleanup by the standby behind: %+v %v", res, err)
	}
	res, err = rpCleanup(t, l, rpSeg(10), CleanupOptions{DryRun: true})
	if err != nil || len(res.Removed) != 0 || res.Bound != rpSeg(7) {
		t.Fatalf("a hand-run cleanup must respect the records: %+v %v", res, err)
	}
	// A standby on a later timeline needs nothing of timeline 1: pg2's
	// point on timeline 2 does not hold back the cleanup of timeline 1.
	l2 := rpArchive(t, append(rpSegs(1, 6), "00000002.history", "000000020000000000000006")...)
	if _, err := rpCleanup(t, l2, "000000020000000000000006", CleanupOptions{As: "pg2", Standbys: both}); err != nil {
		t.Fatal(err)
	}
	res, err = rpCleanup(t, l2, rpSeg(5), CleanupOptions{As: "pg3", Standbys: both})
	if err != nil || !reflect.DeepEqual(res.Removed, rpSegs(1, 4)) {
		t.Fatalf("timeline 1 behind timeline 2: %+v %v", res, err)
	}
	// ... and pg3 on timeline 1 holds back all of timeline 2.
	res, err = rpCleanup(t, l2, "000000020000000000000006", CleanupOptions{As: "pg2", Standbys: both})
	if err != nil || len(res.Removed) != 0 || res.Bound != rpSeg(5) {
		t.Fatalf("timeline 2 with a standby still on timeline 1: %+v %v", res, err)
	}
}

// A standby that never reported blocks deletion, and says so; records of
// hosts that are no longer standbys do not count.
func TestCleanupWaitsForEveryStandby(t *testing.T) {
	l := rpArchive(t, rpSegs(1, 6)...)
	opt := CleanupOptions{As: "pg2", Standbys: []string{"pg2", "pg3"}, OnlyStandbys: true}
	res, err := rpCleanup(t, l, rpSeg(5), opt)
	if err != nil || len(res.Removed) != 0 || !reflect.DeepEqual(res.Waiting, []string{"pg3"}) {
		t.Fatalf("pg3 never reported: %+v %v", res, err)
	}
	if msg := strings.Join(res.Explain(), "\n"); !strings.Contains(msg, "nothing is removed until every standby has reported a restart point; not yet: pg3 ") {
		t.Fatalf("explanation:\n%s", msg)
	}
	if got := rpLeft(t, l); len(got) != 6 {
		t.Fatalf("left %v", got)
	}
	// pg1 was a standby once (promoted since): not in --standbys, not counted.
	if err := os.WriteFile(filepath.Join(l.Root, RestartPointsDir, "pg1"), []byte(rpSeg(2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opt.As = "pg3"
	res, err = rpCleanup(t, l, rpSeg(6), opt)
	if err != nil || !reflect.DeepEqual(res.Removed, rpSegs(1, 4)) || res.BoundOf != "pg2's" {
		t.Fatalf("both reported: %+v %v", res, err)
	}
	if msg := strings.Join(res.Explain(), "\n"); !strings.Contains(msg, "restart point of pg1: "+rpSeg(2)) || !strings.Contains(msg, "not counted") {
		t.Fatalf("explanation:\n%s", msg)
	}
	// Serve's way: every record counts unless the rights file retires it.
	l3 := rpArchive(t, rpSegs(1, 6)...)
	os.Mkdir(filepath.Join(l3.Root, RestartPointsDir), 0o700)
	os.WriteFile(filepath.Join(l3.Root, RestartPointsDir, "pg1"), []byte(rpSeg(2)+"\n"), 0o600)
	if res, _ := rpCleanup(t, l3, rpSeg(6), CleanupOptions{As: "pg2", Standbys: []string{"pg2"}, Retired: []string{"pg9"}}); !reflect.DeepEqual(res.Removed, rpSegs(1, 1)) {
		t.Fatalf("an unknown host's record must count: %+v", res)
	}
	if res, _ := rpCleanup(t, l3, rpSeg(6), CleanupOptions{As: "pg2", Standbys: []string{"pg2"}, Retired: []string{"pg1"}}); !reflect.DeepEqual(res.Removed, rpSegs(2, 5)) {
		t.Fatalf("a retired host's record must not count: %+v", res)
	}
}

// Names become file names and records are parsed strictly: no traversal,
// no symlink followed, a damaged record of another standby stops cleanup.
func TestCleanupHostileRecords(t *testing.T) {
	l := rpArchive(t, rpSegs(1, 6)...)
	for _, bad := range []CleanupOptions{{As: "../wal/" + rpSeg(6)}, {As: ".."}, {As: ".tmp-x"}, {Standbys: []string{"pg2/x"}}, {As: "a b"}, {As: strings.Repeat("a", 64)}} {
		if _, err := rpCleanup(t, l, rpSeg(3), bad); KindOf(err) != KindBadInput {
			t.Errorf("%+v: %v, want bad input", bad, err)
		}
	}
	if got := rpLeft(t, l); len(got) != 6 {
		t.Fatalf("hostile names removed files: %v", got)
	}
	dir := filepath.Join(l.Root, RestartPointsDir)
	os.Mkdir(dir, 0o700)
	target := filepath.Join(t.TempDir(), "elsewhere")
	os.WriteFile(target, []byte(rpSeg(6)+"\n"), 0o600)
	for content, why := range map[string]string{
		rpSeg(1):                          "a newline",
		rpSeg(1) + "\n\n":                 "not a WAL file name",
		strings.ToLower(rpSeg(10)) + "\n": "not a WAL file name",
		"00000001.history\n":              "not a segment",
		rpSeg(1) + ".partial\n":           "not a segment",
		"symlink":                         "symbolic link",
	} {
		p := filepath.Join(dir, "pg3")
		os.Remove(p)
		if content == "symlink" {
			os.Symlink(target, p)
		} else {
			os.WriteFile(p, []byte(content), 0o600)
		}
		_, err := rpCleanup(t, l, rpSeg(5), CleanupOptions{As: "pg2"})
		if KindOf(err) != KindCorrupt || !strings.Contains(err.Error(), "pg3 is damaged") || !strings.Contains(err.Error(), why) {
			t.Errorf("record %q: %v, want damaged (%s)", content, err, why)
		}
	}
	if got := rpLeft(t, l); len(got) != 6 {
		t.Fatalf("a damaged record let cleanup remove %v", got)
	}
	// Its own damaged record is simply replaced.
	os.Remove(filepath.Join(dir, "pg3"))
	os.WriteFile(filepath.Join(dir, "pg2"), []byte("junk"), 0o600)
	if res, err := rpCleanup(t, l, rpSeg(5), CleanupOptions{As: "pg2"}); err != nil || len(res.Removed) != 4 {
		t.Fatalf("own damaged record: %+v %v", res, err)
	}
}
