package inventory

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Options carry what Parse needs from the environment, so that it stays pure.
type Options struct {
	// Home replaces a leading ~ in paths on the operator's machine.
	Home string
	// Dir is the absolute directory relative paths resolve against.
	Dir string
	// DirExists reports whether a directory exists (templates_dir); nil
	// skips the check.
	DirExists func(path string) bool
}

// Load reads, decodes, defaults and validates the inventory at path. An
// invalid file gives a Problems error listing everything wrong with it.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	home, _ := os.UserHomeDir()
	return Parse(path, data, Options{
		Home: home,
		Dir:  filepath.Dir(abs),
		DirExists: func(p string) bool {
			st, err := os.Stat(p)
			return err == nil && st.IsDir()
		},
	})
}

// Parse is Load without the file system: file names the inventory in
// messages.
func Parse(file string, data []byte, opts Options) (*Inventory, error) {
	d := &decoder{file: file, nodes: map[string]*yaml.Node{}, failed: map[string]bool{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{syntaxProblem(file, err)}
	}
	if len(doc.Content) == 0 {
		return nil, Problems{{File: file, Msg: "empty inventory: expected a mapping with cluster, postgres, replication, archive and hosts"}}
	}
	inv := &Inventory{File: file, Dir: opts.Dir}
	root := doc.Content[0]
	d.nodes[""] = root
	d.decodeStruct(root, reflect.ValueOf(inv).Elem(), "")
	if root.Kind == yaml.MappingNode {
		d.defaults(inv, opts)
		d.check(inv, opts)
	}
	if len(d.problems) > 0 {
		return nil, d.problems.sorted()
	}
	return inv, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns a yaml.v3 parse error into file:line: message.
func syntaxProblem(file string, err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Msg: "syntax error: " + m[2]}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	return Problem{File: file, Msg: "syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
}

// defaults fills every key the operator left out. Only keys whose absence
// is visible (not a zero value written on purpose) are defaulted from the
// node map.
func (d *decoder) defaults(inv *Inventory, opts Options) {
	pg := &inv.Postgres
	if pg.Layout == "" {
		pg.Layout = LayoutDebian
	}
	if pg.Port == 0 {
		pg.Port = 5432
	}
	r := &inv.Replication
	if _, set := d.nodes["replication.archive_timeout"]; !set {
		r.ArchiveTimeout = Duration(10 * time.Minute)
	}
	if _, set := d.nodes["replication.restore_retry"]; !set {
		r.RestoreRetry = Duration(DefaultRestoreRetry)
	}
	if r.TriggerFile == "" {
		r.TriggerFile = "/var/lib/pgwarm/" + inv.Cluster + "/promote.trigger"
	}
	if r.User == "" {
		r.User = "replicator"
	}
	if r.Seed == "" {
		r.Seed = SeedBasebackup
	}
	if r.PasswordEnv == "" {
		r.PasswordEnv = "PGWARM_REPLICATION_PASSWORD"
	}
	a := &inv.Archive
	if a.Compression == "" {
		a.Compression = "zstd"
	}
	if _, set := d.nodes["archive.marker"]; !set && a.Transport == TransportNFS {
		a.Marker = "mounted"
	}
	if a.User == "" {
		a.User = "postgres"
	}
	if a.Home == "" {
		// The account's conventional home: pgwarm never moves an existing
		// account's home (the postgres user keeps .pgpass and .ssh there).
		if a.User == "postgres" {
			a.Home = inv.Paths().Home
		} else {
			a.Home = "/home/" + a.User
		}
	}
	if a.MountPoint == "" {
		a.MountPoint = "/var/lib/pgwarm/" + inv.Cluster + "/archive"
	}
	if dns := inv.Failover.DNS; dns != nil && dns.Every == 0 {
		dns.Every = Duration(DefaultDNSEvery)
	}
	s := &inv.SSH
	if s.User == "" {
		s.User = "root"
	}
	if s.Port == 0 {
		s.Port = 22
	}
	if s.Become == "" {
		s.Become = defaultBecome(s.User)
	}
	if s.KnownHosts == "" {
		s.KnownHosts = "~/.ssh/known_hosts"
	}
	s.IdentityFile = localPath(s.IdentityFile, opts)
	s.KnownHosts = localPath(s.KnownHosts, opts)
	for i := range inv.Hosts {
		o := &inv.Hosts[i].SSH
		o.IdentityFile = localPath(o.IdentityFile, opts)
		o.KnownHosts = localPath(o.KnownHosts, opts)
	}
	inv.TemplatesDir = localPath(inv.TemplatesDir, opts)
}

// localPath resolves a path on the operator's machine: ~ to the home
// directory, relative paths against the inventory's directory.
func localPath(p string, opts Options) string {
	switch {
	case p == "":
		return ""
	case p == "~" || strings.HasPrefix(p, "~/"):
		return filepath.Join(opts.Home, p[1:])
	case filepath.IsAbs(p) || opts.Dir == "":
		return filepath.Clean(p)
	}
	return filepath.Join(opts.Dir, p)
}

var (
	clusterRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)
	hostRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	dnsRE      = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)
	envRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	roleNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	unixUserRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	settingRE  = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)
)

