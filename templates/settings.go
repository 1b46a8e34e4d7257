package templates

import (
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

// Settings returns the managed postgresql.conf settings of host, sorted by
// name, exactly as the settings file renders them. Recovery settings of a
// standby on PostgreSQL up to 11 live in recovery.conf and are not part of
// this list (see RecoverySettings). Hosts without PostgreSQL have none.
func Settings(inv *inventory.Inventory, hostName string) []Setting {
	h, ok := inv.Host(hostName)
	if !ok || !h.IsPostgres() {
		return nil
	}
	m := baseSettings(inv, h)
	if h.Role == inventory.RoleStandby {
		// A postgresql.conf setting in every version (9.5 on), so never in
		// recovery.conf. Every mode restores from the archive (streaming
		// falls back to it); PostgreSQL waits this long after a miss that
		// came back sooner (a history probe, say) before asking again. It
		// also spaces streaming's reconnection attempts while the primary
		// is down.
		m["wal_retrieve_retry_interval"] = strconv.FormatInt(inv.Replication.RestoreRetry.D().Milliseconds(), 10) + "ms"
		if inv.Postgres.Version.AtLeast(15) {
			// 15's WAL lookahead asks restore_command for the next segment
			// before it applies the records it has already read; with a
			// lingering restore that held a segment's last commits back
			// by the linger (1.2 s measured, 0.1 s with this off).
			m["recovery_prefetch"] = "off"
		}
		if inv.Postgres.Version.AtLeast(12) {
			// After a failover every pg_rewind (pgwarm rebuild of the old
			// primary) reads from a promoted standby, and pg_rewind copies
			// each file of its pg_wal whole. With recycling on, the first
			// checkpoints after the promotion rename up to max_wal_size of
			// restored segments into future ones that stay in pg_wal (a
			// rewind after a 1 GiB load copied 1.1 GB of them); off, they
			// are deleted. A standby writes no WAL of its own, so nothing
			// is lost here; apply turns recycling back on (the default)
			// when it renders the host as a primary.
			m["wal_recycle"] = "off"
			for _, s := range recoverySettings(inv, h) {
				m[s.Name] = s.Value
			}
		}
	}
	return sortedSettings(m)
}

// RecoverySettings returns what recovery.conf holds for a standby on
// PostgreSQL up to 11, sorted; nil otherwise.
func RecoverySettings(inv *inventory.Inventory, hostName string) []Setting {
	h, ok := inv.Host(hostName)
	if !ok || h.Role != inventory.RoleStandby || inv.Postgres.Version.AtLeast(12) {
		return nil
	}
	m := map[string]string{"standby_mode": "on"}
	for _, s := range recoverySettings(inv, h) {
		m[s.Name] = s.Value
	}
	return sortedSettings(m)
}

func sortedSettings(m map[string]string) []Setting {
	out := make([]Setting, 0, len(m))
	for k, v := range m {
		out = append(out, Setting{Name: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// helper returns the pgwarm-wal invocation of sub on host h.
func helperCmd(inv *inventory.Inventory, h inventory.Host, sub string, extra ...string) string {
	args := []string{inventory.DefaultHelperPath, sub, "--archive", host.Quote(inv.ArchiveURL(h))}
	args = append(args, extra...)
	return joinArgs(args)
}

// baseSettings are the settings every PostgreSQL host gets, whatever its
// role, so that a promoted standby archives at once and a demoted primary
// can follow without a restart for archive_mode or wal_level.
func baseSettings(inv *inventory.Inventory, h inventory.Host) map[string]string {
	v := inv.Postgres.Version
	r := inv.Replication
	var ship []string
	if inv.Archive.Marker != "" && (inv.Archive.Transport == inventory.TransportNFS || inv.ArchiveIsLocal(h)) {
		ship = append(ship, "--require-marker", host.Quote(inv.Archive.Marker))
	}
	ship = append(ship, "--compression", inv.Archive.Compression, "%p", "%f")
	m := map[string]string{
		// archive_mode=on, not always: a standby must not re-archive what it
		// restores, but starts archiving the moment it is promoted.
		"archive_mode":    "on",
		"archive_command": helperCmd(inv, h, "ship", ship...),
		"archive_timeout": strconv.FormatInt(int64(r.ArchiveTimeout.D().Seconds()), 10),
		// 'replica' exists from 9.6 on (it replaced archive and hot_standby).
		"wal_level": "replica",
		// pg_rewind needs hint bits WAL-logged to turn an old primary into a standby.
		"wal_log_hints": "on",
		// 9.6 defaults to 0 senders and slots; pg_basebackup needs senders in every mode.
		"max_wal_senders":       "10",
		"max_replication_slots": "10",
		"listen_addresses":      "*",
		"port":                  strconv.Itoa(inv.Postgres.Port),
		"hot_standby":           "on",
	}
	if r.Mode == inventory.ModeWarm {
		m["hot_standby"] = "off" // the seed's warm standby answers no queries
	}
	if r.Mode == inventory.ModeStreaming && !r.Slot {
		// Without a slot the primary keeps some WAL for a standby that falls
		// behind; the archive covers the rest.
		if v.AtLeast(13) {
			m["wal_keep_size"] = "1GB"
		} else {
			m["wal_keep_segments"] = "64"
		}
	}
	for k, val := range inv.Postgres.Settings {
		m[k] = val
	}
	return m
}

// recoverySettings are the standby's recovery parameters for every version;
// the caller puts them in recovery.conf (<= 11) or the settings file (>= 12).
//
// restore_command never uses pgwarm-wal's --wait: from 9.0 on, standby mode
// (standby_mode=on up to 11, standby.signal from 12) makes PostgreSQL retry a
// missing segment itself every wal_retrieve_retry_interval, and an unbounded
// wait would block `pg_ctl promote` until the next segment arrives. Instead
// it lingers: the archive host hands a segment over the moment it lands (a
// poll every few seconds would add that much delay), for at most
// restoreLinger, and the helper stops waiting as soon as the data
// directory's promote file (pg_ctl promote, pg_promote(), every version) or
// the trigger file appears.
// restoreLinger bounds one lingering restore: how long a standby is deaf
// to PostgreSQL's own loop (a streaming standby falling back to the archive
// retries its primary after it). Idle, a standby asks the archive about
// once per linger.
const restoreLinger = "1s"

// restorePrefetch is how many segments a restore that finds its segment
// archived already (the standby is behind) fetches ahead at once into the
// state directory's spool: a standby catching up, or a rewound one
// replaying from the last common checkpoint, then makes one round trip to
// the archive per 9 segments instead of one each. About 1 MB each zstd.
const restorePrefetch = "8"

func recoverySettings(inv *inventory.Inventory, h inventory.Host) []Setting {
	v := inv.Postgres.Version
	r := inv.Replication
	// The cluster it restores for is the primary's (a standby not seeded
	// yet is still another cluster): plan and apply fill it from facts.
	restore := []string{ClusterPlaceholder(inv.Primary().Name), "--linger", restoreLinger, "--prefetch", restorePrefetch, "--spool", host.Quote(path.Join(inv.Paths().StateDir, "prefetch"))}
	if !v.AtLeast(16) {
		restore = append(restore, "--trigger", host.Quote(r.TriggerFile))
	}
	out := []Setting{
		{"restore_command", helperCmd(inv, h, "restore", append(restore, "%f", "%p")...)},
		// 'latest' is the default only from 12; explicit so a standby follows a promotion.
		{"recovery_target_timeline", "latest"},
	}
	out = append(out, Setting{"archive_cleanup_command", helperCmd(inv, h, "cleanup", cleanupArgs(inv, h)...)})
	switch {
	case !v.AtLeast(12):
		out = append(out, Setting{"trigger_file", r.TriggerFile})
	case !v.AtLeast(16):
		out = append(out, Setting{"promote_trigger_file", r.TriggerFile})
	}
	// 16 removed promote_trigger_file: promotion is pg_ctl promote or pg_promote().
	if r.Mode == inventory.ModeStreaming {
		out = append(out, Setting{"primary_conninfo", primaryConninfo(inv, h, "")})
		if r.Slot {
			out = append(out, Setting{"primary_slot_name", inventory.SlotName(h)})
		}
	}
	return out
}

// cleanupArgs make cleanup safe with several standbys: each standby
// reports its restart point under its own name, and the archive deletes
// only below the oldest one once every standby has reported (over ssh the
// archive host takes the name from the key and the standbys from its
// rights file as well). A streaming standby's %r may be ahead of a lagging
// archive: --streaming lowers it to the newest archived segment instead of
// having it refused as implausible.
func cleanupArgs(inv *inventory.Inventory, h inventory.Host) []string {
	var names []string
	for _, s := range inv.Standbys() {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	args := []string{"--as", host.Quote(h.Name), "--standbys", host.Quote(strings.Join(names, ","))}
	if inv.Replication.Mode == inventory.ModeStreaming {
		args = append(args, "--streaming")
	}
	return append(args, "%r")
}

// primaryConninfo connects host h to the primary; the password comes from
// ~postgres/.pgpass, never from the conninfo.
func primaryConninfo(inv *inventory.Inventory, h inventory.Host, dbname string) string {
	p := inv.Primary()
	s := "host=" + p.Address + " port=" + strconv.Itoa(inv.Postgres.Port) + " user=" + inv.Replication.User
	if dbname != "" {
		s += " dbname=" + dbname + " connect_timeout=5"
	} else {
		s += " application_name=" + inventory.SlotName(h)[len("pgwarm_"):]
	}
	return s
}

// promoteCommand ends recovery on h: the trigger file up to 15 (the seed's
// way, shared with a manual `touch`), pg_ctl promote from 16 where the
// trigger file no longer exists.
func promoteCommand(inv *inventory.Inventory) string {
	if !inv.Postgres.Version.AtLeast(16) {
		return "touch " + host.Quote(inv.Replication.TriggerFile)
	}
	p := inv.Paths()
	if inv.Postgres.Layout == inventory.LayoutDebian {
		return "pg_ctlcluster " + inv.Postgres.Version.String() + " main promote"
	}
	return host.Quote(path.Join(p.BinDir, "pg_ctl")) + " promote -D " + host.Quote(p.DataDir)
}
