package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

// Hosts hands out connected hosts by inventory name; *host.Pool is one.
type Hosts interface {
	Get(ctx context.Context, name string) (host.Host, error)
}

// asPostgres wraps a shell command so it runs as the postgres OS user, who
// reaches the server over the local socket by peer authentication: no
// password is needed. setpriv, not runuser or sudo: no PAM session, which
// costs a tenth of a second or more per call. cd / avoids "could not
// change directory" warnings; HOME finds ~postgres/.pgpass.
func asPostgres(args ...string) string {
	return "cd / && HOME=$(getent passwd postgres | cut -d: -f6) setpriv --reuid=postgres --regid=postgres --init-groups -- " + host.Join(args...)
}

// Psql is the command that runs sql as postgres on the local server,
// printing unaligned tuples only.
func Psql(inv *inventory.Inventory, sql string) string {
	p := inv.Paths()
	return asPostgres(path.Join(p.BinDir, "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1",
		"-p", strconv.Itoa(inv.Postgres.Port), "-d", "postgres", "-c", sql)
}

// statusSQL returns one JSON object with everything status needs, in one
// round trip. Functions were renamed in 10 (xlog → wal, location → lsn).
func statusSQL(v inventory.Version) string {
	q := `SELECT json_build_object(
 'version', current_setting('server_version_num')::int,
 'in_recovery', pg_is_in_recovery(),
 'now', extract(epoch from clock_timestamp()),
 'current_lsn', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
 'received_lsn', pg_last_wal_receive_lsn()::text,
 'replayed_lsn', pg_last_wal_replay_lsn()::text,
 'replay_ts', extract(epoch from pg_last_xact_replay_timestamp()),
 'replay_paused', CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
 'timeline', CASE WHEN pg_is_in_recovery()
     THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
 'receiver', (SELECT status FROM pg_stat_wal_receiver),
 'seg_size', (SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 ELSE 1 END
              FROM pg_settings WHERE name = 'wal_segment_size'),
 'archive_mode', current_setting('archive_mode'),
 'archiver', (SELECT json_build_object('archived', archived_count, 'last_archived', last_archived_wal,
     'last_archived_ts', extract(epoch from last_archived_time), 'failed', failed_count,
     'last_failed', last_failed_wal, 'last_failed_ts', extract(epoch from last_failed_time)) FROM pg_stat_archiver),
 'senders', (SELECT json_agg(json_build_object('addr', host(client_addr), 'name', application_name, 'state', state,
     'replay_lsn', replay_lsn::text, 'replay_lag', extract(epoch from replay_lag))) FROM pg_stat_replication))`
	if !v.AtLeast(10) {
		q = strings.NewReplacer("replay_lsn", "replay_location",
			", 'replay_lag', extract(epoch from replay_lag)", "").Replace(walNames(v, q))
	}
	return q
}

// walNames gives SQL written with PostgreSQL 10's function names the
// names of major v: 10 renamed xlog to wal and location to lsn.
func walNames(v inventory.Version, q string) string {
	if v.AtLeast(10) {
		return q
	}
	return strings.NewReplacer("pg_current_wal_lsn", "pg_current_xlog_location",
		"pg_last_wal_receive_lsn", "pg_last_xlog_receive_location",
		"pg_last_wal_replay_lsn", "pg_last_xlog_replay_location",
		"pg_is_wal_replay_paused", "pg_is_xlog_replay_paused",
		"pg_wal_replay_resume", "pg_xlog_replay_resume",
		"pg_walfile_name", "pg_xlogfile_name", "pg_switch_wal", "pg_switch_xlog").Replace(q)
}

// pgScript reports whether the server runs (pg_ctl status: 0 running,
// 3 stopped, 4 no cluster), which recovery signal a stopped cluster has,
// then the status query when it runs.
func pgScript(inv *inventory.Inventory) string {
	p := inv.Paths()
	signal := "standby.signal"
	if !inv.Postgres.Version.AtLeast(12) {
		signal = "recovery.conf"
	}
	return "(" + asPostgres(path.Join(p.BinDir, "pg_ctl"), "-D", p.DataDir, "status") + ") >/dev/null 2>&1; rc=$?\n" +
		"echo pgctl $rc\n" +
		"if [ -e " + host.Quote(path.Join(p.DataDir, signal)) + " ]; then echo signal; fi\n" +
		"if [ $rc = 0 ]; then " + Psql(inv, statusSQL(inv.Postgres.Version)) + "; fi\n"
}

type pgRow struct {
	Version      int      `json:"version"`
	InRecovery   bool     `json:"in_recovery"`
	Now          float64  `json:"now"`
	CurrentLSN   LSN      `json:"current_lsn"`
	ReceivedLSN  LSN      `json:"received_lsn"`
	ReplayedLSN  LSN      `json:"replayed_lsn"`
	ReplayTS     *float64 `json:"replay_ts"`
	ReplayPaused bool     `json:"replay_paused"`
	Timeline     uint32   `json:"timeline"`
	Receiver     string   `json:"receiver"`
	SegSize      uint64   `json:"seg_size"`
	ArchiveMode  string   `json:"archive_mode"`
	Archiver     struct {
		Archived       int64    `json:"archived"`
		LastArchived   string   `json:"last_archived"`
		LastArchivedTS *float64 `json:"last_archived_ts"`
		Failed         int64    `json:"failed"`
		LastFailed     string   `json:"last_failed"`
		LastFailedTS   *float64 `json:"last_failed_ts"`
	} `json:"archiver"`
	Senders []struct {
		Addr      string   `json:"addr"`
		Name      string   `json:"name"`
		State     string   `json:"state"`
		ReplayLSN LSN      `json:"replay_lsn"`
		ReplayLag *float64 `json:"replay_lag"`
	} `json:"senders"`
}

func epoch(f *float64) *time.Time {
	if f == nil {
		return nil
	}
	sec, frac := math.Modf(*f)
	t := time.Unix(int64(sec), int64(frac*1e9)).UTC()
	return &t
}

// ParsePostgres fills a row from the output of pgScript; it is pure.
func ParsePostgres(row *HostStatus, res host.Result) {
	lines := strings.SplitN(string(res.Stdout), "\n", 3)
	rc := -1
	if len(lines) > 0 {
		if v, ok := strings.CutPrefix(lines[0], "pgctl "); ok {
			rc, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	rest := ""
	signal := false
	for _, l := range lines[1:] {
		switch {
		case strings.TrimSpace(l) == "signal":
			signal = true
		default:
			rest += l
		}
	}
	switch rc {
	case 0:
		row.State = StateRunning
	case 3:
		row.State = StateStopped
	case 4:
		row.State = StateNoCluster
	default:
		row.State = StateStopped
		row.Error = fmt.Sprintf("pg_ctl status: unexpected output %q", firstLine(res.Stdout))
		return
	}
	if row.State != StateRunning {
		if row.State == StateStopped {
			row.Role = string(inventory.RolePrimary)
			if signal {
				row.Role = string(inventory.RoleStandby)
			}
		}
		return
	}
	if !res.OK() || strings.TrimSpace(rest) == "" {
		row.Error = "psql exited " + strconv.Itoa(res.ExitCode) + ": " + firstLine(res.Stderr)
		return
	}
	var r pgRow
	if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &r); err != nil {
		row.Error = "status query: " + err.Error()
		return
	}
	row.Version, row.Timeline = r.Version, r.Timeline
	row.ObservedAt = *epoch(&r.Now)
	row.Role = string(inventory.RolePrimary)
	if r.InRecovery {
		row.Role = string(inventory.RoleStandby)
		row.ReceivedLSN, row.ReplayedLSN = r.ReceivedLSN, r.ReplayedLSN
		row.LastReplayTime, row.ReplayPaused, row.Receiver = epoch(r.ReplayTS), r.ReplayPaused, r.Receiver
	} else {
		row.CurrentLSN = r.CurrentLSN
		row.Archiver = &Archiver{
			Mode: r.ArchiveMode, ArchivedCount: r.Archiver.Archived, LastArchived: r.Archiver.LastArchived,
			LastArchivedTime: epoch(r.Archiver.LastArchivedTS), FailedCount: r.Archiver.Failed,
			LastFailed: r.Archiver.LastFailed, LastFailedTime: epoch(r.Archiver.LastFailedTS),
		}
		for _, s := range r.Senders {
			row.Senders = append(row.Senders, Sender{Addr: s.Addr, Name: s.Name, State: s.State, ReplayLSN: s.ReplayLSN, ReplayLag: s.ReplayLag})
		}
	}
	row.SegSize = r.SegSize
}

// archiveScript measures the archive directory and lists it with the
// helper when it is installed.
func archiveScript(inv *inventory.Inventory) string {
	dir := host.Quote(inv.Archive.Path)
	return "if [ ! -d " + dir + " ]; then echo missing; exit 0; fi\n" +
		"echo du $(du -sb " + dir + " | cut -f1)\n" +
		"df -PB1 " + dir + " | awk 'NR==2 {print \"df\", $2, $4}'\n" +
		"if [ -x " + inventory.DefaultHelperPath + " ]; then " + inventory.DefaultHelperPath + " list --json --archive " + dir +
		"; else echo nohelper; fi\n"
}

// ParseArchive reads the output of archiveScript; it is pure.
func ParseArchive(path string, res host.Result) *Archive {
	a := &Archive{Path: path}
	out := string(res.Stdout)
	var js strings.Builder
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 1 && f[0] == "missing":
			a.Error = "directory missing"
			return a
		case len(f) == 1 && f[0] == "nohelper":
			a.Error = inventory.DefaultHelperPath + " not installed: no segment listing"
		case len(f) == 2 && f[0] == "du":
			a.SizeBytes, _ = strconv.ParseUint(f[1], 10, 64)
		case len(f) == 3 && f[0] == "df":
			a.TotalBytes, _ = strconv.ParseUint(f[1], 10, 64)
			a.FreeBytes, _ = strconv.ParseUint(f[2], 10, 64)
		default:
			js.WriteString(l)
		}
	}
	if !res.OK() {
		a.Error = "pgwarm-wal list exited " + strconv.Itoa(res.ExitCode) + ": " + firstLine(res.Stderr)
		return a
	}
	if strings.TrimSpace(js.String()) == "" {
		return a
	}
	var ls struct {
		Files []struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(js.String()), &ls); err != nil {
		a.Error = "pgwarm-wal list: " + err.Error()
		return a
	}
	var segs []string
	for _, f := range ls.Files {
		if f.Kind == "segment" || f.Kind == "partial" {
			segs = append(segs, f.Name)
		}
	}
	a.Files = len(ls.Files)
	a.Newest = NewestSegment(segs)
	return a
}

