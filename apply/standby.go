package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/pgwarm/pgwarm/templates"
)

func sleepCtx(ctx context.Context, ms int) error {
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ---- archiving proof ----

type archivingProofStep struct{}

func (archivingProofStep) Title() string {
	return "primary: prove archiving works (force a WAL switch, wait for the segment in the archive)"
}

// ShouldRun: the proof forces a WAL switch on the primary; a plan of
// standbys only leaves the primary and the archive as they are.
func (archivingProofStep) ShouldRun(s *State) bool {
	return s.inPlan(s.Inv.Primary().Name) || s.inPlan(s.Inv.Archive.Host)
}

func (archivingProofStep) Run(ctx context.Context, s *State) error {
	prim := s.Inv.Primary().Name
	seg, err := switchWAL(ctx, s)
	if err != nil {
		return err
	}
	s.Out.Hostf(prim, "switched WAL; waiting for %s in the archive", seg)
	where, root := archiveView(s)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, err := inArchive(ctx, s, where, root, seg)
		if err != nil {
			return err
		}
		if ok {
			s.Out.Hostf(prim, "archiving works: %s is in %s:%s", seg, where, root)
			s.mu.Lock()
			s.switched[prim] = seg
			s.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			failed, _ := psql(ctx, s, s.host(prim), "SELECT coalesce(last_failed_wal, 'none') || ' at ' || coalesce(last_failed_time::text, '-') || ', ' || failed_count || ' failures' FROM pg_stat_archiver;\n")
			return fmt.Errorf("%s: %s did not reach the archive within 2 minutes (archiver: last failed %s); see the PostgreSQL log on %s", prim, seg, failed, prim)
		}
		if err := sleepCtx(ctx, 500); err != nil {
			return err
		}
	}
}

// switchWAL forces a segment switch on the primary and returns the name of
// the segment it completed.
func switchWAL(ctx context.Context, s *State) (string, error) {
	sql := "SELECT pg_walfile_name(pg_switch_wal());\n"
	if !s.Inv.Postgres.Version.AtLeast(10) {
		sql = "SELECT pg_xlogfile_name(pg_switch_xlog());\n"
	}
	// A restore point makes sure the segment has a record to switch from.
	pre := "SELECT pg_create_restore_point('pgwarm-apply');\n"
	if _, err := psql(ctx, s, s.host(s.Inv.Primary().Name), pre); err != nil {
		return "", err
	}
	return psql(ctx, s, s.host(s.Inv.Primary().Name), sql)
}

// archiveView is where the archive is looked at: on the archive host for
// ssh; for nfs, through the primary's mount, which is what it ships to.
func archiveView(s *State) (string, string) {
	prim := s.Inv.Primary()
	if s.Inv.Archive.Transport == inventory.TransportNFS && !s.Inv.ArchiveIsLocal(prim) {
		return prim.Name, s.Inv.Archive.MountPoint
	}
	return s.Inv.Archive.Host, s.Inv.Archive.Path
}

func inArchive(ctx context.Context, s *State, where, root, seg string) (bool, error) {
	cmd := host.Join(inventory.DefaultHelperPath, "list", "--archive", root, "--json")
	res, err := host.CheckRun(ctx, s.host(where), host.Cmd{Command: cmd})
	if err != nil {
		return false, err
	}
	var ls struct {
		Files []struct {
			Name string `json:"name"`
		} `json:"files"`
	}
	if err := json.Unmarshal(res.Stdout, &ls); err != nil {
		return false, fmt.Errorf("%s: pgwarm-wal list: %w", where, err)
	}
	for _, f := range ls.Files {
		if f.Name == seg {
			return true, nil
		}
	}
	return false, nil
}

// ---- standby ----

type standbyPrepareStep struct{}

func (standbyPrepareStep) Title() string {
	return "standby: settings, .pgpass, ssh config and known_hosts (outside the data directory)"
}

func (standbyPrepareStep) Run(ctx context.Context, s *State) error {
	for _, sb := range s.planned(s.Inv.Standbys()) {
		if err := pgHostFiles(ctx, s, sb.Name, func(f templates.File) bool { return !s.inDataDir(f) }); err != nil {
			return err
		}
	}
	return nil
}

type standbySeedStep struct{}

func (standbySeedStep) Title() string {
	return "standby: stop and seed from a base backup of the primary"
}

func seedMarker(s *State) string { return plan.SeedMarker(s.Inv) }
func seedPID(s *State) string    { return path.Join(s.Paths.StateDir, "seed.pid") }

