// Package inventory is pgwarm's YAML model of a standby pair: one primary,
// one or more standbys and an archive host. Load parses and validates a file
// and reports every problem at once as file:line:col: message.
//
// The struct definitions below are the single source of truth for the
// loader (which walks the YAML nodes against them by reflection), for the
// validator's enum checks and for the JSON Schema printed by `pgwarm schema`.
// Struct tags used:
//
//	yaml:"name"       the key
//	enum:"a|b|c"      allowed values
//	doc:"text"        description for the schema
//	required:"true"   the key must be present
package inventory

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Inventory mirrors SPEC.md's YAML. After Load, defaults are filled in and
// relative paths are absolute.
type Inventory struct {
	Cluster      string      `yaml:"cluster" required:"true" doc:"cluster name: lower-case letters, digits, - and _; used in file and unit names"`
	Postgres     Postgres    `yaml:"postgres" required:"true" doc:"the PostgreSQL installation, the same on every PostgreSQL host"`
	Replication  Replication `yaml:"replication" required:"true" doc:"how the standbys follow the primary"`
	Archive      Archive     `yaml:"archive" required:"true" doc:"the WAL archive that survives the primary"`
	Failover     Failover    `yaml:"failover" doc:"optional automatic failover triggers"`
	SSH          SSH         `yaml:"ssh" doc:"how pgwarm logs in to every host (defaults; hosts may override)"`
	Hosts        []Host      `yaml:"hosts" required:"true" doc:"every machine of the pair"`
	TemplatesDir string      `yaml:"templates_dir" doc:"directory of operator templates that replace built-in ones by file name; relative to the inventory file"`

	// File is the inventory path as given to Load; Dir is its absolute directory.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`
}

// Layout names a PostgreSQL packaging convention.
type Layout string

const (
	LayoutDebian Layout = "debian"
	LayoutRHEL   Layout = "rhel"
	LayoutCustom Layout = "custom"
)

// Postgres describes the installation.
type Postgres struct {
	Version   Version           `yaml:"version" required:"true" doc:"major version: 9.6 or 10 to 18; the same on every PostgreSQL host"`
	Layout    Layout            `yaml:"layout" enum:"debian|rhel|custom" doc:"packaging layout that decides the default paths and service (default debian)"`
	Port      int               `yaml:"port" doc:"PostgreSQL port (default 5432)"`
	Settings  map[string]string `yaml:"settings" doc:"extra postgresql.conf settings pgwarm manages (values are strings, numbers or booleans)"`
	DataDir   string            `yaml:"data_dir" doc:"data directory (required with layout custom)"`
	ConfigDir string            `yaml:"config_dir" doc:"directory of postgresql.conf and pg_hba.conf (custom: default data_dir)"`
	BinDir    string            `yaml:"bin_dir" doc:"directory of pg_ctl, psql, pg_basebackup (required with layout custom)"`
	Service   string            `yaml:"service" doc:"systemd unit of the server (default per layout)"`
	Home      string            `yaml:"home" doc:"home directory of the postgres OS user (default per layout)"`
}

// Mode is the replication mode.
type Mode string

const (
	// ModeWarm is log shipping only, standby not queryable (the seed).
	ModeWarm Mode = "warm"
	// ModeHot adds read-only queries on the standby.
	ModeHot Mode = "hot"
	// ModeStreaming adds WAL streaming, the archive as fallback.
	ModeStreaming Mode = "streaming"
)