// ManagedSettings are the postgresql.conf settings pgwarm renders from
// replication and archive; postgres.settings may not set them, because a
// second value would silently change how WAL is shipped or replayed.
func ManagedSettings() []string {
	return []string{
		"archive_cleanup_command", "archive_command", "archive_library", "archive_mode", "archive_timeout",
		"hot_standby", "port", "primary_conninfo", "primary_slot_name", "promote_trigger_file",
		"recovery_target_timeline", "restore_command", "standby_mode", "trigger_file", "wal_retrieve_retry_interval",
	}
}

// includeDirectives are postgresql.conf's directives that read another
// file in place (PostgreSQL accepts them written like a setting).
var includeDirectives = []string{"include", "include_dir", "include_if_exists"}

// locationSettings move the files pgwarm renders (pg_hba.conf, the data
// directory with standby.signal or recovery.conf) away from where it
// writes them: its replication entries and recovery settings would be
// silently ignored.
var locationSettings = []string{"config_file", "data_directory", "hba_file", "ident_file"}

// check runs the cross-field rules. Rules that depend on a value that was
// already rejected are skipped so one mistake gives one message.
func (d *decoder) check(inv *Inventory, opts Options) {
	d.checkValues()
	if p := "cluster"; !d.failed[p] && d.nodes[p] != nil && !clusterRE.MatchString(inv.Cluster) {
		d.fail(p, d.nodes[p], "%q: use lower-case letters, digits, - and _ (at most 40), it names files and units", inv.Cluster)
	}
	d.checkPostgres(inv)
	d.checkReplication(inv)
	d.checkArchive(inv) // before checkHosts, which marks extra primaries as failed
	d.checkHosts(inv)
	if dns := inv.Failover.DNS; dns != nil {
		if p := "failover.dns.every"; !d.failed[p] && d.nodes[p] != nil {
			if !ValidDNSEvery(dns.Every.D()) {
				d.fail(p, d.nodes[p], "must be whole seconds from 1s to 59s that divide a minute evenly (1s, 2s, 3s, 4s, 5s, 6s, 10s, 12s, 15s, 20s, 30s) or whole minutes from 1m to 60m, got %s", dns.Every)
			}
		}
		if p := "failover.dns.name"; !d.failed[p] && d.nodes[p] != nil && !dnsRE.MatchString(dns.Name) {
			d.fail(p, d.nodes[p], "%q is not a DNS name", dns.Name)
		}
		if p := "failover.dns.target"; !d.failed[p] && d.nodes[p] != nil && net.ParseIP(dns.Target) == nil && !dnsRE.MatchString(dns.Target) {
			d.fail(p, d.nodes[p], "%q is not a DNS name or IP address", dns.Target)
		} else if sb := inv.Standbys(); !d.failed[p] && d.nodes[p] != nil && len(sb) > 1 && len(inv.DNSWatchers()) == 0 {
			var names []string
			for _, h := range sb {
				names = append(names, h.Name)
			}
			d.fail(p, d.nodes[p], "%q is none of the standbys %s: with several standbys the target must be the name or address of the one to promote (each would promote itself otherwise)",
				dns.Target, strings.Join(names, ", "))
		}
	}
	d.checkSSH("ssh", inv.SSH)
	if p := "templates_dir"; d.nodes[p] != nil && inv.TemplatesDir != "" && opts.DirExists != nil && !opts.DirExists(inv.TemplatesDir) {
		d.fail(p, d.nodes[p], "directory %s does not exist", inv.TemplatesDir)
	}
}