func (standbySeedStep) Run(ctx context.Context, s *State) error {
	prim := s.Inv.Primary()
	for _, sb := range s.planned(s.Inv.Standbys()) {
		h := s.host(sb.Name)
		f, err := facts.Gather(ctx, h, FactsRequest(s.Inv, sb))
		if err != nil {
			return err
		}
		st, err := h.Stat(ctx, seedMarker(s))
		incomplete := err == nil && !st.IsDir
		why := plan.SeedReason(s.Inv, f.DataDir, s.Facts[prim.Name].DataDir.SystemID, incomplete)
		if why == "" {
			s.Out.Hostf(sb.Name, "already seeded from %s (system identifier %s)", prim.Name, f.DataDir.SystemID)
			continue
		}
		if s.Opts.Plan != nil && !s.plannedAction(sb.Name, "seed ") {
			// Replacing a data directory is the one change apply never
			// makes unannounced.
			return fmt.Errorf("%s: needs a seed now (%s), which the plan did not show; its data directory was not touched: run pgwarm plan again", sb.Name, why)
		}
		s.Out.Hostf(sb.Name, "seeding: %s", why)
		s.mu.Lock()
		s.seeded[sb.Name] = true // the data directory's files are the base backup's from here on
		s.mu.Unlock()
		if err := seed(ctx, s, h, f); err != nil {
			return err
		}
	}
	return nil
}

func seed(ctx context.Context, s *State, h host.Host, f facts.Facts) error {
	name := h.Name()
	c := NewControl(s.Inv, f.Systemd)
	if f.DataDir.Running {
		if err := control(ctx, s, h, c, "stop", "to seed the data directory"); err != nil {
			return err
		}
	}
	dd := s.Paths.DataDir
	// Stop a pg_basebackup a killed run left behind, then start from an
	// empty directory behind the marker: a rerun knows the copy is partial.
	prep := script("seed-prep.sh", seedPID(s), s.Paths.StateDir, seedMarker(s), dd, "postgres:postgres")
	if _, err := host.CheckRun(ctx, h, host.Cmd{Command: prep}); err != nil {
		return err
	}
	if s.Inv.Replication.Seed == inventory.SeedStreamTar {
		if err := seedStreamTar(ctx, s, h); err != nil {
			return err
		}
		return seedDone(ctx, s, h)
	}
	total, _ := psql(ctx, s, s.host(s.Inv.Primary().Name), "SELECT sum(pg_database_size(oid)) FROM pg_database;\n")
	size, _ := strconv.ParseInt(total, 10, 64)
	prim := s.Inv.Primary()
	s.Out.Hostf(name, "seeding %s with pg_basebackup from %s (%s), ~%s", dd, prim.Name, prim.Address, humanBytes(size))
	// The password comes from ~postgres/.pgpass (0600), never from argv.
	bb := host.Join(path.Join(s.Paths.BinDir, "pg_basebackup"), "-h", prim.Address, "-p", strconv.Itoa(s.Inv.Postgres.Port),
		"-U", s.Inv.Replication.User, "-D", dd, "-X", "stream", "-c", "fast", "-w", "-l", "pgwarm seed "+name)
	cmd := fmt.Sprintf("echo $$ > %s; exec runuser -u postgres -- env PGPASSFILE=%s PGAPPNAME=pgwarm_seed sh -c %s",
		host.Quote(seedPID(s)), host.Quote(path.Join(s.Paths.Home, ".pgpass")), host.Quote("cd / && exec "+bb))

	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	bar := s.Out.Progress(name, "base backup", size, 5*time.Second)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pctx.Err() == nil {
			if res, err := h.Run(pctx, host.Cmd{Command: "du -sb " + host.Quote(dd) + " 2>/dev/null | cut -f1"}); err == nil {
				if n, err := strconv.ParseInt(strings.TrimSpace(string(res.Stdout)), 10, 64); err == nil {
					bar.Set(n)
				}
			}
			_ = sleepCtx(pctx, 1000)
		}
	}()
	res, err := h.Run(ctx, host.Cmd{Command: cmd})
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("%s: pg_basebackup from %s exited %d: %s", name, prim.Name, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	bar.Finish()
	return seedDone(ctx, s, h)
}

// seedDone removes the marker: the data directory holds a complete copy.
func seedDone(ctx context.Context, s *State, h host.Host) error {
	done := fmt.Sprintf("rm -f %s %s", host.Quote(seedPID(s)), host.Quote(seedMarker(s)))
	_, err := host.CheckRun(ctx, h, host.Cmd{Command: done})
	return err
}

type standbyConfigStep struct{}

func (standbyConfigStep) Title() string {
	return "standby: recovery settings in the data directory, start (or reload/restart)"
}

func (standbyConfigStep) Run(ctx context.Context, s *State) error {
	for _, sb := range s.planned(s.Inv.Standbys()) {
		if err := ConfigureStandby(ctx, s, sb.Name, func(templates.File) bool { return true }); err != nil {
			return err
		}
	}
	return nil
}