// Replication says how standbys follow the primary.
type Replication struct {
	Mode           Mode     `yaml:"mode" required:"true" enum:"warm|hot|streaming" doc:"warm: log shipping only (the seed); hot: + read-only queries; streaming: + WAL streaming, archive as fallback"`
	ArchiveTimeout Duration `yaml:"archive_timeout" doc:"force a WAL switch after this long (like 10m or 60s; default 10m)"`
	RestoreRetry   Duration `yaml:"restore_retry" doc:"how long a standby waits before asking the archive again for a segment that was not there yet (wal_retrieve_retry_interval; whole milliseconds, 1ms to 1h; default 200ms)"`
	TriggerFile    string   `yaml:"trigger_file" doc:"absolute path whose appearance ends recovery (PostgreSQL up to 15; default /var/lib/pgwarm/<cluster>/promote.trigger)"`
	User           string   `yaml:"user" doc:"replication role (default replicator)"`
	PasswordEnv    string   `yaml:"password_env" doc:"name of the environment variable holding the replication password (the secret never lives in the file)"`
	Slot           bool     `yaml:"slot" doc:"streaming: one physical replication slot per standby"`
	Seed           Seed     `yaml:"seed" enum:"basebackup|stream-tar" doc:"how a standby is seeded: basebackup (pg_basebackup over a replication connection, the default) or stream-tar (the seed's own method, no replication connection: pg_backup_start, tar of the data directory relayed over SSH through pgwarm, pg_backup_stop; the WAL comes from the archive)"`
}

// Seed is how a standby's data directory is made from the primary's.
type Seed string

const (
	// SeedBasebackup runs pg_basebackup on the standby over a replication
	// connection to the primary.
	SeedBasebackup Seed = "basebackup"
	// SeedStreamTar runs the low-level backup API on the primary and
	// relays a tar of its data directory to the standby through pgwarm.
	SeedStreamTar Seed = "stream-tar"
)

// Transport is how hosts reach the archive.
type Transport string

const (
	TransportSSH Transport = "ssh"
	TransportNFS Transport = "nfs"
)

// Archive is the WAL archive.
type Archive struct {
	Host        string    `yaml:"host" required:"true" doc:"a host with role archive, or a standby (the seed's layout); never the primary"`
	Transport   Transport `yaml:"transport" required:"true" enum:"ssh|nfs" doc:"ssh: pgwarm-wal serve as a forced command; nfs: the archive directory exported and mounted"`
	Path        string    `yaml:"path" required:"true" doc:"absolute archive directory on the archive host"`
	Compression string    `yaml:"compression" enum:"zstd|gzip|none" doc:"compression of archived segments (default zstd)"`
	Marker      string    `yaml:"marker" doc:"file name in the archive root that proves it is mounted (default mounted for nfs, none for ssh)"`
	User        string    `yaml:"user" doc:"account on the archive host that owns the archive and runs pgwarm-wal serve (default postgres)"`
	Home        string    `yaml:"home" doc:"home directory of that account, where sshd reads its authorized_keys; must match its home in passwd, pgwarm never changes it (default: the layout's postgres home for postgres, /home/<user> otherwise)"`
	MountPoint  string    `yaml:"mount_point" doc:"nfs: where PostgreSQL hosts mount the archive (default /var/lib/pgwarm/<cluster>/archive)"`
}

// Failover holds optional automatic triggers.
type Failover struct {
	DNS *DNSTrigger `yaml:"dns" doc:"the seed's trigger: promote the standby when a DNS name resolves to the target"`
}

// DNSTrigger is the seed's cron job: when Name resolves to Target (and the
// old primary does not answer as a primary) the standby is promoted.
type DNSTrigger struct {
	Name   string   `yaml:"name" required:"true" doc:"DNS name the clients use (the seed's CNAME postgres)"`
	Target string   `yaml:"target" required:"true" doc:"the name or address the DNS name points to once failover is wanted"`
	Every  Duration `yaml:"every" doc:"check interval: whole seconds dividing a minute (1s to 30s) or whole minutes (1m to 60m); default 5s"`
}

// DefaultDNSEvery is how often the DNS trigger checks when failover.dns.every
// is not set. Each check is one getent lookup (the resolver's cache or
// /etc/hosts; no connection to anything), so checking every 5 s costs
// nothing worth measuring; the old primary is only asked (pg_isready, then
// psql) once the name has changed. 5 s keeps the trigger's part of a
// failover at 2.5 s on average and 5 s at most, inside the target of a write
// on the standby within 10 s of the name changing (the seed's cron needed up
// to a minute, plus pg_standby's 60 s sleep).
const DefaultDNSEvery = 5 * time.Second

