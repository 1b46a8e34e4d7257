package inventory

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// full sets every key the loader accepts; TestFullCoversEveryKey keeps it so.
const full = `cluster: main
postgres:
  version: 9.6
  layout: custom
  port: 5433
  settings: {shared_buffers: 1GB, max_connections: 100, jit: off}
  data_dir: /data/pg
  config_dir: /etc/pg
  bin_dir: /opt/pg/bin
  service: pg.service
  home: /home/postgres
replication:
  mode: streaming
  archive_timeout: 90s
  restore_retry: 250ms
  trigger_file: /run/pg.trigger
  user: repl
  password_env: REPL_PW
  slot: true
  seed: stream-tar
archive:
  host: pg2
  transport: nfs
  path: /srv/wal
  compression: gzip
  marker: here
  user: walkeeper
  home: /home/walkeeper
  mount_point: /mnt/wal
failover:
  dns: {name: db.example.com, target: 10.0.0.2, every: 5m}
ssh: {user: ops, port: 2200, identity_file: keys/id, become: none, known_hosts: ~/kh}
templates_dir: tmpl
hosts:
  - {name: pg1, address: 10.0.0.1, role: primary, ssh: {user: root, port: 22, identity_file: /k, become: sudo, known_hosts: kh2}}
  - {name: pg2, address: "fd00::2", role: standby}
`

func parseFull(t *testing.T) *Inventory {
	t.Helper()
	inv, err := Parse("full.yaml", []byte(full), Options{Home: "/home/op", Dir: "/inv"})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestParseFull(t *testing.T) {
	inv := parseFull(t)
	if inv.Postgres.Version != 90600 || inv.Postgres.Version.String() != "9.6" {
		t.Errorf("version %d %s", inv.Postgres.Version, inv.Postgres.Version)
	}
	if inv.Replication.ArchiveTimeout.D() != 90*time.Second || inv.Failover.DNS.Every.D() != 5*time.Minute {
		t.Errorf("durations %v %v", inv.Replication.ArchiveTimeout, inv.Failover.DNS.Every)
	}
	if inv.Replication.Seed != SeedStreamTar {
		t.Errorf("seed %q", inv.Replication.Seed)
	}
	if inv.Replication.RestoreRetry.D() != 250*time.Millisecond {
		t.Errorf("restore_retry %v", inv.Replication.RestoreRetry)
	}
	if inv.Postgres.Settings["jit"] != "off" || inv.Postgres.Settings["max_connections"] != "100" {
		t.Errorf("settings %v", inv.Postgres.Settings)
	}
	if inv.TemplatesDir != "/inv/tmpl" || inv.SSH.IdentityFile != "/inv/keys/id" || inv.SSH.KnownHosts != "/home/op/kh" {
		t.Errorf("paths: %q %q %q", inv.TemplatesDir, inv.SSH.IdentityFile, inv.SSH.KnownHosts)
	}
	pg1 := inv.SSHFor(inv.Primary())
	if pg1 != (SSH{User: "root", Port: 22, IdentityFile: "/k", Become: "sudo", KnownHosts: "/inv/kh2"}) {
		t.Errorf("SSHFor(pg1) = %+v", pg1)
	}
	if pg2 := inv.SSHFor(inv.Standbys()[0]); pg2 != (SSH{User: "ops", Port: 2200, IdentityFile: "/inv/keys/id", Become: "none", KnownHosts: "/home/op/kh"}) {
		t.Errorf("SSHFor(pg2) = %+v", pg2)
	}
	p := inv.Paths()
	want := Paths{DataDir: "/data/pg", ConfigDir: "/etc/pg", BinDir: "/opt/pg/bin", Service: "pg.service",
		Ctl: "/opt/pg/bin/pg_ctl -D /data/pg", Home: "/home/postgres", MainConfig: "/etc/pg/postgresql.conf",
		SettingsFile: "/etc/pg/pgwarm.conf", HBAFile: "/etc/pg/pg_hba.conf", StateDir: "/var/lib/pgwarm/main"}
	if p != want {
		t.Errorf("Paths = %+v", p)
	}
	if got := inv.ArchiveURL(inv.Primary()); got != "/mnt/wal" {
		t.Errorf("nfs URL on the primary = %q", got)
	}
	if got := inv.ArchiveURL(inv.ArchiveHost()); got != "/srv/wal" {
		t.Errorf("URL on the archive host = %q", got)
	}
}

// Adding a key to the structs without adding it to full fails here, so
// the schema test below always sees every key.
func TestFullCoversEveryKey(t *testing.T) {
	for _, key := range allKeys(reflect.TypeFor[Inventory](), "") {
		last := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(full, last+":") {
			t.Errorf("key %s is not used in the full inventory", key)
		}
	}
}

func allKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == versionType || t == durationType {
		return nil
	}
	var out []string
	for _, f := range reflect.VisibleFields(t) {
		if n := yamlName(f); n != "" {
			out = append(out, join(prefix, n))
			out = append(out, allKeys(f.Type, join(prefix, n))...)
		}
	}
	return out
}

