package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type statusJSON struct {
	Primary string `json:"primary"`
	Health  string `json:"health"`
	Hosts   []struct {
		Name        string   `json:"name"`
		Role        string   `json:"role"`
		State       string   `json:"state"`
		Timeline    int      `json:"timeline"`
		CurrentLSN  string   `json:"current_lsn"`
		ReplayedLSN string   `json:"replayed_lsn"`
		LagBytes    *uint64  `json:"lag_bytes"`
		LagSeconds  *float64 `json:"lag_seconds"`
		Archive     *struct {
			Newest string `json:"newest_segment"`
			Free   uint64 `json:"free_bytes"`
		} `json:"archive"`
		Archiver *struct {
			LastArchived string `json:"last_archived_wal"`
		} `json:"archiver"`
		Problems []struct{ Message string } `json:"problems"`
	} `json:"hosts"`
}

func (p *opsPair) status(t *testing.T) (statusJSON, int) {
	t.Helper()
	out, code := p.pgwarm(t, "status", "--json", "--connect-timeout", "30s")
	var s statusJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return s, code
}

// TestOpsLab walks one pair through status, verify, promote and rebuild,
// in order, on its own lab instance.
func TestOpsLab(t *testing.T) {
	p := newOpsPair(t)
	// Something in the archive, so the archive columns have content.
	p.sql(t, "pg1", "SELECT pg_switch_wal()")
	waitFor(t, 30*time.Second, "pg1 archived a segment", func() bool {
		return p.sql(t, "pg1", "SELECT archived_count FROM pg_stat_archiver") != "0"
	})

	t.Run("status healthy", func(t *testing.T) {
		s, code := p.status(t)
		if code != 0 || s.Health != "ok" || s.Primary != "pg1" {
			t.Fatalf("status on a healthy pair: exit %d, health %s, primary %q", code, s.Health, s.Primary)
		}
		byName := map[string]int{}
		for i, h := range s.Hosts {
			byName[h.Name] = i
		}
		pg1, pg2, arch := s.Hosts[byName["pg1"]], s.Hosts[byName["pg2"]], s.Hosts[byName["arch"]]
		if pg1.Role != "primary" || pg1.State != "running" || pg1.CurrentLSN == "" || pg1.Timeline != 1 {
			t.Errorf("pg1 row: %+v", pg1)
		}
		if pg1.Archiver == nil || pg1.Archiver.LastArchived == "" {
			t.Errorf("pg1 archiver: %+v", pg1.Archiver)
		}
		if pg2.Role != "standby" || pg2.State != "running" || pg2.ReplayedLSN == "" || pg2.LagBytes == nil || pg2.LagSeconds == nil {
			t.Errorf("pg2 row: %+v", pg2)
		}
		if arch.Role != "archive" || arch.Archive == nil || arch.Archive.Newest == "" || arch.Archive.Free == 0 {
			t.Errorf("arch row: %+v (archive %+v)", arch, arch.Archive)
		}
		out, code := p.pgwarm(t, "status", "--connect-timeout", "30s")
		if code != 0 || !strings.Contains(out, "pair: ok (primary pg1)") {
			t.Errorf("status table: exit %d", code)
		}
	})

	t.Run("status pg2 stopped", func(t *testing.T) {
		p.exec(t, "pg2", "pg_ctlcluster "+itoa(p.lab.PGVersion)+" main stop -m fast")
		defer p.exec(t, "pg2", "pg_ctlcluster "+itoa(p.lab.PGVersion)+" main start")
		s, code := p.status(t)
		if code != 2 || s.Health != "degraded" {
			t.Fatalf("status with pg2 stopped: exit %d, health %s; want 2, degraded", code, s.Health)
		}
		out, _ := p.pgwarm(t, "status", "--connect-timeout", "30s")
		if !strings.Contains(out, "pg2: degraded: PostgreSQL is not running") {
			t.Errorf("no pg2 problem line in:\n%s", out)
		}
	})

	t.Run("verify healthy", func(t *testing.T) {
		out, code := p.pgwarm(t, "verify", "--timeout", "30s")
		if code != 0 || !strings.Contains(out, "pg2: replayed the canary") {
			t.Fatalf("verify on a healthy pair: exit %d", code)
		}
		if n := p.sql(t, "pg1", "SELECT count(*) FROM pgwarm.canary"); n != "0" {
			t.Errorf("canary not cleaned up: %s rows left", n)
		}
	})

	t.Run("verify pg2 stopped", func(t *testing.T) {
		p.exec(t, "pg2", "pg_ctlcluster "+itoa(p.lab.PGVersion)+" main stop -m fast")
		defer p.exec(t, "pg2", "pg_ctlcluster "+itoa(p.lab.PGVersion)+" main start")
		start := time.Now()
		out, code := p.pgwarm(t, "verify", "--timeout", "5s")
		if code != 1 || !strings.Contains(out, "pg2: not a running standby (stopped") {
			t.Fatalf("verify with pg2 stopped: exit %d, want 1 naming pg2", code)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("verify took %s with a 5s timeout", d)
		}
	})
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