// ValidDNSEvery reports whether d can be a DNS trigger period: whole
// seconds that divide a minute evenly (cron starts the watcher each minute
// and it checks 60/d times inside it, so the periods line up across
// minutes), or whole minutes up to an hour (one cron run each).
func ValidDNSEvery(d time.Duration) bool {
	switch {
	case d >= time.Minute:
		return d%time.Minute == 0 && d <= time.Hour
	case d >= time.Second:
		return d%time.Second == 0 && time.Minute%d == 0
	}
	return false
}

// SSH is how pgwarm logs in. In SSH (the defaults) every field may be set;
// in Host.SSH only the fields that differ.
type SSH struct {
	User         string `yaml:"user" doc:"login user (default root)"`
	Port         int    `yaml:"port" doc:"SSH port (default 22)"`
	IdentityFile string `yaml:"identity_file" doc:"private key; ~ and paths relative to the inventory file are resolved"`
	Become       string `yaml:"become" enum:"sudo|none" doc:"how a non-root user becomes root (default sudo unless user is root)"`
	KnownHosts   string `yaml:"known_hosts" doc:"known_hosts file (default ~/.ssh/known_hosts)"`
}

// Role is what a host does.
type Role string

const (
	RolePrimary Role = "primary"
	RoleStandby Role = "standby"
	RoleArchive Role = "archive"
)

// Host is one machine.
type Host struct {
	Name    string `yaml:"name" required:"true" doc:"unique name: letters, digits, '.', '-' and '_'"`
	Address string `yaml:"address" required:"true" doc:"IP address or DNS name, used for SSH and by the other hosts"`
	Role    Role   `yaml:"role" required:"true" enum:"primary|standby|archive" doc:"primary, standby or archive"`
	SSH     SSH    `yaml:"ssh" doc:"overrides of the ssh defaults for this host"`
}

// IsPostgres reports whether PostgreSQL runs on h.
func (h Host) IsPostgres() bool { return h.Role == RolePrimary || h.Role == RoleStandby }

// Version is a PostgreSQL major version as server_version_num of its first
// release: 90600 for 9.6, 150000 for 15.
type Version int

// Supported lists the majors pgwarm renders for, oldest first.
func Supported() []Version {
	v := []Version{90600}
	for m := 10; m <= 18; m++ {
		v = append(v, Version(m*10000))
	}
	return v
}

// ParseVersion accepts "9.6" and "10" … "18".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	var v Version
	if s == "9.6" {
		v = 90600
	} else if n, err := strconv.Atoi(s); err == nil && n >= 10 {
		v = Version(n * 10000)
	}
	for _, ok := range Supported() {
		if v == ok {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unsupported PostgreSQL version %q (supported: 9.6, 10 to 18)", s)
}

// Major is the major number as PostgreSQL spells it in PG_VERSION and paths: "9.6", "15".
func (v Version) String() string {
	if v < 100000 {
		return fmt.Sprintf("%d.%d", v/10000, v/100%100)
	}
	return strconv.Itoa(int(v / 10000))
}

// AtLeast reports whether v is major m or later (m as written: 12, 16).
func (v Version) AtLeast(m int) bool { return int(v) >= m*10000 }

// Matches reports whether a running server's server_version_num belongs to v.
func (v Version) Matches(serverVersionNum int) bool {
	if v < 100000 {
		return serverVersionNum/100 == int(v)/100
	}
	return serverVersionNum/10000 == int(v)/10000
}

// Duration is a time.Duration written like 10m or 60s.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Paths are the resolved locations of one PostgreSQL installation.
type Paths struct {
	DataDir      string // PGDATA
	ConfigDir    string // holds postgresql.conf and pg_hba.conf
	BinDir       string // pg_ctl, psql, pg_basebackup, pg_rewind
	Service      string // systemd unit
	Ctl          string // how to start/stop/promote without systemd: "pg_ctlcluster 15 main" or "/usr/pgsql-15/bin/pg_ctl -D /var/lib/pgsql/15/data"
	Home         string // home of the postgres OS user
	MainConfig   string // postgresql.conf, which gets a managed include block
	SettingsFile string // pgwarm's own settings file, included last from postgresql.conf
	HBAFile      string // pg_hba.conf
	StateDir     string // /var/lib/pgwarm/<cluster>: trigger file, NFS mount point
}
