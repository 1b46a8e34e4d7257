package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

const (
	sysA = 7300000000000000001
	sysB = 7300000000000000002
	seg1 = "000000010000000000000001"
	seg2 = "000000010000000000000002"
	seg3 = "000000010000000000000003"
	seg5 = "000000010000000000000005"
)

// TestArchiveSuite runs the same archive behaviour against every backend:
// a plain path, a file:// URL, and ssh:// through pgwarm-wal serve.
func TestArchiveSuite(t *testing.T) {
	backends := []func(*testing.T) backend{
		localBackend, fileURLBackend,
		func(t *testing.T) backend { return sshBackend(t, suiteRights(1)) },
	}
	for _, mk := range backends {
		name := mk(t).name
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("ship restore round trip", func(t *testing.T) { suiteRoundTrip(t, mk(t)) })
			t.Run("duplicates", func(t *testing.T) { suiteDuplicates(t, mk(t)) })
			t.Run("corruption refused", func(t *testing.T) { suiteCorruption(t, mk(t)) })
			t.Run("foreign cluster", func(t *testing.T) { suiteForeign(t, mk(t)) })
			t.Run("marker", func(t *testing.T) { suiteMarker(t, mk(t)) })
			t.Run("cleanup and gaps", func(t *testing.T) { suiteCleanupGaps(t, mk(t)) })
			t.Run("bad input", func(t *testing.T) { suiteBadInput(t, mk(t)) })
			t.Run("wait and trigger", func(t *testing.T) { suiteWait(t, mk(t)) })
			t.Run("linger", func(t *testing.T) { suiteLinger(t, mk(t)) })
			t.Run("prefetch", func(t *testing.T) { suitePrefetch(t, mk(t)) })
			t.Run("contents by kind", func(t *testing.T) { suiteContentKinds(t, mk(t)) })
		})
	}
}

// suiteRights are the rights of the suite's ssh key while it writes
// timeline tli (a promotion moves them, as pgwarm promote does).
func suiteRights(tli int) string { return fmt.Sprintf("push@%d,get,cleanup,list,verify", tli) }

