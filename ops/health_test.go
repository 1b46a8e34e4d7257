package ops

import (
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/inventory"
)

func lsn(s string) LSN {
	l, err := ParseLSN(s)
	if err != nil {
		panic(err)
	}
	return l
}

func ts(sec int) *time.Time {
	t := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second)
	return &t
}

func primaryRow() HostStatus {
	return HostStatus{Name: "pg1", Address: "10.0.0.1", InventoryRole: inventory.RolePrimary, Role: "primary", State: StateRunning,
		Timeline: 1, CurrentLSN: lsn("0/5000100"), SegSize: 16 << 20, ObservedAt: *ts(0),
		Archiver: &Archiver{Mode: "on", LastArchived: "000000010000000000000004", LastArchivedTime: ts(-5)}}
}

func standbyRow() HostStatus {
	return HostStatus{Name: "pg2", Address: "10.0.0.2", InventoryRole: inventory.RoleStandby, Role: "standby", State: StateRunning,
		Timeline: 1, ReplayedLSN: lsn("0/5000100"), ReceivedLSN: lsn("0/5000100"), Receiver: "streaming",
		LastReplayTime: ts(-3600), ObservedAt: *ts(0)}
}

func archiveRow() HostStatus {
	return HostStatus{Name: "arch", InventoryRole: inventory.RoleArchive, Role: "archive", State: StateUp,
		Archive: &Archive{Path: "/srv", Newest: "000000010000000000000004", FreeBytes: 50 << 30, TotalBytes: 100 << 30}}
}

func TestEvaluate(t *testing.T) {
	for _, c := range []struct {
		name   string
		mode   inventory.Mode
		edit   func(p, s, a *HostStatus)
		want   Health
		reason string // a substring of some problem; "" for none
	}{
		{"healthy streaming pair", inventory.ModeStreaming, func(p, s, a *HostStatus) {}, Healthy, ""},
		{"idle primary: caught up standby with old last replay is not lagging", inventory.ModeStreaming,
			func(p, s, a *HostStatus) {}, Healthy, ""},
		{"archiving failing", inventory.ModeStreaming, func(p, s, a *HostStatus) {
			p.Archiver.LastFailed, p.Archiver.LastFailedTime = "000000010000000000000005", ts(-1)
		}, Degraded, "archiving failing"},
		{"an old failure followed by success is fine", inventory.ModeStreaming, func(p, s, a *HostStatus) {
			p.Archiver.LastFailed, p.Archiver.LastFailedTime = "000000010000000000000003", ts(-60)
		}, Healthy, ""},
		{"archive_mode off", inventory.ModeStreaming, func(p, s, a *HostStatus) { p.Archiver.Mode = "off" }, Degraded, "archive_mode is off"},
		{"standby stopped", inventory.ModeStreaming, func(p, s, a *HostStatus) {
			*s = HostStatus{Name: "pg2", InventoryRole: inventory.RoleStandby, State: StateStopped}
		}, Degraded, "not running"},
		{"standby not streaming", inventory.ModeStreaming, func(p, s, a *HostStatus) { s.Receiver = "" }, Degraded, "not streaming"},
		{"standby paused", inventory.ModeStreaming, func(p, s, a *HostStatus) { s.ReplayPaused = true }, Degraded, "paused"},
		{"lag beyond bytes", inventory.ModeStreaming, func(p, s, a *HostStatus) { p.CurrentLSN = lsn("0/A000000") }, Degraded, "behind what it could"},
		{"lag beyond time (from replay_lag)", inventory.ModeStreaming, func(p, s, a *HostStatus) {
			p.CurrentLSN = lsn("0/5000200")
			lag := 400.0
			p.Senders = []Sender{{Addr: "10.0.0.2", ReplayLag: &lag}}
		}, Degraded, "400 s behind"},
		{"warm: primary wrote since the last archived segment, standby reached it", inventory.ModeWarm, func(p, s, a *HostStatus) {
			p.CurrentLSN = lsn("0/5F00000")
			s.ReplayedLSN, s.Receiver = lsn("0/4000200"), ""
		}, Healthy, ""},
		{"warm: standby short of the last archived segment for long", inventory.ModeWarm, func(p, s, a *HostStatus) {
			s.ReplayedLSN, s.Receiver = lsn("0/3FFF000"), ""
		}, Degraded, "3600 s behind"},
		{"primary down, nothing took over", inventory.ModeStreaming, func(p, s, a *HostStatus) {
			*p = HostStatus{Name: "pg1", InventoryRole: inventory.RolePrimary, State: StateUnreachable, Error: "dial tcp: timeout"}
		}, Failed, "unreachable"},
		{"after failover: old primary down, standby promoted", inventory.ModeStreaming, func(p, s, a *HostStatus) {
			*p = HostStatus{Name: "pg1", InventoryRole: inventory.RolePrimary, State: StateUnreachable, Error: "dial tcp: timeout"}
			s.Role, s.CurrentLSN, s.Timeline, s.Archiver = "primary", lsn("0/6000000"), 2, &Archiver{Mode: "on"}
		}, Degraded, "inventory says standby"},
		{"two primaries", inventory.ModeStreaming, func(p, s, a *HostStatus) {
			s.Role, s.CurrentLSN, s.Timeline, s.Archiver = "primary", lsn("0/6000000"), 2, &Archiver{Mode: "on"}
		}, Degraded, "split brain"},
		{"archive almost full", inventory.ModeStreaming, func(p, s, a *HostStatus) { a.Archive.FreeBytes = 5 << 30 }, Degraded, "below 10%"},
		{"archive unreachable", inventory.ModeStreaming, func(p, s, a *HostStatus) { a.State, a.Archive = StateUnreachable, nil }, Degraded, "unreachable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &Report{Hosts: []HostStatus{primaryRow(), standbyRow(), archiveRow()}}
			c.edit(&r.Hosts[0], &r.Hosts[1], &r.Hosts[2])
			Evaluate(r, c.mode, DefaultThresholds())
			var msgs []string
			for _, h := range r.Hosts {
				for _, p := range h.Problems {
					msgs = append(msgs, h.Name+": "+p.Msg)
				}
			}
			all := strings.Join(msgs, "\n")
			if r.Health != c.want {
				t.Errorf("health %s, want %s; problems:\n%s", r.Health, c.want, all)
			}
			if c.reason == "" && len(msgs) > 0 {
				t.Errorf("unexpected problems:\n%s", all)
			}
			if c.reason != "" && !strings.Contains(all, c.reason) {
				t.Errorf("no problem mentions %q:\n%s", c.reason, all)
			}
		})
	}
}

