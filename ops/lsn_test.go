package ops

import "testing"

func TestParseLSN(t *testing.T) {
	for _, c := range []struct {
		in   string
		want LSN
		bad  bool
	}{
		{"0/0", 0, false},
		{"0/3000148", 0x3000148, false},
		{"16/B374D848", 0x16B374D848, false},
		{"FFFFFFFF/FFFFFFFF", 0xFFFFFFFFFFFFFFFF, false},
		{"3000148", 0, true},
		{"1/", 0, true},
		{"G/1", 0, true},
		{"100000000/0", 0, true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseLSN(c.in)
			if (err != nil) != c.bad || got != c.want {
				t.Fatalf("ParseLSN(%q) = %v, %v; want %v, bad=%v", c.in, got, err, c.want, c.bad)
			}
			if !c.bad && got.String() != c.in {
				t.Errorf("String() = %q, want %q", got.String(), c.in)
			}
		})
	}
}

func TestLSNSubAndSegments(t *testing.T) {
	a, _ := ParseLSN("1/0")
	b, _ := ParseLSN("0/FFFFFF00")
	if d := a.Sub(b); d != 0x100 {
		t.Errorf("1/0 - 0/FFFFFF00 = %d, want 256 (across the log boundary)", d)
	}
	if d := b.Sub(a); d != 0 {
		t.Errorf("behind gives %d, want 0", d)
	}
	const seg = 16 << 20
	for _, c := range []struct {
		name string
		end  string
		ok   bool
	}{
		{"000000010000000000000003", "0/4000000", true},
		{"0000000200000001000000FF", "2/0", true},
		{"000000010000000100000100", "", false}, // segment number past the log
		{"00000002.history", "", false},
		{"000000010000000000000003.00000028.backup", "", false},
	} {
		end, ok := SegmentEnd(c.name, seg)
		if ok != c.ok || (ok && end.String() != c.end) {
			t.Errorf("SegmentEnd(%s) = %v, %v; want %s, %v", c.name, end, ok, c.end, c.ok)
		}
	}
	if n := NewestSegment([]string{"000000020000000000000004", "000000010000000000000005", "000000010000000000000004"}); n != "000000010000000000000005" {
		t.Errorf("NewestSegment = %s", n)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"1024": 1024, "64MiB": 64 << 20, "64MB": 64 << 20, "1 GB": 1 << 30, "10kB": 10240} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "12 parsecs", "-1"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}