func (d *decoder) port(p string, v int) {
	if n := d.nodes[p]; n != nil && !d.failed[p] && (v < 1 || v > 65535) {
		d.fail(p, n, "port %d is out of range 1-65535", v)
	}
}

func (d *decoder) checkPostgres(inv *Inventory) {
	pg := inv.Postgres
	d.port("postgres.port", pg.Port)
	if pg.Layout == LayoutCustom && !d.failed["postgres.layout"] {
		for _, k := range []struct{ key, val string }{{"data_dir", pg.DataDir}, {"bin_dir", pg.BinDir}} {
			if k.val == "" {
				d.addf(d.nodes["postgres"], "postgres: layout custom needs %s", k.key)
			}
		}
	}
	managed := ManagedSettings()
	for name, val := range pg.Settings {
		p := "postgres.settings." + name
		n := d.nodes[p]
		switch {
		case d.failed[p]:
		case !settingRE.MatchString(name):
			d.fail(p, n, "%q is not a setting name", name)
		case contains(managed, name):
			d.fail(p, n, "managed by pgwarm from replication, archive and postgres.port; remove it from settings")
		case contains(includeDirectives, name):
			d.fail(p, n, "%s is a directive, not a setting: the file it includes would be read inside pgwarm.conf and could override what pgwarm manages (archive_command, restore_command, ...); write the settings themselves under postgres.settings", name)
		case contains(locationSettings, name):
			d.fail(p, n, "%s would make PostgreSQL read another file or directory than the one pgwarm manages; set postgres.data_dir or postgres.config_dir instead", name)
		case name == "wal_level" && val != "replica" && val != "logical":
			d.fail(p, n, "wal_level %q cannot ship WAL to a standby; use replica or logical", val)
		}
	}
}

func (d *decoder) checkReplication(inv *Inventory) {
	r := inv.Replication
	if p := "replication.archive_timeout"; d.nodes[p] != nil && !d.failed[p] {
		if t := r.ArchiveTimeout.D(); t%time.Second != 0 || t > time.Duration(1<<31-1)*time.Second {
			d.fail(p, d.nodes[p], "must be whole seconds (PostgreSQL counts archive_timeout in seconds), got %s", r.ArchiveTimeout)
		}
	}
	if p := "replication.restore_retry"; d.nodes[p] != nil && !d.failed[p] {
		if t := r.RestoreRetry.D(); t%time.Millisecond != 0 || t < time.Millisecond || t > time.Hour {
			d.fail(p, d.nodes[p], "must be whole milliseconds from 1ms to 1h (PostgreSQL's wal_retrieve_retry_interval), got %s", r.RestoreRetry)
		}
	}
	if p := "replication.user"; d.nodes[p] != nil && !d.failed[p] && !roleNameRE.MatchString(r.User) {
		d.fail(p, d.nodes[p], "%q: use a lower-case role name (letters, digits, _)", r.User)
	}
	if p := "replication.password_env"; d.nodes[p] != nil && !d.failed[p] && !envRE.MatchString(r.PasswordEnv) {
		d.fail(p, d.nodes[p], "%q is not an environment variable name; name the variable that holds the password, not the password", r.PasswordEnv)
	}
	if p := "replication.slot"; d.nodes[p] != nil && r.Slot && r.Mode != ModeStreaming && !d.failed["replication.mode"] {
		d.fail(p, d.nodes[p], "replication slots need mode streaming (mode is %s)", r.Mode)
	}
}

