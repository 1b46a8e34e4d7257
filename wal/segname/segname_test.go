package segname

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := []struct {
		in   string
		want Name
	}{
		{"000000010000000000000003", Name{Kind: Segment, TLI: 1, Log: 0, Seg: 3}},
		{"0000000A00000001000000FF", Name{Kind: Segment, TLI: 10, Log: 1, Seg: 0xFF}},
		{"000000020000000000000005.partial", Name{Kind: Partial, TLI: 2, Seg: 5}},
		{"000000010000000000000002.00000028.backup", Name{Kind: Backup, TLI: 1, Seg: 2, Offset: 0x28}},
		{"00000002.history", Name{Kind: History, TLI: 2}},
	}
	for _, c := range good {
		t.Run(c.in, func(t *testing.T) {
			got, err := Parse(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v want %+v", got, c.want)
			}
			if got.String() != c.in {
				t.Fatalf("String() = %q", got.String())
			}
		})
	}
	bad := []string{"", "00000001000000000000000", "000000010000000000000003x", "00000001000000000000000g",
		"000000010000000000000003 ", "../00000001000000000000", "0000000100000000000000/3", "00000000.history",
		"000000000000000000000003", "00000001.HISTORY", "000000010000000000000003.PARTIAL", "000000010000000000000003.backup",
		"0000000100000000000000aa", "00000001.history/..", "RECOVERYXLOG", "archive_status"}
	for _, s := range bad {
		t.Run("bad "+s, func(t *testing.T) {
			if n, err := Parse(s); err == nil {
				t.Fatalf("Parse(%q) = %+v, want error", s, n)
			}
		})
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"000000010000000000000003", "00000002.history", "000000020000000000000005.partial",
		"000000010000000000000002.00000028.backup", "../../etc/passwd", "0000000100000000000000FF", "ffffffffffffffffffffffff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		// Canonical: exactly one spelling per file, and never a path.
		if n.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, n.String())
		}
		if strings.ContainsAny(s, "/\\\x00 ") || strings.Contains(s, "..") {
			t.Fatalf("Parse accepted a path-like name %q", s)
		}
		if n.TLI == 0 {
			t.Fatalf("timeline 0 accepted: %q", s)
		}
		again, err := Parse(n.String())
		if err != nil || again != n {
			t.Fatalf("round trip of %q: %+v %v", s, again, err)
		}
	})
}

func mustParse(t *testing.T, ss ...string) []Name {
	t.Helper()
	var out []Name
	for _, s := range ss {
		n, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func strs(ns []Name) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.String())
	}
	return out
}

func TestSegNoWrapsAtLogBoundary(t *testing.T) {
	n := mustParse(t, "0000000100000001000000FF")[0]
	if got := n.SegNo(DefaultSegSize); got != 0x1FF {
		t.Fatalf("segno %x", got)
	}
	if got := FromSegNo(1, 0x200, DefaultSegSize).String(); got != "000000010000000200000000" {
		t.Fatalf("next after FF = %s", got)
	}
	// 1 GiB segments: 4 per log.
	if got := FromSegNo(3, 5, 1<<30).String(); got != "000000030000000100000001" {
		t.Fatalf("1GiB segno 5 = %s", got)
	}
}

func TestCleanupSet(t *testing.T) {
	all := mustParse(t,
		"00000001.history", "00000002.history",
		"000000010000000000000001", "000000010000000000000002", "000000010000000000000003",
		"000000010000000000000002.00000028.backup", "000000010000000000000003.partial",
		"000000020000000000000001", "000000020000000000000003", "000000020000000000000004",
	)
	oldest := mustParse(t, "000000020000000000000004")[0]
	got := strs(CleanupSet(all, oldest))
	want := []string{"000000020000000000000001", "000000020000000000000003"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	got = strs(CleanupSet(all, mustParse(t, "000000010000000000000003")[0]))
	want = []string{"000000010000000000000001", "000000010000000000000002"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestGaps(t *testing.T) {
	names := mustParse(t,
		"000000010000000000000001", "000000010000000000000002", "000000010000000000000005",
		"0000000100000000000000FF", "000000010000000100000000",
		"00000002.history", "000000020000000100000000.partial", "000000020000000100000002",
	)
	gaps := Gaps(names, DefaultSegSize)
	var got []string
	for _, g := range gaps {
		got = append(got, g.First.String()+".."+g.Last.String())
	}
	want := []string{
		"000000010000000000000003..000000010000000000000004",
		"000000010000000000000006..0000000100000000000000FE",
		"000000020000000100000001..000000020000000100000001",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if c := gaps[1].Count(DefaultSegSize); c != 0xFE-6+1 {
		t.Fatalf("count %d", c)
	}
	if g := Gaps(mustParse(t, "000000010000000000000001", "000000010000000000000002"), DefaultSegSize); len(g) != 0 {
		t.Fatalf("contiguous run reported gaps %v", g)
	}
}

func TestWorthWaiting(t *testing.T) {
	arch := mustParse(t, "000000010000000000000003", "00000002.history", "000000020000000000000004")
	cases := []struct {
		want string
		wait bool
	}{
		{"000000020000000000000005", true},  // newest timeline: the next segment will come
		{"000000010000000000000005", false}, // superseded timeline
		{"000000030000000000000005", false}, // timeline that does not exist
		{"00000003.history", false},         // history probe
		{"000000020000000000000004.partial", false},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			if got := WorthWaiting(mustParse(t, c.want)[0], arch); got != c.wait {
				t.Fatalf("got %v", got)
			}
		})
	}
	if !WorthWaiting(mustParse(t, "000000010000000000000001")[0], nil) {
		t.Fatal("empty archive: a segment must be waited for")
	}
}