func suiteRoundTrip(t *testing.T, b backend) {
	src := t.TempDir()
	for i, n := range []string{seg1, seg2, seg3} {
		p := writeFile(t, src, n, fakeSegment(n, sysA, int64(i)))
		b.run(t, "ship", "--archive", b.url, p, n).want(t, 0)
	}
	hist := writeFile(t, src, "00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	b.grant(t, suiteRights(2)) // promoted
	b.run(t, "ship", "--archive", b.url, hist, "00000002.history").want(t, 0)
	for _, c := range []string{"gzip", "none"} {
		n := map[string]string{"gzip": "000000020000000000000003", "none": "000000020000000000000004"}[c]
		p := writeFile(t, src, n, fakeSegment(n, sysA, 9))
		b.run(t, "ship", "--compression", c, "--archive", b.url, p, n).want(t, 0)
	}

	dst := t.TempDir()
	for _, n := range []string{seg1, seg2, seg3, "00000002.history", "000000020000000000000003", "000000020000000000000004"} {
		out := filepath.Join(dst, "RECOVERYXLOG")
		b.run(t, "restore", "--archive", b.url, n, out).want(t, 0)
		got, _ := os.ReadFile(out)
		want, _ := os.ReadFile(filepath.Join(src, n))
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: restored content differs", n)
		}
	}
	// Compression really happened: the busy fake segment is ~5% random.
	st, err := os.Stat(filepath.Join(b.root, "wal", seg1))
	if err != nil || st.Size() > testSegSize/5 {
		t.Fatalf("stored zstd segment: %v size %d", err, st.Size())
	}
	r := b.run(t, "restore", "--archive", b.url, seg5, filepath.Join(dst, "x"))
	r.want(t, 1, "pgwarm-wal restore "+seg5+":", "not in the archive")
	if r.took > 2*time.Second {
		t.Fatalf("missing file took %v; must answer at once", r.took)
	}
	if _, err := os.Stat(filepath.Join(dst, "x")); err == nil {
		t.Fatal("DEST created for a missing file")
	}
	ls := b.run(t, "list", "--archive", b.url)
	ls.want(t, 0)
	for _, n := range []string{seg1, seg3, "00000002.history", "gzip", "none", "7300000000000000001"} {
		if !strings.Contains(ls.stdout, n) {
			t.Fatalf("list lacks %s:\n%s", n, ls.stdout)
		}
	}
	b.run(t, "verify", "--archive", b.url).want(t, 0)
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func suiteDuplicates(t *testing.T, b backend) {
	src := t.TempDir()
	orig := fakeSegment(seg1, sysA, 1)
	p := writeFile(t, src, seg1, orig)
	b.run(t, "ship", "--archive", b.url, p, seg1).want(t, 0)
	// PostgreSQL retries after a crash: the same bytes again is success,
	// even with another compression.
	b.run(t, "ship", "--archive", b.url, p, seg1).want(t, 0)
	b.run(t, "ship", "--compression", "gzip", "--archive", b.url, p, seg1).want(t, 0)

	stored := filepath.Join(b.root, "wal", seg1)
	before, _ := os.ReadFile(stored)
	other := fakeSegment(seg1, sysA, 2)
	p2 := writeFile(t, t.TempDir(), seg1, other)
	b.run(t, "ship", "--archive", b.url, p2, seg1).want(t, 3,
		"pgwarm-wal ship "+seg1+":", "different content", sum(orig), sum(other))
	after, _ := os.ReadFile(stored)
	if !bytes.Equal(before, after) {
		t.Fatal("archive changed by a conflicting ship")
	}

	h1 := writeFile(t, src, "00000002.history", []byte("1\t0/3000000\tbefore\n"))
	b.grant(t, suiteRights(2))
	b.run(t, "ship", "--archive", b.url, h1, "00000002.history").want(t, 0)
	b.run(t, "ship", "--archive", b.url, h1, "00000002.history").want(t, 0)
	h2 := writeFile(t, t.TempDir(), "00000002.history", []byte("1\t0/4000000\tother promotion\n"))
	b.run(t, "ship", "--archive", b.url, h2, "00000002.history").want(t, 3, "history files are never replaced")
}

func suiteCorruption(t *testing.T, b backend) {
	src := t.TempDir()
	p := writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1))
	b.run(t, "ship", "--archive", b.url, p, seg1).want(t, 0)
	stored := filepath.Join(b.root, "wal", seg1)
	raw, _ := os.ReadFile(stored)
	raw[len(raw)/2] ^= 0x01 // one bit of rot in the body
	if err := os.WriteFile(stored, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	b.run(t, "restore", "--archive", b.url, seg1, dest).want(t, 4, "refusing", "corrupt")
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("corrupt file handed to PostgreSQL")
	}
	v := b.run(t, "verify", "--archive", b.url)
	v.want(t, 4)
	if !strings.Contains(v.stdout, seg1) {
		t.Fatalf("verify does not name the file:\n%s", v.stdout)
	}
	// A header claiming 1 GiB for a segment (its checksums made to agree,
	// as a hostile writer would) is refused before restore allocates it.
	p4 := writeFile(t, src, seg2, fakeSegment(seg2, sysA, 2))
	b.run(t, "ship", "--archive", b.url, p4, seg2).want(t, 0)
	stored2 := filepath.Join(b.root, "wal", seg2)
	raw2, _ := os.ReadFile(stored2)
	h2, err := walfile.UnmarshalHeader(raw2)
	if err != nil {
		t.Fatal(err)
	}
	h2.Size = walfile.MaxContentSize
	copy(raw2, h2.Marshal())
	if err := os.WriteFile(stored2, raw2, 0o600); err != nil {
		t.Fatal(err)
	}
	b.run(t, "restore", "--archive", b.url, seg2, dest).want(t, 4, "refusing", "would be 1073741824 bytes")
	// A segment stored under the wrong name is caught by its page address.
	p3 := writeFile(t, src, "copy", fakeSegment(seg3, sysA, 3))
	b.run(t, "ship", "--archive", b.url, p3, seg2).want(t, 2, "does not contain")
}