// NewestSegment is the segment furthest along the WAL (by log and segment
// number, then timeline), "" for none.
func NewestSegment(names []string) string {
	sorted := append([]string(nil), names...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if len(a) >= 24 && len(b) >= 24 && a[8:24] != b[8:24] {
			return a[8:24] < b[8:24]
		}
		return a < b
	})
	if len(sorted) == 0 {
		return ""
	}
	return sorted[len(sorted)-1]
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Observe collects one row per inventory host, in parallel, without
// changing anything. A host that cannot be reached becomes a row in state
// unreachable, never an error: status must report on a broken pair.
func Observe(ctx context.Context, inv *inventory.Inventory, hosts Hosts) *Report {
	return observe(ctx, inv, hosts, true)
}

// ObserveRoles is Observe without the archive's listing: what promote
// needs to decide, with every host dialed (the archive host's connection
// is ready for the grant that follows).
func ObserveRoles(ctx context.Context, inv *inventory.Inventory, hosts Hosts) *Report {
	return observe(ctx, inv, hosts, false)
}

func observe(ctx context.Context, inv *inventory.Inventory, hosts Hosts, withArchive bool) *Report {
	r := &Report{Cluster: inv.Cluster, Mode: string(inv.Replication.Mode)}
	r.Hosts = make([]HostStatus, len(inv.Hosts))
	names := make([]string, len(inv.Hosts))
	for i, h := range inv.Hosts {
		names[i] = h.Name
		r.Hosts[i] = HostStatus{Name: h.Name, Address: h.Address, InventoryRole: h.Role}
	}
	_ = host.ParallelNames(ctx, 0, names, func(ctx context.Context, name string) error {
		row := r.Row(name)
		ih, _ := inv.Host(name)
		h, err := hosts.Get(ctx, name)
		if err != nil {
			row.State, row.Error = StateUnreachable, errText(name, err)
			return nil
		}
		if ih.IsPostgres() {
			ObservePostgres(ctx, inv, h, row)
		} else {
			row.State, row.Role = StateUp, string(inventory.RoleArchive)
		}
		if withArchive && inv.ArchiveIsLocal(ih) {
			res, err := h.Run(ctx, host.Cmd{Command: archiveScript(inv), Timeout: time.Minute})
			if err != nil {
				row.Archive = &Archive{Path: inv.Archive.Path, Error: errText(name, err)}
			} else {
				row.Archive = ParseArchive(inv.Archive.Path, res)
			}
		}
		return nil
	})
	return r
}

// ObservePostgres fills row from host h.
func ObservePostgres(ctx context.Context, inv *inventory.Inventory, h host.Host, row *HostStatus) {
	res, err := h.Run(ctx, host.Cmd{Command: pgScript(inv), Timeout: 30 * time.Second})
	if err != nil {
		row.State, row.Error = StateUnreachable, errText(h.Name(), err)
		return
	}
	ParsePostgres(row, res)
}

// errText is err without the leading "host: " the row already names.
func errText(name string, err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, name+": ")
	return s
}
