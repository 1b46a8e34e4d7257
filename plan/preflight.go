package plan

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
)

// Archive filesystem limits: below either, WAL archiving would stop (and
// the primary's pg_wal fill up) soon after apply.
const (
	MinArchiveFree    = 1 << 30 // bytes
	MaxArchiveUsedPct = 95
)

// networkFS are filesystem types that are themselves remote: an archive
// host exporting one over NFS would re-export a foreign filesystem.
var networkFS = []string{"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph", "glusterfs", "fuse.glusterfs"}

// volatileFS lose their content on reboot: no place for WAL.
var volatileFS = []string{"tmpfs", "ramfs"}

// Preflight returns every reason the plan must not go ahead, each naming
// its host, or nil. It only reads in.
func Preflight(in Input) error {
	inv := in.Inventory
	hosts, err := Probed(inv, in.Limit)
	if err != nil {
		return err
	}
	var errs []error
	bad := func(h, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{h}, args...)...))
	}
	for _, h := range hosts {
		if _, ok := in.Facts[h.Name]; !ok {
			bad(h.Name, "no facts were gathered")
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	major := inv.Postgres.Version.String()
	primary := inv.Primary()
	pf := in.Facts[primary.Name]

	for _, h := range hosts {
		f := in.Facts[h.Name]
		if !f.Root {
			bad(h.Name, "the probe did not run as root: give the SSH user passwordless sudo (become: sudo) or log in as root")
			continue
		}
		if h.IsPostgres() {
			if f.Installed(major) == "" {
				same := ""
				if h.Role == inventory.RoleStandby && pf.Installed(major) != "" {
					same = fmt.Sprintf(" (the primary %s runs %s, and a standby must run the same major version)", primary.Name, major)
				}
				bad(h.Name, "PostgreSQL %s is not installed (%s); install the server package for %s first%s", major, installedList(f), major, same)
			}
			if f.PGUser == nil {
				bad(h.Name, "there is no postgres OS user")
			}
			if f.DataDir == nil {
				bad(h.Name, "no data directory facts")
				continue
			}
			dd := f.DataDir
			if dd.State == facts.DataDirUnreadable || dd.State == facts.DataDirNotDir {
				bad(h.Name, "data directory %s is %s", dd.Path, dd.State)
			}
		}
		if h.Role == inventory.RoleStandby {
			if pf.Arch != "" && f.Arch != pf.Arch {
				bad(h.Name, "architecture %s differs from the primary %s (%s): WAL and base backups only work between machines of the same architecture", f.Arch, primary.Name, pf.Arch)
			}
			standbyChecks(inv, in.Facts, h, bad)
		}
		if h.Role == inventory.RolePrimary {
			primaryChecks(inv, f, bad)
		}
		if h.Name == inv.Archive.Host {
			archiveChecks(inv, f, bad)
		}
	}
	return errors.Join(errs...)
}

func installedList(f facts.Facts) string {
	if len(f.Postgres) == 0 {
		return "no PostgreSQL server found in /usr/lib/postgresql/*/bin or /usr/pgsql-*/bin"
	}
	var v []string
	for _, in := range f.Postgres {
		v = append(v, in.Major+" in "+in.BinDir)
	}
	return "found " + strings.Join(v, ", ")
}

func primaryChecks(inv *inventory.Inventory, f facts.Facts, bad func(string, string, ...any)) {
	dd := f.DataDir
	if dd == nil {
		return
	}
	name := inv.Primary().Name
	switch dd.State {
	case facts.DataDirInitialised:
		if dd.Version != inv.Postgres.Version.String() {
			bad(name, "data directory %s holds a PostgreSQL %s cluster but the inventory says %s; upgrade the cluster (pg_upgrade) or fix postgres.version", dd.Path, dd.Version, inv.Postgres.Version)
		} else if dd.SystemID == "" {
			bad(name, "cannot read the system identifier of %s (pg_controldata failed)", dd.Path)
		}
		if dd.Running && dd.InRecovery {
			bad(name, "the primary is in recovery (a standby?); check the roles in %s", inv.File)
		}
	case facts.DataDirAbsent, facts.DataDirEmpty, facts.DataDirOther:
		bad(name, "data directory %s is %s: pgwarm adds a standby to an existing primary cluster; create it first (pg_createcluster or initdb)", dd.Path, dd.State)
	}
}

// standbyChecks refuse a standby that is, or was, a primary of the same
// cluster: replacing it would throw away writes the old primary may lack.
func standbyChecks(inv *inventory.Inventory, all map[string]facts.Facts, h inventory.Host, bad func(string, string, ...any)) {
	f, pf := all[h.Name], all[inv.Primary().Name]
	dd, pdd := f.DataDir, pf.DataDir
	if dd == nil || pdd == nil || dd.State != facts.DataDirInitialised || dd.SystemID == "" || dd.SystemID != pdd.SystemID {
		return
	}
	if dd.Running && !dd.InRecovery && !slices.Contains(dd.Signals, "standby.signal") && !slices.Contains(dd.Signals, "recovery.conf") {
		bad(h.Name, "runs as a primary of the same cluster as %s (system identifier %s, not in recovery): was it promoted? Rebuild it with `pgwarm rebuild %s`, or swap the roles in %s", inv.Primary().Name, dd.SystemID, h.Name, inv.File)
	} else if dd.Timeline > pdd.Timeline && pdd.Timeline > 0 {
		bad(h.Name, "is on timeline %d, ahead of the primary %s on timeline %d: it was promoted after %s; rebuild it with `pgwarm rebuild %s`", dd.Timeline, inv.Primary().Name, pdd.Timeline, inv.Primary().Name, h.Name)
	}
}

func archiveChecks(inv *inventory.Inventory, f facts.Facts, bad func(string, string, ...any)) {
	a := f.Archive
	name := inv.Archive.Host
	if a == nil {
		bad(name, "no facts about the archive filesystem")
		return
	}
	if u := f.ArchiveUser; u != nil && u.Name != "" && path.Clean(u.Home) != path.Clean(inv.Archive.Home) {
		bad(name, "the archive account %s has the home %s but archive.home in %s is %s: sshd reads authorized_keys from the home in passwd and pgwarm never changes an account's home; set archive.home: %s (or archive.user to a dedicated account)",
			u.Name, u.Home, inv.File, inv.Archive.Home, u.Home)
	}
	where := fmt.Sprintf("archive path %s (filesystem %s, %s on %s)", inv.Archive.Path, a.Device, a.Type, a.MountPoint)
	if a.AvailBytes < MinArchiveFree || a.UsedPct > MaxArchiveUsedPct {
		bad(name, "%s is full: %d%% used, %.1f GiB free; WAL archiving needs at least 1 GiB and at most %d%% used", where, a.UsedPct, float64(a.AvailBytes)/(1<<30), MaxArchiveUsedPct)
	}
	if slices.Contains(volatileFS, a.Type) {
		bad(name, "%s is in memory and lost on reboot; put the archive on a disk", where)
	}
	if inv.Archive.Transport == inventory.TransportNFS && slices.Contains(networkFS, a.Type) {
		bad(name, "%s is itself a network filesystem; an NFS archive must be exported from a local disk of %s", where, name)
	}
}

// seedReason says why standby h needs a fresh base backup, or "".
func seedReason(inv *inventory.Inventory, all map[string]facts.Facts, h inventory.Host) string {
	f := all[h.Name]
	pid := ""
	if pdd := all[inv.Primary().Name].DataDir; pdd != nil {
		pid = pdd.SystemID
	}
	return SeedReason(inv, f.DataDir, pid, f.Files[SeedMarker(inv)].Exists())
}

// SeedMarker is the file a seed leaves on a standby until its copy is
// complete: a standby that has it holds a partial copy.
func SeedMarker(inv *inventory.Inventory) string {
	return path.Join(inv.Paths().StateDir, "seed.incomplete")
}

// SeedReason says why a standby's data directory (dd) must be (re)made
// from a base backup of the primary (system identifier primarySysID), or
// "" when it already holds a copy of it; incomplete: the seed marker is
// there, an earlier seed did not finish. The one rule plan shows and apply
// follows (apply asks again right before it seeds). Pure.
func SeedReason(inv *inventory.Inventory, dd *facts.DataDir, primarySysID string, incomplete bool) string {
	if dd == nil {
		return ""
	}
	if incomplete {
		return "an earlier seed did not finish: " + dd.Path + " holds a partial copy"
	}
	switch dd.State {
	case facts.DataDirAbsent:
		return "data directory " + dd.Path + " does not exist"
	case facts.DataDirEmpty:
		return "data directory " + dd.Path + " is empty"
	case facts.DataDirOther:
		return "DESTROYS the contents of " + dd.Path + ": it is not empty and holds no PostgreSQL cluster"
	case facts.DataDirInitialised:
		switch {
		case dd.Version != inv.Postgres.Version.String():
			return fmt.Sprintf("DESTROYS the PostgreSQL %s cluster in %s (system identifier %s): the pair runs %s", dd.Version, dd.Path, orUnknown(dd.SystemID), inv.Postgres.Version)
		case dd.SystemID != primarySysID:
			return fmt.Sprintf("DESTROYS the cluster in %s: it is a different cluster (system identifier %s) from the primary %s (%s); all its data will be lost", dd.Path, orUnknown(dd.SystemID), inv.Primary().Name, orUnknown(primarySysID))
		}
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// postgresActions are the one-shot actions of a PostgreSQL host: create the
// replication role, seed a standby, and start, restart or reload the server
// as the file changes demand.
func postgresActions(in Input, h inventory.Host, f facts.Facts, seed bool, files []Change) []Change {
	inv := in.Inventory
	dd := f.DataDir
	var out []Change
	if h.Role == inventory.RolePrimary && dd != nil && dd.Running && dd.Role != "present" && dd.Role != "" {
		what := "create replication role " + inv.Replication.User + " (LOGIN REPLICATION)"
		if dd.Role == "lacking" {
			what = "grant LOGIN REPLICATION to role " + inv.Replication.User
		}
		out = append(out, Change{Action: Run, Kind: KindAction, Subject: what,
			Reason: "standbys connect as " + inv.Replication.User + " for pg_basebackup" + map[bool]string{true: " and streaming", false: ""}[inv.Replication.Mode == inventory.ModeStreaming]})
	}
	if seed {
		out = append(out, Change{Action: Run, Kind: KindAction, Subject: "seed standby from a base backup of " + inv.Primary().Name,
			Reason: seedReason(inv, in.Facts, h)})
	}
	if seed || dd == nil || !dd.Running {
		why := "PostgreSQL is not running"
		if seed {
			why = "the freshly seeded standby starts in recovery"
		}
		return append(out, Change{Action: Run, Kind: KindAction, Subject: "start postgresql", Reason: why})
	}
	restart, reload := restartOrReload(in, f, files)
	var pending []string // waiting for a restart already (changed outside pgwarm, reloaded)
	if dd.Settings != nil {
		for _, n := range dd.Settings.PendingRestart {
			if !slices.Contains(restart, n) {
				pending = append(pending, n)
			}
		}
	}
	switch {
	case len(restart) > 0 || len(pending) > 0:
		subject, why := "restart postgresql:", ""
		if len(restart) > 0 {
			subject += " " + strings.Join(restart, ", ") + " changed"
			why = "these settings take effect only at server start"
			if dd.Settings != nil {
				why += " (pg_settings.context is postmaster)"
			}
		}
		if len(pending) > 0 {
			if len(restart) > 0 {
				subject += ";"
				why += "; "
			}
			subject += " " + strings.Join(pending, ", ") + " pending"
			why += "the server reports pending_restart for these already: changed in its files outside this plan"
		}
		out = append(out, Change{Action: Run, Kind: KindAction, Subject: subject, Reason: why})
	case len(reload) > 0:
		out = append(out, Change{Action: Run, Kind: KindAction, Subject: "reload postgresql: " + strings.Join(reload, ", ") + " changed"})
	}
	return out
}

// restartOrReload lists what changed, split by whether PostgreSQL needs a
// restart or a reload to see it, and marks the causing file changes.
func restartOrReload(in Input, f facts.Facts, files []Change) (restart, reload []string) {
	inv := in.Inventory
	p := inv.Paths()
	v := inv.Postgres.Version
	content := func(path string, after bool) string {
		for _, c := range files {
			if c.Path == path && c.Action != Remove {
				if after {
					return c.After
				}
				return c.Before
			}
		}
		if fi := f.Files[path]; fi.Content != nil {
			return *fi.Content
		}
		return ""
	}
	before := effective(content(p.MainConfig, false), p.ConfigDir, p.SettingsFile, content(p.SettingsFile, false))
	after := effective(content(p.MainConfig, true), p.ConfigDir, p.SettingsFile, content(p.SettingsFile, true))
	changed := changedSettings(before, after, v)
	var ss *facts.ServerSettings
	if f.DataDir != nil {
		ss = f.DataDir.Settings
	}
	for _, n := range changed {
		if restartSetting(n, v, ss) {
			restart = append(restart, n)
		} else {
			reload = append(reload, n)
		}
	}
	for i := range files {
		c := &files[i]
		switch c.Kind {
		case templates.KindSettings, templates.KindSettingsInclude:
			c.Restart, c.Reload = len(restart) > 0, len(restart) == 0 && len(reload) > 0
		case templates.KindHBA:
			c.Reload = true
			reload = append(reload, path.Base(c.Path))
		case templates.KindRecovery:
			// recovery.conf is read once, at start (up to 11).
			c.Restart = true
			restart = append(restart, path.Base(c.Path))
		}
	}
	return restart, reload
}