func TestLayoutPaths(t *testing.T) {
	for _, tc := range []struct {
		layout, version string
		want            Paths
	}{
		{"debian", "9.6", Paths{DataDir: "/var/lib/postgresql/9.6/main", ConfigDir: "/etc/postgresql/9.6/main", BinDir: "/usr/lib/postgresql/9.6/bin",
			Service: "postgresql@9.6-main", Ctl: "pg_ctlcluster 9.6 main", Home: "/var/lib/postgresql", MainConfig: "/etc/postgresql/9.6/main/postgresql.conf",
			SettingsFile: "/etc/postgresql/9.6/main/pgwarm.conf", HBAFile: "/etc/postgresql/9.6/main/pg_hba.conf", StateDir: "/var/lib/pgwarm/main"}},
		{"rhel", "17", Paths{DataDir: "/var/lib/pgsql/17/data", ConfigDir: "/var/lib/pgsql/17/data", BinDir: "/usr/pgsql-17/bin",
			Service: "postgresql-17", Ctl: "/usr/pgsql-17/bin/pg_ctl -D /var/lib/pgsql/17/data", Home: "/var/lib/pgsql", MainConfig: "/var/lib/pgsql/17/data/postgresql.conf",
			SettingsFile: "/var/lib/pgsql/17/data/pgwarm.conf", HBAFile: "/var/lib/pgsql/17/data/pg_hba.conf", StateDir: "/var/lib/pgwarm/main"}},
	} {
		src := strings.Replace(strings.Replace(minimal, "version: 15", "version: "+tc.version, 1), "layout: debian", "layout: "+tc.layout, 1)
		inv, err := Parse("m.yaml", []byte(src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := inv.Paths(); got != tc.want {
			t.Errorf("%s %s: %+v", tc.layout, tc.version, got)
		}
	}
}

const minimal = `cluster: main
postgres: {version: 15, layout: debian}
replication: {mode: warm}
archive: {host: arch, transport: ssh, path: /srv/a}
hosts:
  - {name: pg1, address: 10.0.0.1, role: primary}
  - {name: pg2, address: 10.0.0.2, role: standby}
  - {name: arch, address: 10.0.0.3, role: archive, ssh: {port: 2222}}
`

// TestArchiveHomeDefault: archive.home is the account's conventional home,
// never a directory pgwarm would have to move an existing account to.
func TestArchiveHomeDefault(t *testing.T) {
	for _, c := range []struct{ extra, layout, want string }{
		{"", "debian", "/var/lib/postgresql"},
		{"", "rhel", "/var/lib/pgsql"},
		{", user: backup", "debian", "/home/backup"},
		{", user: backup, home: /srv/backup", "rhel", "/srv/backup"},
	} {
		src := strings.Replace(minimal, "layout: debian", "layout: "+c.layout, 1)
		src = strings.Replace(src, "path: /srv/a}", "path: /srv/a"+c.extra+"}", 1)
		inv, err := Parse("m.yaml", []byte(src), Options{Home: "/h"})
		if err != nil {
			t.Fatalf("%s %q: %v", c.layout, c.extra, err)
		}
		if inv.Archive.Home != c.want {
			t.Errorf("%s %q: archive.home = %q, want %q", c.layout, c.extra, inv.Archive.Home, c.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	inv, err := Parse("m.yaml", []byte(minimal), Options{Home: "/h"})
	if err != nil {
		t.Fatal(err)
	}
	r := inv.Replication
	if r.ArchiveTimeout.D() != 10*time.Minute || r.User != "replicator" || r.PasswordEnv != "PGWARM_REPLICATION_PASSWORD" || r.TriggerFile != "/var/lib/pgwarm/main/promote.trigger" {
		t.Errorf("replication defaults %+v", r)
	}
	a := inv.Archive
	if a.Compression != "zstd" || a.Marker != "" || a.User != "postgres" || a.Home != "/var/lib/postgresql" {
		t.Errorf("archive defaults %+v", a)
	}
	if s := inv.SSH; s.User != "root" || s.Port != 22 || s.Become != "none" || s.KnownHosts != "/h/.ssh/known_hosts" {
		t.Errorf("ssh defaults %+v", s)
	}
	if got := inv.ArchiveURL(inv.Primary()); got != "ssh://postgres@10.0.0.3:2222/srv/a" {
		t.Errorf("URL %q", got)
	}
	if inv.Summary() != "cluster main, PostgreSQL 15, primary pg1, standbys pg2, archive arch via ssh" {
		t.Errorf("summary %q", inv.Summary())
	}
	if r.Seed != SeedBasebackup {
		t.Errorf("seed default %q, want basebackup", r.Seed)
	}
	if r.RestoreRetry.D() != DefaultRestoreRetry {
		t.Errorf("restore_retry default %v", r.RestoreRetry)
	}
	for _, bad := range []string{"0s", "1500us", "2h"} {
		_, err := Parse("m.yaml", []byte(strings.Replace(minimal, "{mode: warm}", "{mode: warm, restore_retry: "+bad+"}", 1)), Options{})
		if err == nil || !strings.Contains(err.Error(), "replication.restore_retry: must be whole milliseconds") {
			t.Errorf("restore_retry %s: %v", bad, err)
		}
	}
	// An explicit 0s disables archive_timeout instead of taking the default.
	inv, err = Parse("m.yaml", []byte(strings.Replace(minimal, "{mode: warm}", "{mode: warm, archive_timeout: 0s}", 1)), Options{})
	if err != nil || inv.Replication.ArchiveTimeout != 0 {
		t.Errorf("archive_timeout 0s: %v %v", inv, err)
	}
	// nfs gets the seed's marker by default.
	inv, err = Parse("m.yaml", []byte(strings.Replace(minimal, "transport: ssh", "transport: nfs", 1)), Options{})
	if err != nil || inv.Archive.Marker != "mounted" || inv.Archive.MountPoint != "/var/lib/pgwarm/main/archive" {
		t.Errorf("nfs defaults: %+v %v", inv, err)
	}
}

func TestArchiveURLIPv6(t *testing.T) {
	for port, want := range map[string]string{
		"22":   "ssh://postgres@[fd00::3]/srv/a",
		"2222": "ssh://postgres@[fd00::3]:2222/srv/a",
	} {
		src := strings.Replace(strings.Replace(minimal, "10.0.0.3", `"fd00::3"`, 1), "port: 2222", "port: "+port, 1)
		inv, err := Parse("m.yaml", []byte(src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := inv.ArchiveURL(inv.Primary()); got != want {
			t.Errorf("port %s: %q, want %q", port, got, want)
		}
	}
}

func TestVersion(t *testing.T) {
	for s, ok := range map[string]bool{"9.6": true, "10": true, "18": true, "9.5": false, "19": false, "8.3": false, "15.2": false, "x": false} {
		v, err := ParseVersion(s)
		if (err == nil) != ok {
			t.Errorf("%s: %v", s, err)
		}
		if ok && v.String() != s {
			t.Errorf("%s round-trips to %s", s, v)
		}
	}
	if v, _ := ParseVersion("9.6"); !v.Matches(90624) || v.Matches(100001) || v.AtLeast(10) {
		t.Error("9.6 comparisons")
	}
	if v, _ := ParseVersion("16"); !v.Matches(160004) || v.Matches(150004) || !v.AtLeast(16) || v.AtLeast(17) {
		t.Error("16 comparisons")
	}
}

func TestProblemsAreAllReportedAndSorted(t *testing.T) {
	src := "hosts: 3\ncluster: BAD\nreplication: {mode: x}\n"
	_, err := Parse("p.yaml", []byte(src), Options{})
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err %T %v", err, err)
	}
	want := `p.yaml:1:1: inventory: missing required key "postgres"
p.yaml:1:1: inventory: missing required key "archive"
p.yaml:1:8: hosts: expected a list, got a number
p.yaml:2:10: cluster: "BAD": use lower-case letters, digits, - and _ (at most 40), it names files and units
p.yaml:3:21: replication.mode: "x" is not one of warm, hot, streaming`
	if ps.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", ps.Error(), want)
	}
}

func TestSuggest(t *testing.T) {
	for in, want := range map[string]string{"mdoe": "mode", "transprot": "transport", "zzz": "", "Mode": "mode"} {
		if got := suggest(in, []string{"mode", "transport", "user"}); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func reflectTypeInventory() reflect.Type { return reflect.TypeFor[Inventory]() }

// failover.dns.every: seconds that divide a minute (cron loops inside its
// minute) or whole minutes; 5s when left out.
func TestDNSEvery(t *testing.T) {
	for _, c := range []struct {
		every string
		want  time.Duration
		ok    bool
	}{
		{"", DefaultDNSEvery, true},
		{"1s", time.Second, true},
		{"5s", 5 * time.Second, true},
		{"30s", 30 * time.Second, true},
		{"60s", time.Minute, true},
		{"1m", time.Minute, true},
		{"5m", 5 * time.Minute, true},
		{"1h", time.Hour, true},
		{"7s", 0, false},
		{"45s", 0, false},
		{"1500ms", 0, false},
		{"500ms", 0, false},
		{"90s", 0, false},
		{"61m", 0, false},
	} {
		dns := "failover:\n  dns: {name: db.example.com, target: 10.0.0.2}\n"
		if c.every != "" {
			dns = "failover:\n  dns: {name: db.example.com, target: 10.0.0.2, every: " + c.every + "}\n"
		}
		inv, err := Parse("m.yaml", []byte(minimal+dns), Options{})
		if !c.ok {
			if err == nil || !strings.Contains(err.Error(), "m.yaml:10:") || !strings.Contains(err.Error(), "failover.dns.every: must be whole seconds") {
				t.Errorf("every %s: want a failover.dns.every problem at m.yaml:10, got %v", c.every, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("every %q: %v", c.every, err)
			continue
		}
		if got := inv.Failover.DNS.Every.D(); got != c.want {
			t.Errorf("every %q: %s, want %s", c.every, got, c.want)
		}
	}
}

// One standby watches the name: the one the target names, or the only one.
func TestDNSWatchers(t *testing.T) {
	two := strings.Replace(minimal, "  - {name: arch,", "  - {name: pg3, address: 10.0.0.4, role: standby}\n  - {name: arch,", 1)
	for _, c := range []struct {
		src, target, want, problem string
	}{
		{minimal, "pg-secondary", "pg2", ""},
		{minimal, "10.0.0.2", "pg2", ""},
		{two, "10.0.0.4", "pg3", ""},
		{two, "PG2.", "pg2", ""},
		{two, "pg-secondary", "", `m.yaml:11:39: failover.dns.target: "pg-secondary" is none of the standbys pg2, pg3`},
	} {
		inv, err := Parse("m.yaml", []byte(c.src+"failover:\n  dns: {name: db.example.com, target: "+c.target+"}\n"), Options{})
		if c.problem != "" {
			if err == nil || !strings.Contains(err.Error(), c.problem) {
				t.Errorf("target %s: want %q, got %v", c.target, c.problem, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("target %s: %v", c.target, err)
			continue
		}
		var got []string
		for _, h := range inv.DNSWatchers() {
			got = append(got, h.Name)
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("target %s: watchers %v, want %s", c.target, got, c.want)
		}
	}
}
