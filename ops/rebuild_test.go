package ops

import (
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/inventory"
)

func TestCheckRebuild(t *testing.T) {
	P, S := inventory.RolePrimary, inventory.RoleStandby
	for _, tc := range []struct {
		name string
		r    *Report
		want RebuildDecision
		err  string
	}{
		{"old primary stopped after failover", report(row("pg1", P, "primary", StateStopped, 0), row("pg2", S, "primary", StateRunning, 2)),
			RebuildDecision{Primary: "pg2"}, ""},
		{"old primary came back on an older timeline: fenced by rebuild", report(row("pg1", P, "primary", StateRunning, 1), row("pg2", S, "primary", StateRunning, 2)),
			RebuildDecision{Primary: "pg2", FenceStale: true}, ""},
		{"live primary", report(row("pg1", P, "primary", StateRunning, 1), row("pg2", S, "standby", StateRunning, 1)),
			RebuildDecision{}, "pg1: is the live primary"},
		{"two primaries on the same timeline: ambiguous", report(row("pg1", P, "primary", StateRunning, 2), row("pg2", S, "primary", StateRunning, 2)),
			RebuildDecision{}, "pg1: still accepts writes (timeline 2) and is not fenced"},
		{"target on the newer timeline", report(row("pg1", P, "primary", StateRunning, 3), row("pg2", S, "primary", StateRunning, 2)),
			RebuildDecision{}, "pg1: still accepts writes"},
		{"no primary anywhere", report(row("pg1", P, "primary", StateStopped, 0), row("pg2", S, "standby", StateRunning, 1)),
			RebuildDecision{}, "pg1: no other host accepts writes"},
		{"standby resync", report(row("pg1", P, "primary", StateRunning, 1), row("pg2", S, "standby", StateRunning, 1)),
			RebuildDecision{Primary: "pg1"}, ""},
		{"unreachable target", report(row("pg1", P, "", StateUnreachable, 0), row("pg2", S, "primary", StateRunning, 2)),
			RebuildDecision{}, "pg1: unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "pg1"
			if tc.name == "standby resync" {
				target = "pg2"
			}
			got, err := CheckRebuild(tc.r, target)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

const controlData = `pg_control version number:            1300
Database system identifier:           7312345678901234567
Database cluster state:               shut down
Latest checkpoint's TimeLineID:       2
wal_log_hints setting:                on
Data page checksum version:           0
`

func TestParseControlData(t *testing.T) {
	c := ParseControlData(controlData)
	if !c.Initialised || c.SystemID != "7312345678901234567" || !c.CleanlyShutDown() || !c.WalLogHints || c.Checksums || c.Timeline != 2 {
		t.Errorf("%+v", c)
	}
	if ParseControlData("").Initialised {
		t.Error("empty output is an initialised cluster")
	}
	crashed := ParseControlData(strings.Replace(controlData, "shut down", "in production", 1))
	if crashed.CleanlyShutDown() {
		t.Error("in production counted as a clean shutdown")
	}
}

func TestChooseMethod(t *testing.T) {
	ok := ParseControlData(controlData)
	noHints := ok
	noHints.WalLogHints = false
	checksums := noHints
	checksums.Checksums = true
	for _, tc := range []struct {
		name, req string
		v         inventory.Version
		c         ControlData
		sysid     string
		want, err string
	}{
		{"auto rewinds", "auto", 150000, ok, ok.SystemID, MethodRewind, ""},
		{"auto, other cluster", "auto", 150000, ok, "1", MethodBasebackup, ""},
		{"auto, empty directory", "auto", 150000, ControlData{}, "1", MethodBasebackup, ""},
		{"auto, no hint bits", "auto", 150000, noHints, ok.SystemID, MethodBasebackup, ""},
		{"checksums stand in for wal_log_hints", "auto", 150000, checksums, ok.SystemID, MethodRewind, ""},
		{"auto on 10", "auto", 100000, ok, ok.SystemID, MethodBasebackup, ""},
		{"rewind impossible", "rewind", 150000, noHints, ok.SystemID, "", "neither wal_log_hints nor data checksums"},
		{"basebackup always", "basebackup", 150000, ok, ok.SystemID, MethodBasebackup, ""},
		{"bad method", "copy", 150000, ok, ok.SystemID, "", `--method "copy"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why, err := ChooseMethod(tc.req, tc.v, tc.c, tc.sysid)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || why == "" {
				t.Errorf("got %q (%q), %v; want %q", got, why, err, tc.want)
			}
		})
	}
}

func TestDivergedFrom(t *testing.T) {
	const hist = "1\t0/3000000\tno recovery target specified\n\n2\t0/C000000\tno recovery target specified\n"
	for _, tc := range []struct {
		name string
		cd   ControlData
		want bool
	}{
		// pg_rewind 13 said "no rewind required" here; PostgreSQL then refused to start.
		{"shutdown checkpoint just past the fork", ControlData{Timeline: 2, Checkpoint: 0xC000028}, true},
		{"well past the fork", ControlData{Timeline: 2, Checkpoint: 0xD000060}, true},
		{"ancestor: stopped before the fork", ControlData{Timeline: 2, Checkpoint: 0xB000060}, false},
		{"older timeline, before its fork", ControlData{Timeline: 1, Checkpoint: 0x2000060}, false},
		{"older timeline, past its fork", ControlData{Timeline: 1, Checkpoint: 0x3000028}, true},
		{"timeline not in the history", ControlData{Timeline: 3, Checkpoint: 0xF000028}, false},
	} {
		fork, got := DivergedFrom(tc.cd, hist)
		if got != tc.want {
			t.Errorf("%s: diverged %v (fork %s), want %v", tc.name, got, fork, tc.want)
		}
	}
	if cd := ParseControlData("Latest checkpoint location:           0/C000028\nLatest checkpoint's TimeLineID:       2\n"); cd.Checkpoint != 0xC000028 || cd.Timeline != 2 {
		t.Errorf("ParseControlData: %+v", cd)
	}
}

// pg_rewind 15's stderr with --progress, not on a terminal.
const rewindOut = `pg_rewind: servers diverged at WAL location 0/40FFE888 on timeline 1
pg_rewind: rewinding from last common checkpoint at 0/39000110 on timeline 1
pg_rewind: need to copy 1166 MB (total source directory size is 2065 MB)
603648/1194298 kB (50%) copied
1194298/1194298 kB (100%) copied
pg_rewind: creating backup label and updating control file
pg_rewind: syncing target data directory
pg_rewind: Done!
`

func TestRewindSummary(t *testing.T) {
	got := strings.Join(RewindSummary(rewindOut), "\n")
	want := "servers diverged at WAL location 0/40FFE888 on timeline 1\n" +
		"rewinding from last common checkpoint at 0/39000110 on timeline 1\n" +
		"need to copy 1166 MB (total source directory size is 2065 MB)\n" +
		"Done!"
	if got != want {
		t.Errorf("RewindSummary:\n%s\nwant:\n%s", got, want)
	}
	// On a terminal the progress lines end in \r; a bare "no rewind required" is the verdict.
	if got := RewindSummary("pg_rewind: source and target cluster are on the same timeline\r1/1 kB copied\rpg_rewind: no rewind required\n"); len(got) != 1 || got[0] != "no rewind required" {
		t.Errorf("no rewind: %q", got)
	}
}

const rebuildInv = `cluster: main
postgres: {version: 15, layout: debian}
replication: {mode: hot, user: replicator, password_env: PGWARM_REPLICATION_PASSWORD}
archive: {host: arch, transport: ssh, path: /srv/pgwarm/main}
hosts:
  - {name: pg1, address: 10.0.0.1, role: primary}
  - {name: pg2, address: 10.0.0.2, role: standby}
  - {name: arch, address: 10.0.0.3, role: archive}
`

func TestStopScript(t *testing.T) {
	inv, err := inventory.Parse("pgwarm.yaml", []byte(rebuildInv), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fast, now := stopScript(inv, false), stopScript(inv, true)
	for _, s := range []string{fast, now} {
		if !strings.HasPrefix(s, "if ") || !strings.Contains(s, "pg_ctl -D /var/lib/postgresql/15/main status") {
			t.Errorf("stops without checking that the server runs:\n%s", s)
		}
	}
	// A stale primary: no shutdown checkpoint, no final archiving of its dead timeline.
	if !strings.Contains(now, "-m immediate stop") || strings.Contains(now, "pg_ctlcluster") {
		t.Errorf("immediate stop:\n%s", now)
	}
	if strings.Contains(fast, "immediate") || !strings.Contains(fast, "pg_ctlcluster 15 main stop") || !strings.Contains(fast, `echo "stopped fast ($how)"`) {
		t.Errorf("fast stop:\n%s", fast)
	}
}

func TestSingleUserScriptKeepsArchiving(t *testing.T) {
	inv, err := inventory.Parse("pgwarm.yaml", []byte(rebuildInv), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := singleUserScript(inv)
	// archive_mode=off would let its shutdown checkpoint remove WAL not
	// archived yet, which pg_rewind needs to read back from the fork.
	if strings.Contains(s, "archive_mode") || !strings.Contains(s, "--single") || !strings.Contains(s, "config_file=/etc/postgresql/15/main/postgresql.conf") ||
		!strings.Contains(s, "pg_controldata") {
		t.Errorf("single-user recovery:\n%s", s)
	}
	// It keeps every segment, so pg_rewind reads the target's WAL locally;
	// wal_keep_size from 13, wal_keep_segments before.
	if !strings.Contains(s, "wal_keep_size=2147483647") {
		t.Errorf("single-user recovery on 15 does not keep WAL:\n%s", s)
	}
	old, err := inventory.Parse("pgwarm.yaml", []byte(strings.Replace(rebuildInv, "version: 15", "version: 12", 1)), inventory.Options{})
	if err != nil || old.Postgres.Version.AtLeast(13) {
		t.Fatalf("12: %v", err)
	}
	if s := singleUserScript(old); !strings.Contains(s, "wal_keep_segments=2147483647") || strings.Contains(s, "wal_keep_size") {
		t.Errorf("single-user recovery on 12:\n%s", s)
	}
}

// Rebuild is a step list run by apply's executor: the method chosen
// decides which copy step runs, and a failed rewind under --method auto
// hands over to the base backup step.
func TestRebuildSteps(t *testing.T) {
	steps := rebuildSteps()
	var titles []string
	for _, s := range steps {
		titles = append(titles, s.Title())
	}
	if len(steps) != 8 || titles[1] != (rbLock{}).Title() || titles[4] != (rbRewind{}).Title() || titles[5] != (rbBaseBackup{}).Title() {
		t.Fatalf("steps %q", titles)
	}
	rb := &rebuildRun{method: MethodRewind}
	if !(rbRewind{}).ShouldRun(rb) || (rbBaseBackup{}).ShouldRun(rb) {
		t.Error("rewind chosen: the rewind step alone copies")
	}
	rb.method = MethodBasebackup // what a failed rewind under auto sets
	if (rbRewind{}).ShouldRun(rb) || !(rbBaseBackup{}).ShouldRun(rb) {
		t.Error("base backup chosen: the base backup step alone copies")
	}
}
