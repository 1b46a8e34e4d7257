package ops

import "testing"

func TestCanaryDecisions(t *testing.T) {
	c := lsn("0/5000100")
	for _, tc := range []struct {
		replayed       LSN
		queryable, row bool
		want           bool
	}{
		{lsn("0/5000100"), true, true, true},
		{lsn("0/5000100"), true, false, false}, // hot: the row must be visible too
		{lsn("0/50000FF"), true, true, false},
		{lsn("0/6000000"), false, false, true}, // warm: LSN only
		{lsn("0/4FFFFFF"), false, false, false},
	} {
		if got := CanaryReplayed(c, tc.replayed, tc.queryable, tc.row); got != tc.want {
			t.Errorf("CanaryReplayed(%s, %v, %v) = %v", tc.replayed, tc.queryable, tc.row, got)
		}
	}
	title := "postgres: 15/main: startup recovering 000000010000000000000007"
	if got := StartupReplayed(title, 16<<20); got != lsn("0/7000000") {
		t.Errorf("StartupReplayed = %s, want 0/7000000", got)
	}
	if got := StartupReplayed("postgres: 15/main: checkpointer", 16<<20); got != 0 {
		t.Errorf("StartupReplayed of a non-startup title = %s", got)
	}
}
