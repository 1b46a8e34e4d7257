package segname

import "testing"

// A restart point is believed only up to the newest segment archived on
// its own timeline; a later timeline's files, or a .partial, do not make a
// far-future name plausible, and a timeline with nothing archived has no
// plausible restart point at all.
func TestCheckRestartPoint(t *testing.T) {
	all := mustParse(t,
		"00000002.history",
		"000000010000000000000001", "000000010000000000000002",
		"000000010000000000000003.partial",
		"000000020000000000000003", "000000020000000000000009.00000028.backup",
		"0000000200000001000000FF",
	)
	for _, c := range []struct {
		point, newest string
		beyond        bool
	}{
		{"000000010000000000000002", "000000010000000000000003", false},
		{"000000010000000000000003", "000000010000000000000003", false}, // the .partial's slot
		{"000000010000000000000004", "000000010000000000000003", true},
		{"0000000100000001000000FF", "000000010000000000000003", true}, // TLI 2 has it, TLI 1 does not
		{"0000000200000001000000FF", "0000000200000001000000FF", false},
		{"000000020000000200000000", "0000000200000001000000FF", true},
		{"000000020000000000000009", "0000000200000001000000FF", false}, // backup files are no segments, but it is before the newest
		{"000000030000000000000001", "", true},
	} {
		got := CheckRestartPoint(all, mustParse(t, c.point)[0])
		if got.Beyond != c.beyond || got.HasNewest != (c.newest != "") || c.newest != "" && got.Newest.String() != c.newest {
			t.Errorf("%s: %+v, want beyond %v newest %q", c.point, got, c.beyond, c.newest)
		}
	}
}

func TestBefore(t *testing.T) {
	n := mustParse(t, "000000010000000100000000", "0000000100000000000000FF", "000000020000000000000001")
	if !Before(n[1], n[0]) || Before(n[0], n[1]) || !Before(n[0], n[2]) || Before(n[2], n[0]) || Before(n[0], n[0]) {
		t.Fatal("Before must order by timeline, then log, then segment")
	}
}