func suiteForeign(t *testing.T, b backend) {
	src := t.TempDir()
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1)), seg1).want(t, 0)
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg2, fakeSegment(seg2, sysB, 2)), seg2).want(t, 5,
		"7300000000000000002", "7300000000000000001", "cluster")
	if _, err := os.Stat(filepath.Join(b.root, "wal", seg2)); err == nil {
		t.Fatal("foreign segment stored")
	}
	// One that got in anyway (copied in by hand, an archive directory
	// reused) is intact, so only the binding tells: restore refuses it,
	// checked beside the files (Local, or serve on the archive host).
	other := t.TempDir()
	runBin(t, nil, nil, "ship", "--archive", other, writeFile(t, src, seg2, fakeSegment(seg2, sysB, 2)), seg2).want(t, 0)
	planted, err := os.ReadFile(filepath.Join(other, "wal", seg2))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(b.root, "wal"), seg2, planted)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	b.run(t, "restore", "--archive", b.url, seg2, dest).want(t, 5, "7300000000000000002", "7300000000000000001", "pgwarm-archive.json")
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("a segment of another cluster was handed to PostgreSQL")
	}
	v := b.run(t, "verify", "--archive", b.url)
	v.want(t, 5)
	if !strings.Contains(v.stdout, seg2) {
		t.Fatalf("verify does not name %s:\n%s", seg2, v.stdout)
	}
}

func suiteMarker(t *testing.T, b backend) {
	src := t.TempDir()
	p := writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1))
	b.run(t, "ship", "--require-marker", "mounted", "--archive", b.url, p, seg1).want(t, 6, "mounted", "missing")
	if _, err := os.Stat(filepath.Join(b.root, "wal")); err == nil {
		t.Fatal("archive touched without its marker")
	}
	writeFile(t, b.root, "mounted", nil)
	b.run(t, "ship", "--require-marker", "mounted", "--archive", b.url, p, seg1).want(t, 0)
	// The global flag position works too.
	b.run(t, "--require-marker", "mounted", "ship", "--archive", b.url, p, seg1).want(t, 0)
	b.run(t, "ship", "--require-marker", "../etc", "--archive", b.url, p, seg1).want(t, 2)
}

func suiteCleanupGaps(t *testing.T, b backend) {
	src := t.TempDir()
	names := []string{seg1, seg2, seg3, seg5, "000000010000000000000003.partial"}
	for i, n := range names {
		if strings.HasSuffix(n, ".partial") {
			b.grant(t, suiteRights(2)) // the promoted primary archives the .partial
		}
		b.run(t, "ship", "--archive", b.url, writeFile(t, src, n, fakeSegment(n, sysA, int64(i))), n).want(t, 0)
	}
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, "00000002.history", []byte("1\t0/3000000\tno recovery target specified\n")), "00000002.history").want(t, 0)
	v := b.run(t, "verify", "--archive", b.url)
	v.want(t, 10)
	if !strings.Contains(v.stdout, "000000010000000000000004 is missing") {
		t.Fatalf("gap not reported:\n%s", v.stdout)
	}
	// A name beyond the newest archived segment would empty the timeline.
	b.run(t, "cleanup", "--archive", b.url, "0000000100000000000000FF").want(t, 2, "beyond "+seg5+", the newest segment archived on timeline 1", "nothing removed")
	dry := b.run(t, "cleanup", "--dry-run", "--archive", b.url, seg3)
	dry.want(t, 0)
	if !strings.Contains(dry.stdout, "would remove "+seg1) || !strings.Contains(dry.stdout, seg2) {
		t.Fatalf("dry run:\n%s", dry.stdout)
	}
	if _, err := os.Stat(filepath.Join(b.root, "wal", seg1)); err != nil {
		t.Fatal("dry run removed a file")
	}
	b.run(t, "cleanup", "--archive", b.url, seg3).want(t, 0)
	for _, n := range []string{seg1, seg2} {
		if _, err := os.Stat(filepath.Join(b.root, "wal", n)); err == nil {
			t.Fatalf("%s not removed", n)
		}
	}
	for _, n := range []string{seg3, seg5, "00000002.history", "000000010000000000000003.partial"} {
		if _, err := os.Stat(filepath.Join(b.root, "wal", n)); err != nil {
			t.Fatalf("%s removed: %v", n, err)
		}
	}
	b.run(t, "cleanup", "--archive", b.url, "00000001.history").want(t, 2)
}

func suiteBadInput(t *testing.T, b backend) {
	src := t.TempDir()
	p := writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1))
	b.run(t, "ship", "--archive", b.url, p, "../../etc/passwd").want(t, 2, "not a WAL file name")
	b.run(t, "ship", "--archive", b.url, p, "000000010000000000000001x").want(t, 2)
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, "junk", []byte("hello")), seg1).want(t, 2, "not a WAL segment")
	b.run(t, "ship", "--archive", b.url, filepath.Join(src, "absent"), seg1).want(t, 2)
	b.run(t, "ship", p, seg1).want(t, 2, "--archive")
	b.run(t, "ship", "--compression", "lz4", "--archive", b.url, p, seg1).want(t, 2)
	b.run(t, "restore", "--archive", b.url, seg1).want(t, 2)
}