func TestLagIdle(t *testing.T) {
	p, s := primaryRow(), standbyRow()
	// Caught up, last commit an hour ago: 0 s, not 3600.
	if l := Lag(p, s, inventory.ModeStreaming); l.Bytes != 0 || *l.Seconds != 0 {
		t.Errorf("idle caught-up lag = %d bytes %v s", l.Bytes, *l.Seconds)
	}
	// Behind without a sender row: now - last replay.
	p.CurrentLSN = lsn("0/5000200")
	if l := Lag(p, s, inventory.ModeStreaming); l.Bytes != 0x100 || *l.Seconds != 3600 {
		t.Errorf("behind lag = %d bytes %v s", l.Bytes, *l.Seconds)
	}
}

func TestParsePostgres(t *testing.T) {
	var row HostStatus
	ParsePostgres(&row, hostResult("pgctl 0\n"+`{"version":150018,"in_recovery":true,"now":1767268800.5,"current_lsn":null,`+
		`"received_lsn":"0/5000100","replayed_lsn":"0/50000F0","replay_ts":1767268790,"replay_paused":false,"timeline":2,`+
		`"receiver":"streaming","seg_size":16777216,"archive_mode":"on","archiver":{"archived":0,"last_archived":null,`+
		`"last_archived_ts":null,"failed":0,"last_failed":null,"last_failed_ts":null},"senders":null}`+"\n", 0))
	if row.State != StateRunning || row.Role != "standby" || row.Timeline != 2 || row.ReplayedLSN != lsn("0/50000F0") ||
		row.LastReplayTime == nil || row.ObservedAt.Sub(*row.LastReplayTime) != 10500*time.Millisecond || row.Archiver != nil {
		t.Errorf("standby row: %+v", row)
	}
	row = HostStatus{}
	ParsePostgres(&row, hostResult("pgctl 3\nsignal\n", 0))
	if row.State != StateStopped || row.Role != "standby" {
		t.Errorf("stopped standby: %+v", row)
	}
	row = HostStatus{}
	ParsePostgres(&row, hostResult("pgctl 4\n", 0))
	if row.State != StateNoCluster || row.Role != "" {
		t.Errorf("empty data dir: %+v", row)
	}
	row = HostStatus{}
	ParsePostgres(&row, hostResult("pgctl 0\n", 2))
	if row.Error == "" {
		t.Errorf("psql failure not reported: %+v", row)
	}
}
