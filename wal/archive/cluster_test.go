package archive

import "testing"

// restore's --system-identifier and --segment-size: only a decimal
// identifier and a valid wal_segment_size are taken; anything else is bad
// input (exit 2), never a cluster that checks nothing.
func TestParseClusterRefuses(t *testing.T) {
	for _, tc := range []struct{ sysid, seg string }{
		{"0", ""}, {"-1", ""}, {"7e18", ""}, {"123 456", ""}, {"1'; rm -rf /", ""}, {"1\n2", ""},
		{"18446744073709551616", ""}, // one past uint64
		{"", "0"}, {"", "3145728"}, {"", "2147483648"}, {"", "16MB"}, {"", "524288"}, {"", "4294967312"},
	} {
		if c, err := ParseCluster(tc.sysid, tc.seg); err == nil || KindOf(err) != KindBadInput {
			t.Errorf("%q %q: %+v, %v; want bad input", tc.sysid, tc.seg, c, err)
		}
	}
	c, err := ParseCluster("7713065586891178360", "16777216")
	if err != nil || c.SysID != 7713065586891178360 || c.SegSize != 16<<20 {
		t.Errorf("a real cluster: %+v, %v", c, err)
	}
	if c, err := ParseCluster("", ""); err != nil || c != (Cluster{}) {
		t.Errorf("no flags: %+v, %v", c, err)
	}
}