// ConfigureStandby writes the files of standby name that keep selects
// (recovery settings, signal file, ...), removes leftovers that would end
// recovery, and starts it or makes it take the configuration. pgwarm
// rebuild uses it after reseeding a host.
func ConfigureStandby(ctx context.Context, s *State, name string, keep func(templates.File) bool) error {
	h := s.host(name)
	if err := pgHostFiles(ctx, s, name, keep); err != nil {
		return err
	}
	// Leftovers that would end recovery at once or stop 12+ from starting.
	if t := s.Inv.Replication.TriggerFile; t != "" && !s.Inv.Postgres.Version.AtLeast(16) {
		if err := removeFile(ctx, s, h, t, "a leftover trigger file would end recovery at once"); err != nil {
			return err
		}
	}
	if s.Inv.Postgres.Version.AtLeast(12) {
		if err := removeFile(ctx, s, h, path.Join(s.Paths.DataDir, "recovery.conf"), "PostgreSQL 12 and later refuse to start with it"); err != nil {
			return err
		}
	}
	c := NewControl(s.Inv, s.Facts[name].Systemd)
	up, err := running(ctx, h, c)
	if err != nil {
		return err
	}
	if !up {
		err := control(ctx, s, h, c, "start", "in recovery from the archive")
		if err != nil {
			// pg_ctl waits (60 s by default) for a hot standby to accept
			// connections, which it does only once consistent: after a
			// rewind it may first replay gigabytes from the archive. A
			// server that still runs is starting, not failed; the replay
			// proof that follows waits for it.
			if still, rerr := running(ctx, h, c); rerr == nil && still {
				s.Out.Hostf(name, "still starting (replaying the archive before it accepts connections); not waiting for the start command")
				return nil
			}
		}
		return err
	}
	if s.Inv.Replication.Mode == inventory.ModeWarm {
		// A warm standby answers no queries, so pending_restart cannot be
		// read: restart it when its configuration changed.
		if s.wasChanged(name) {
			return control(ctx, s, h, c, "restart", "configuration changed")
		}
		return nil
	}
	return reloadOrRestart(ctx, s, name)
}

// Reseed replaces standby name's data directory with a fresh base backup
// of s.Inv.Primary(), whatever it holds now; pgwarm rebuild falls back to
// it when pg_rewind cannot be used.
func Reseed(ctx context.Context, s *State, name string) error {
	ih, ok := s.Inv.Host(name)
	if !ok {
		return fmt.Errorf("%s: not in the inventory", name)
	}
	h := s.host(name)
	f, err := facts.Gather(ctx, h, FactsRequest(s.Inv, ih))
	if err != nil {
		return err
	}
	return seed(ctx, s, h, f)
}

type standbyVerifyStep struct{}

func (standbyVerifyStep) Title() string {
	return "standby: prove it is in recovery and replaying the primary's WAL"
}

func (standbyVerifyStep) Run(ctx context.Context, s *State) error {
	for _, sb := range s.planned(s.Inv.Standbys()) {
		if err := verifyReplay(ctx, s, sb); err != nil {
			return err
		}
	}
	return nil
}

// verifyReplay forces a switch on the primary and waits until the standby
// has replayed past it: hot and streaming standbys are asked with SQL, a
// warm one (no queries) is watched through its startup process.
func verifyReplay(ctx context.Context, s *State, sb inventory.Host) error {
	prim := s.host(s.Inv.Primary().Name)
	h := s.host(sb.Name)
	target, err := psql(ctx, s, prim, "SELECT pg_current_wal_lsn();\n")
	if err != nil {
		return err
	}
	seg, err := switchWAL(ctx, s)
	if err != nil {
		return err
	}
	s.Out.Hostf(sb.Name, "waiting until it replays %s (segment %s)", target, seg)
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		if s.Inv.Replication.Mode == inventory.ModeWarm {
			res, err := h.Run(ctx, host.Cmd{Command: "ps -eo args"})
			if err != nil {
				return err
			}
			if cur, ok := RecoveringSegment(string(res.Stdout)); ok {
				last = "recovering " + cur
				if cur > seg {
					s.Out.Hostf(sb.Name, "in recovery (warm standby), replayed %s, now waiting for %s", seg, cur)
					return nil
				}
			}
		} else {
			out, err := psql(ctx, s, h, fmt.Sprintf("SELECT pg_is_in_recovery()::text || ' ' || coalesce(pg_last_wal_replay_lsn()::text, '-') || ' ' || coalesce((pg_last_wal_replay_lsn() >= %s::pg_lsn)::text, 'false');\n", sqlString(target)))
			if err == nil {
				last = out
				f := strings.Fields(out)
				if len(f) == 3 && f[0] == "false" {
					return fmt.Errorf("%s: not in recovery: it is running as a primary", sb.Name)
				}
				if len(f) == 3 && f[2] == "true" {
					s.Out.Hostf(sb.Name, "in recovery (%s standby), replayed up to %s", s.Inv.Replication.Mode, f[1])
					return nil
				}
			} else {
				last = err.Error()
			}
		}
		if err := sleepCtx(ctx, 500); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s: did not replay %s within 3 minutes (last seen: %s); see the PostgreSQL log on %s", sb.Name, target, last, sb.Name)
}
