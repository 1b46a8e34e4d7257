package ops

import (
	"strings"
	"testing"
)

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

// 9.6 has the xlog names: verify's canary and replay probe use them there.
func TestCanarySQLByVersion(t *testing.T) {
	old := strings.Join(append(canarySQL(90600, "tok"), replaySQL(90600, "tok")), "\n")
	for _, want := range []string{"pg_current_xlog_location()", "pg_xlogfile_name(", "pg_switch_xlog()", "pg_last_xlog_replay_location()", "id = 'tok'"} {
		if !strings.Contains(old, want) {
			t.Errorf("9.6 canary SQL lacks %s:\n%s", want, old)
		}
	}
	cur := strings.Join(append(canarySQL(150000, "tok"), replaySQL(150000, "tok")), "\n")
	if strings.Contains(cur, "xlog") || !strings.Contains(cur, "pg_switch_wal()") || !strings.Contains(cur, "pg_last_wal_replay_lsn()") {
		t.Errorf("15 canary SQL:\n%s", cur)
	}
}