func (d *decoder) checkHosts(inv *Inventory) {
	n := d.nodes["hosts"]
	if n == nil || d.failed["hosts"] {
		return
	}
	names := map[string]int{}
	var primaries []int
	rolesOK := true
	for i, h := range inv.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if np := p + ".name"; d.nodes[np] != nil && !d.failed[np] {
			if !hostRE.MatchString(h.Name) {
				d.fail(np, d.nodes[np], "%q: use letters, digits, '.', '-' and '_'", h.Name)
			} else if first, dup := names[h.Name]; dup {
				d.fail(np, d.nodes[np], "duplicate host name %q (first at line %d)", h.Name, d.nodes[fmt.Sprintf("hosts[%d].name", first)].Line)
			} else {
				names[h.Name] = i
			}
		}
		if ap := p + ".address"; d.nodes[ap] != nil && !d.failed[ap] && net.ParseIP(h.Address) == nil && !dnsRE.MatchString(h.Address) {
			d.fail(ap, d.nodes[ap], "%q is not an IP address or DNS name", h.Address)
		}
		if d.failed[p+".role"] || d.failed[p] {
			rolesOK = false
		}
		if h.Role == RolePrimary {
			primaries = append(primaries, i)
		}
		d.checkSSH(p+".ssh", h.SSH)
	}
	if !rolesOK {
		return
	}
	switch {
	case len(primaries) == 0:
		d.fail("hosts", n, "no host has role primary; exactly one is needed")
	case len(primaries) > 1:
		first := inv.Hosts[primaries[0]].Name
		for _, i := range primaries[1:] {
			rp := fmt.Sprintf("hosts[%d].role", i)
			d.fail(rp, d.nodes[rp], "%s is a second primary (%s is already primary); exactly one is allowed", inv.Hosts[i].Name, first)
		}
	}
	if len(inv.Standbys()) == 0 {
		d.fail("hosts", n, "no host has role standby; at least one is needed")
	}
}

func (d *decoder) checkSSH(p string, s SSH) {
	d.port(p+".port", s.Port)
	if up := p + ".user"; d.nodes[up] != nil && !d.failed[up] && !unixUserRE.MatchString(s.User) {
		d.fail(up, d.nodes[up], "%q is not a user name", s.User)
	}
}

func (d *decoder) checkArchive(inv *Inventory) {
	a := inv.Archive
	if p := "archive.user"; d.nodes[p] != nil && !d.failed[p] && !unixUserRE.MatchString(a.User) {
		d.fail(p, d.nodes[p], "%q is not a user name", a.User)
	}
	// Its characters and form are checked with every other value (values.go).
	if p := "archive.marker"; d.nodes[p] != nil && !d.failed[p] && a.Marker != "" && a.Transport == TransportSSH {
		d.fail(p, d.nodes[p], "a marker proves an NFS mount; with transport ssh pgwarm-wal serve checks the archive itself")
	}
	p := "archive.host"
	n := d.nodes[p]
	if n == nil || d.failed[p] || d.failed["hosts"] {
		return
	}
	for i := range inv.Hosts {
		if d.failed[fmt.Sprintf("hosts[%d].role", i)] {
			return
		}
	}
	h, ok := inv.Host(a.Host)
	if !ok {
		var names []string
		for _, h := range inv.Hosts {
			names = append(names, h.Name)
		}
		msg := fmt.Sprintf("no host named %q", a.Host)
		if s := suggest(a.Host, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.fail(p, n, "%s", msg)
		return
	}
	if h.Role == RolePrimary {
		d.fail(p, n, "%s is the primary; the archive must survive the primary: use a host with role archive or a standby", a.Host)
		return
	}
	for i, other := range inv.Hosts {
		if other.Role == RoleArchive && other.Name != a.Host {
			rp := fmt.Sprintf("hosts[%d].role", i)
			d.fail(rp, d.nodes[rp], "%s has role archive but archive.host is %s", other.Name, a.Host)
		}
	}
}
