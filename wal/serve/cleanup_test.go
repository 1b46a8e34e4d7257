package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
	"github.com/pgwarm/pgwarm/wal/waltest"
)

func rpSeg(i int) string { return segname.FromSegNo(1, uint64(i), 1<<20).String() }

// archiveWith is an archive root holding segments 1..n of timeline 1.
func rpArchiveWith(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, archive.WALDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		content := waltest.IdleSegment(segname.FromSegNo(1, uint64(i), 1<<20), 1<<20, 7000000000000000001)
		info, err := walfile.ParseLongHeader(content)
		if err != nil {
			t.Fatal(err)
		}
		file, _, err := walfile.Encode(content, walfile.Zstd, info)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, archive.WALDir, rpSeg(i)), file, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func rpRemaining(t *testing.T, root string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(root, archive.WALDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// Over ssh the restart point is recorded under the key's name, the
// standbys that must report are the rights file's, and one standby's key
// cannot speak for another.
func TestCleanupOverServe(t *testing.T) {
	root := rpArchiveWith(t, 10)
	rights := "pg1 push\npg2 get,cleanup,list,verify\npg3 get,cleanup,list,verify\n"
	as := func(name string) Config {
		return Config{Root: root, RightsFile: "/etc/pgwarm/archive-main.rights", As: name,
			ReadFile: func(string) ([]byte, error) { return []byte(rights), nil }}
	}
	clean := func(cfg Config, req string) (archive.CleanupResult, error) {
		t.Helper()
		var res archive.CleanupResult
		b, err := handle(context.Background(), cfg, req, bytes.NewReader(nil))
		if err == nil {
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
		}
		return res, err
	}
	// pg3 reports first: pg2, in the rights file, has not reported yet.
	res, err := clean(as("pg3"), "pgwarm-wal-op cleanup "+rpSeg(9))
	if err != nil || len(res.Removed) != 0 || !reflect.DeepEqual(res.Waiting, []string{"pg2"}) || res.Recorded != rpSeg(9) {
		t.Fatalf("pg3 first: %+v %v", res, err)
	}
	// pg3's key cannot record (or move) pg2's restart point.
	if _, err := clean(as("pg3"), "pgwarm-wal-op cleanup "+rpSeg(9)+" as=pg2"); archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), "a key reports only its own host's restart point") {
		t.Fatalf("pg3 speaking for pg2: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, archive.RestartPointsDir, "pg2")); err == nil {
		t.Fatal("pg2's record written by pg3's key")
	}
	// pg2 is behind: it removes below its own point.
	res, err = clean(as("pg2"), "pgwarm-wal-op cleanup "+rpSeg(4)+" as=pg2")
	if err != nil || !reflect.DeepEqual(res.Removed, []string{rpSeg(1), rpSeg(2), rpSeg(3)}) {
		t.Fatalf("pg2 behind: %+v %v", res, err)
	}
	// pg3, far ahead (as far as the archive goes), removes nothing pg2 needs.
	res, err = clean(as("pg3"), "pgwarm-wal-op cleanup "+rpSeg(10)+" streaming")
	if err != nil || len(res.Removed) != 0 || res.BoundOf != "pg2's" {
		t.Fatalf("pg3 ahead: %+v %v", res, err)
	}
	if got := rpRemaining(t, root); len(got) != 7 || got[0] != rpSeg(4) {
		t.Fatalf("left %v", got)
	}
	// A far-future name is refused for a standby key too.
	if _, err := clean(as("pg3"), "pgwarm-wal-op cleanup 0000000100000000000000FF"); archive.KindOf(err) != archive.KindBadInput || !strings.Contains(err.Error(), rpSeg(10)) {
		t.Fatalf("far future over serve: %v", err)
	}
	// After a promotion pg2's key may only push: its old record no longer counts.
	rights = "pg1 get,cleanup,list,verify\npg2 push\npg3 get,cleanup,list,verify\n"
	res, err = clean(as("pg3"), "pgwarm-wal-op cleanup "+rpSeg(8))
	if err != nil || !reflect.DeepEqual(res.Waiting, []string{"pg1"}) {
		t.Fatalf("after the promotion, pg1 (now a standby) must report first: %+v %v", res, err)
	}
	res, err = clean(as("pg1"), "pgwarm-wal-op cleanup "+rpSeg(7))
	if err != nil || !reflect.DeepEqual(res.Removed, []string{rpSeg(4), rpSeg(5), rpSeg(6)}) {
		t.Fatalf("pg1 reported, pg2's record retired: %+v %v", res, err)
	}
	// The client's standbys= can only add standbys to wait for.
	res, err = clean(as("pg3"), "pgwarm-wal-op cleanup "+rpSeg(8)+" standbys=pg3,arch")
	if err != nil || len(res.Removed) != 0 || !reflect.DeepEqual(res.Waiting, []string{"arch"}) {
		t.Fatalf("standbys=arch: %+v %v", res, err)
	}
	// --allow names no key: a request speaking for a standby is refused.
	allow, _ := ParseRights("get,cleanup")
	if _, err := clean(Config{Root: root, Allow: allow}, "pgwarm-wal-op cleanup "+rpSeg(8)+" as=pg3"); archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), "serve --rights FILE --as pg3") {
		t.Fatalf("as= under --allow: %v", err)
	}
	// A key name that cannot be a file name records nothing.
	cfg := as("../pg3")
	rights += "../pg3 get,cleanup\n"
	if _, err := clean(cfg, "pgwarm-wal-op cleanup "+rpSeg(8)); archive.KindOf(err) != archive.KindDenied {
		t.Fatalf("--as ../pg3: %v", err)
	}
}

func TestParseCleanupRequest(t *testing.T) {
	r, err := archive.ParseRequest("pgwarm-wal-op cleanup " + rpSeg(3) + " root=/srv/a as=pg2 standbys=pg2,pg3.example streaming dry-run")
	if err != nil || r.As != "pg2" || !reflect.DeepEqual(r.Standbys, []string{"pg2", "pg3.example"}) || !r.Streaming || !r.DryRun {
		t.Fatalf("%+v %v", r, err)
	}
	if again, err := archive.ParseRequest(r.String()); err != nil || !reflect.DeepEqual(again, r) {
		t.Fatalf("round trip %q: %+v %v", r.String(), again, err)
	}
	for _, bad := range []string{
		"as=../x", "as=", "as=a as=b", "standbys=pg2,", "standbys=pg2,../x", "standbys=", "standbys=a standbys=b", "as=.tmp-x",
	} {
		if _, err := archive.ParseRequest("pgwarm-wal-op cleanup " + rpSeg(3) + " " + bad); archive.KindOf(err) != archive.KindBadInput {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
	if _, err := archive.ParseRequest("pgwarm-wal-op get " + rpSeg(3) + " as=pg2"); err == nil {
		t.Error("as= accepted on get")
	}
}
