package plan

import (
	"slices"

	"github.com/pgwarm/pgwarm/facts"
	"path"
	"sort"
	"strings"

	"github.com/pgwarm/pgwarm/inventory"
)

// confLine is one "name = value" line of postgresql.conf; include
// directives come through as lines named include, include_if_exists and
// include_dir with the file as value.
type confLine struct {
	name, value string
}

// parseConf reads postgresql.conf syntax: "name = value" or "name value",
// values optionally single-quoted with ” or \' escapes, # comments. Lines
// stay in file order: later ones win, as in PostgreSQL.
func parseConf(text string) []confLine {
	var out []confLine
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t=")
		if i < 0 {
			continue
		}
		name := strings.ToLower(line[:i])
		rest := strings.TrimLeft(line[i:], " \t")
		rest = strings.TrimPrefix(rest, "=")
		rest = strings.TrimLeft(rest, " \t")
		out = append(out, confLine{name, confValue(rest)})
	}
	return out
}

// confValue returns the unquoted value, without a trailing comment.
func confValue(s string) string {
	if strings.HasPrefix(s, "'") {
		v, _ := unquoteConf(s)
		return v
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// unquoteConf reads the quoted postgresql.conf value s starts with (its
// first byte a quote; doubled quotes and backslashes escape) and returns
// it and the index just past its closing quote, -1 when there is none.
func unquoteConf(s string) (string, int) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
			b.WriteByte('\'')
		case c == '\'':
			return b.String(), i + 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), -1
}

// effective evaluates a main postgresql.conf whose include of settingsFile
// is spliced with settingsText; other includes (conf.d, ...) are not
// visible to pgwarm and are skipped.
func effective(mainText, configDir, settingsFile, settingsText string) map[string]string {
	m := map[string]string{}
	for _, l := range parseConf(mainText) {
		switch l.name {
		case "include", "include_if_exists":
			p := l.value
			if !path.IsAbs(p) {
				p = path.Join(configDir, p)
			}
			if p == settingsFile {
				for _, s := range parseConf(settingsText) {
					m[s.name] = s.value
				}
			}
		case "include_dir":
		default:
			m[l.name] = l.value
		}
	}
	return m
}

// changedSettings lists the names whose effective value differs, sorted.
func changedSettings(before, after map[string]string, v inventory.Version) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range []map[string]string{before, after} {
		for name := range m {
			if seen[name] {
				continue
			}
			seen[name] = true
			if !sameValue(valueOrDefault(before, name, v), valueOrDefault(after, name, v)) {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func valueOrDefault(m map[string]string, name string, v inventory.Version) string {
	if val, ok := m[name]; ok {
		return val
	}
	return builtinDefault(name, v)
}

// builtinDefault is PostgreSQL's compiled-in default for the settings pgwarm
// manages, so that writing "wal_level = replica" where it was unset (and
// so already replica from 10 on) is not reported as a restart.
func builtinDefault(name string, v inventory.Version) string {
	switch name {
	case "archive_mode", "wal_log_hints":
		return "off"
	case "archive_command", "restore_command", "archive_cleanup_command", "primary_conninfo", "primary_slot_name", "promote_trigger_file", "trigger_file":
		return ""
	case "archive_timeout":
		return "0"
	case "listen_addresses":
		return "localhost"
	case "port":
		return "5432"
	case "recovery_target_timeline":
		if v.AtLeast(12) {
			return "latest"
		}
		return "current"
	}
	if v.AtLeast(10) {
		switch name {
		case "wal_level":
			return "replica"
		case "max_wal_senders", "max_replication_slots":
			return "10"
		case "hot_standby":
			return "on"
		}
	} else {
		switch name {
		case "wal_level":
			return "minimal"
		case "max_wal_senders", "max_replication_slots":
			return "0"
		case "hot_standby":
			return "off"
		}
	}
	return "\x00unknown" // unset and not known: any value counts as a change
}

// sameValue compares two settings as PostgreSQL would for booleans
// (on/true/yes/1) and otherwise byte for byte.
func sameValue(a, b string) bool {
	if a == b {
		return true
	}
	ba, oka := boolValue(a)
	bb, okb := boolValue(b)
	return oka && okb && ba == bb
}

func boolValue(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "on", "true", "yes", "1", "t", "y":
		return true, true
	case "off", "false", "no", "0", "f", "n":
		return false, true
	}
	return false, false
}

// needsRestart reports whether a change of the setting only takes effect at
// server start (context postmaster in pg_settings) on major v.
// restartSetting reports whether a change of name takes a restart: what
// the running server says (ss: the settings whose pg_settings.context is
// postmaster), else pgwarm's own table for version v (the server is not
// running, or takes no connections).
func restartSetting(name string, v inventory.Version, ss *facts.ServerSettings) bool {
	if ss != nil {
		return slices.Contains(ss.Postmaster, name)
	}
	return needsRestart(name, v)
}

func needsRestart(name string, v inventory.Version) bool {
	switch name {
	case "archive_mode", "wal_level", "wal_log_hints", "max_wal_senders", "max_replication_slots",
		"hot_standby", "shared_preload_libraries", "listen_addresses", "port", "max_connections",
		"shared_buffers", "wal_buffers", "max_worker_processes", "max_prepared_transactions",
		"max_locks_per_transaction", "max_pred_locks_per_transaction", "track_commit_timestamp",
		"unix_socket_directories", "unix_socket_group", "unix_socket_permissions", "huge_pages",
		"superuser_reserved_connections", "data_directory", "hba_file", "ident_file", "external_pid_file",
		"cluster_name", "bonjour", "bonjour_name", "recovery_target", "recovery_target_lsn",
		"recovery_target_name", "recovery_target_time", "recovery_target_xid", "recovery_target_inclusive",
		"recovery_target_action", "recovery_target_timeline", "wal_decode_buffer_size", "max_files_per_process",
		"autovacuum_worker_slots", "io_method", "io_workers":
		return true
	case "restore_command", "archive_cleanup_command", "recovery_end_command":
		// Recovery settings moved into postgresql.conf in 12 as postmaster
		// settings; restore_command became reloadable in 14 (the cleanup
		// and end commands were sighup from 12).
		return name == "restore_command" && !v.AtLeast(14)
	case "primary_conninfo", "primary_slot_name":
		return !v.AtLeast(13) // sighup from 13
	case "autovacuum_max_workers":
		return !v.AtLeast(18)
	}
	return false
}