func suiteWait(t *testing.T, b backend) {
	src := t.TempDir()
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1)), seg1).want(t, 0)
	trigger := filepath.Join(t.TempDir(), "promote.trigger")
	dst := t.TempDir()

	// An archived file is restored at once.
	b.run(t, "restore", "--wait", "--trigger", trigger, "--archive", b.url, seg1, filepath.Join(dst, "a")).want(t, 0)

	// History probes and other timelines do not wait.
	for _, n := range []string{"00000002.history", "000000020000000000000002"} {
		r := b.run(t, "restore", "--wait", "--trigger", trigger, "--archive", b.url, n, filepath.Join(dst, "h"))
		r.want(t, 1)
		if r.took > 3*time.Second {
			t.Fatalf("%s probe took %v", n, r.took)
		}
	}

	// The next segment is noticed within about a second of arriving.
	p2 := writeFile(t, src, seg2, fakeSegment(seg2, sysA, 2))
	shipped := make(chan time.Time, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		b.run(t, "ship", "--archive", b.url, p2, seg2)
		shipped <- time.Now()
	}()
	r := b.run(t, "restore", "--wait", "--trigger", trigger, "--archive", b.url, seg2, filepath.Join(dst, "b"))
	restored := time.Now()
	r.want(t, 0)
	if lag := restored.Sub(<-shipped); lag > time.Second {
		t.Fatalf("segment noticed %v after it was archived; want under a second", lag)
	}
	if r.took < 600*time.Millisecond {
		t.Fatalf("restore returned after %v, before the segment was shipped", r.took)
	}
	t.Logf("waited %v for %s", r.took, seg2)

	// Smart trigger: archived segments are still replayed; then recovery ends.
	if err := os.WriteFile(trigger, []byte("smart\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.run(t, "restore", "--wait", "--trigger", trigger, "--archive", b.url, seg2, filepath.Join(dst, "c")).want(t, 0)
	r = b.run(t, "restore", "--wait", "--trigger", trigger, "--archive", b.url, seg3, filepath.Join(dst, "d"))
	r.want(t, 1, "trigger file")
	// PostgreSQL may ask again while it finishes recovery: still no waiting.
	r = b.run(t, "restore", "--wait", "--trigger", trigger, "--archive", b.url, seg3, filepath.Join(dst, "d"))
	r.want(t, 1, "trigger file")
	if r.took > 3*time.Second {
		t.Fatalf("second probe after trigger took %v", r.took)
	}
	// Fast trigger: stop now even though seg2 is archived.
	if err := os.WriteFile(trigger, []byte("fast"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.run(t, "restore", "--wait", "--trigger", trigger, "--archive", b.url, seg2, filepath.Join(dst, "e")).want(t, 1, "fast")
	if _, err := os.Stat(filepath.Join(dst, "e")); err == nil {
		t.Fatal("fast trigger still restored")
	}
	b.run(t, "restore", "--wait", "--archive", b.url, seg2, filepath.Join(dst, "f")).want(t, 2, "--trigger")
}

// suiteLinger: standby mode's bounded wait (restore_command --linger).
func suiteLinger(t *testing.T, b backend) {
	src := t.TempDir()
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1)), seg1).want(t, 0)
	// DEST as PostgreSQL gives it: pg_wal/RECOVERYXLOG under the data directory.
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(data, "pg_wal", "RECOVERYXLOG")
	restore := func(name string, extra ...string) result {
		return b.run(t, append(append([]string{"restore", "--archive", b.url}, extra...), name, dest)...)
	}

	// Archived: at once. A history probe never lingers.
	restore(seg1, "--linger", "30s").want(t, 0)
	h := restore("00000002.history", "--linger", "30s")
	h.want(t, 1)
	if h.took > 10*time.Second {
		t.Fatalf("history probe lingered %v", h.took)
	}
	// Not archived: waits for the segment and hands it over once it lands.
	p2 := writeFile(t, src, seg2, fakeSegment(seg2, sysA, 2))
	go func() {
		time.Sleep(300 * time.Millisecond)
		b.run(t, "ship", "--archive", b.url, p2, seg2)
	}()
	r := restore(seg2, "--linger", "30s")
	r.want(t, 0)
	if r.took < 250*time.Millisecond {
		t.Fatalf("restore of %s returned after %v, before it was shipped", seg2, r.took)
	}
	if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, fakeSegment(seg2, sysA, 2)) {
		t.Fatalf("restored %s differs (err %v)", seg2, err)
	}
	// Never landing: exit 1 once the linger is over, so PostgreSQL's loop runs.
	r = restore(seg3, "--linger", "500ms")
	r.want(t, 1)
	if r.took < 450*time.Millisecond {
		t.Fatalf("gave up on %s after %v, before --linger 500ms", seg3, r.took)
	}
	// A promotion cuts the wait short: pg_ctl promote's file in the data
	// directory, or the trigger file.
	trigger := filepath.Join(t.TempDir(), "promote.trigger")
	for _, f := range []string{filepath.Join(data, "promote"), trigger} {
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = os.WriteFile(f, nil, 0o600)
		}()
		r := restore(seg3, "--linger", "30s", "--trigger", trigger)
		r.want(t, 1, "promotion")
		// Not the linger, nor the 5 s an ssh call waits for a killed
		// client's pipes (which a shared connection keeps open).
		if r.took > 3*time.Second {
			t.Fatalf("%s appeared but restore lingered %v", f, r.took)
		}
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	// PostgreSQL replays all it can still get before it ends recovery: a
	// promotion stops the waiting, not the handing over of archived segments.
	if err := os.WriteFile(filepath.Join(data, "promote"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	restore(seg2, "--linger", "30s", "--trigger", trigger).want(t, 0)
	if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, fakeSegment(seg2, sysA, 2)) {
		t.Fatalf("restored %s during a promotion differs (err %v)", seg2, err)
	}
	restore(seg3, "--linger", "30s", "--trigger", trigger).want(t, 1, "promotion")
	restore(seg3, "--linger", "1s", "--wait", "--trigger", trigger).want(t, 2, "--linger")
}

// suitePrefetch: once two consecutive segments came back at once (the
// standby is behind), restore fetches the next ones into the spool, and
// later restores take them from there (proved by removing them from the
// archive first); a damaged spool entry is fetched again; what is behind
// the request leaves the spool; nothing is fetched ahead while promoting.
func suitePrefetch(t *testing.T, b backend) {
	src := t.TempDir()
	var names []string
	for i := 1; i <= 7; i++ {
		n := fmt.Sprintf("00000001000000000000000%d", i)
		names = append(names, n)
		b.run(t, "ship", "--archive", b.url, writeFile(t, src, n, fakeSegment(n, sysA, int64(i))), n).want(t, 0)
	}
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(data, "pg_wal", "RECOVERYXLOG")
	spool := filepath.Join(t.TempDir(), "prefetch")
	restore := func(i int) result {
		t.Helper()
		r := b.run(t, "restore", "--archive", b.url, "--linger", "30s", "--prefetch", "2", "--spool", spool, names[i-1], dest)
		if got, err := os.ReadFile(dest); r.code == 0 && (err != nil || !bytes.Equal(got, fakeSegment(names[i-1], sysA, int64(i)))) {
			t.Fatalf("restored %s differs (err %v)", names[i-1], err)
		}
		return r
	}
	spooled := func() map[string]string {
		out := map[string]string{}
		filepath.Walk(spool, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() && len(info.Name()) == 24 {
				out[info.Name()] = p
			}
			return nil
		})
		return out
	}
	want := func(after string, ns ...int) {
		t.Helper()
		got := spooled()
		var w []string
		for _, i := range ns {
			w = append(w, names[i-1])
			delete(got, names[i-1])
		}
		if len(got) != 0 || len(spooled()) != len(ns) {
			t.Fatalf("spool after %s: %v, want %v", after, spooled(), w)
		}
	}
	restore(1).want(t, 0)
	want("one quick answer")
	restore(2).want(t, 0)
	want("two in a row", 3, 4)
	// 3 comes from the spool: the archive no longer has it.
	if err := os.Remove(filepath.Join(b.root, "wal", names[2])); err != nil {
		t.Fatal(err)
	}
	restore(3).want(t, 0)
	want("a spool hit", 4)
	// A damaged spool entry is not handed over: 4 is fetched again, and the
	// next two ahead.
	if err := os.WriteFile(spooled()[names[3]], []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	restore(4).want(t, 0)
	want("a damaged entry", 5, 6)
	// Promoting: PostgreSQL reads its last segment again and nothing after
	// it, so nothing is fetched ahead.
	for _, p := range spooled() {
		os.Remove(p)
	}
	if err := os.WriteFile(filepath.Join(data, "promote"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	restore(5).want(t, 0)
	want("a restore during a promotion")
	b.run(t, "restore", "--archive", b.url, "--prefetch", "2", names[0], dest).want(t, 2, "--spool")
}

// History and backup history files are checked as what their names say
// before they are stored, and before restore hands one to PostgreSQL (a
// history file it cannot parse stops a standby with FATAL).
func suiteContentKinds(t *testing.T, b backend) {
	src := t.TempDir()
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1)), seg1).want(t, 0)
	ship := func(name string, content []byte) result {
		return b.run(t, "ship", "--archive", b.url, writeFile(t, t.TempDir(), name, content), name)
	}
	stored := func(name string) bool { _, err := os.Stat(filepath.Join(b.root, "wal", name)); return err == nil }
	for _, c := range []struct {
		name    string
		content []byte
		why     string
	}{
		{"00000002.history", []byte("hello, this is not a history file\n"), "line 1"},
		{"00000002.history", fakeSegment(seg1, sysA, 2), "line 1"},
		{"00000003.history", []byte("1\t0/3000000\tok\n\n3\t0/5000000\tno\n"), "line 3"},
		{"00000002.history", nil, "no parent timeline"},
		{"000000010000000000000001.00000028.backup", []byte("LABEL: x\n"), "START WAL LOCATION"},
		{"000000010000000000000001.00000028.backup", fakeSegment(seg1, sysA, 3), "more than a backup history file can be"},
		{"000000010000000000000001.00000028.backup", []byte("START WAL LOCATION: 0/1000028 (file 000000010000000000000001)\n\x00\xd1"), "line 2 holds binary data"},
		{"000000010000000000000001.00000028.backup", []byte("START WAL LOCATION: 0/1000030 (file 000000010000000000000001)\n"), "not at offset 00000028"},
	} {
		n, _ := segname.Parse(c.name)
		b.grant(t, suiteRights(int(n.TLI))) // so what is checked is the content
		ship(c.name, c.content).want(t, 4, c.name, c.why)
		if stored(c.name) {
			t.Fatalf("%s stored with content that is not one", c.name)
		}
	}
	// What PostgreSQL writes is stored.
	b.grant(t, suiteRights(3))
	ship("00000003.history", []byte("1\t0/3000000\tno recovery target specified\n\n2\t0/5000000\tno recovery target specified\n")).want(t, 0)
	b.grant(t, suiteRights(1))
	ship("000000010000000000000001.00000028.backup", []byte("START WAL LOCATION: 0/1000028 (file 000000010000000000000001)\n"+
		"STOP WAL LOCATION: 0/1000100 (file 000000010000000000000001)\nCHECKPOINT LOCATION: 0/1000060\nBACKUP METHOD: streamed\n"+
		"BACKUP FROM: primary\nSTART TIME: 2026-12-03 08:00:00 UTC\nLABEL: pg_basebackup base backup\nSTART TIMELINE: 1\n"+
		"STOP TIME: 2026-12-03 08:00:01 UTC\nSTOP TIMELINE: 1\n")).want(t, 0)

	// A broken history file already in the archive (stored by an older
	// version, or planted on the archive host) is not handed to PostgreSQL.
	bad, _, err := walfile.Encode([]byte("garbage\n"), walfile.Zstd, walfile.PageInfo{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(b.root, "wal"), "00000004.history", bad)
	dest := filepath.Join(t.TempDir(), "RECOVERYHISTORY")
	b.run(t, "restore", "--archive", b.url, "00000004.history", dest).want(t, 4, "refusing to hand it to PostgreSQL", "line 1")
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("a broken history file was handed to PostgreSQL")
	}
	if v := b.run(t, "verify", "--archive", b.url); v.code != 4 || !strings.Contains(v.stdout, "00000004.history") {
		t.Fatalf("verify does not flag the broken history file: exit %d\n%s", v.code, v.stdout)
	}
	b.run(t, "restore", "--archive", b.url, "00000003.history", dest).want(t, 0)
}
