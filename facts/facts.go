// Package facts reads what a host has now — OS, architecture, installed
// PostgreSQL, data directory state, the hash of every managed path, the
// archive filesystem — read-only and in one SSH round trip per host.
//
// Gather is the only effect; everything else (building the probe script,
// parsing its output) is pure, so the parser is tested against recorded
// output and the script against a local shell.
package facts

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgwarm/pgwarm/host"
)

// Facts is what one host looked like when it was probed. It is a plain,
// JSON-serialisable value: golden plan tests store it as observed state.
type Facts struct {
	Host     string      `json:"host"`
	OS       OS          `json:"os"`
	Machine  string      `json:"machine"`       // uname -m
	Arch     string      `json:"arch"`          // normalised: amd64, arm64, i386, armhf, ppc64el, s390x
	Systemd  bool        `json:"systemd"`       // systemd is PID 1 (containers often have none)
	Root     bool        `json:"root"`          // the probe ran as uid 0 (directly or through sudo)
	Postgres []Install   `json:"postgres"`      // installed majors, sorted by version
	PGUser   *User       `json:"postgres_user"` // nil: no postgres OS user
	DataDir  *DataDir    `json:"data_dir"`      // nil: not asked (archive host)
	Service  *Service    `json:"service"`       // nil: not asked or no systemd
	Files    Files       `json:"files"`         // every managed path asked for
	Archive  *Filesystem `json:"archive"`       // nil: not asked (not the archive host)
	// ArchiveUser is the archive account on the archive host when asked
	// for: nil not asked, Name "" no such account.
	ArchiveUser *User `json:"archive_user,omitempty"`
	// HostKeys are the SSH host public keys ("type base64"), ed25519 first,
	// when asked for (the known_hosts entries other hosts get).
	HostKeys []string `json:"host_keys,omitempty"`
}

// OS is the part of /etc/os-release that matters.
type OS struct {
	ID         string `json:"id"`
	VersionID  string `json:"version_id"`
	PrettyName string `json:"pretty_name"`
}

// Install is one installed PostgreSQL major version.
type Install struct {
	Major  string `json:"major"` // "15", "9.6"
	BinDir string `json:"bin_dir"`
}

// User is an OS account (the postgres user, the archive user).
type User struct {
	Name string `json:"name,omitempty"`
	UID  int    `json:"uid"`
	Home string `json:"home"`
}

// DataDirState says what is at the data directory path.
type DataDirState string

const (
	DataDirAbsent      DataDirState = "absent"
	DataDirEmpty       DataDirState = "empty"
	DataDirInitialised DataDirState = "initialised" // PG_VERSION present
	DataDirOther       DataDirState = "other"       // non-empty, no PG_VERSION: not a cluster
	DataDirNotDir      DataDirState = "not-a-directory"
	DataDirUnreadable  DataDirState = "unreadable" // the probe lacks permission (no sudo?)
)

// DataDir is the state of the PostgreSQL data directory.
type DataDir struct {
	Path       string       `json:"path"`
	State      DataDirState `json:"state"`
	Version    string       `json:"version,omitempty"`          // PG_VERSION
	SystemID   string       `json:"system_id,omitempty"`        // pg_controldata "Database system identifier"
	WALSegSize uint32       `json:"wal_segment_size,omitempty"` // pg_controldata "Bytes per WAL segment"
	Timeline   int          `json:"timeline,omitempty"`         // latest checkpoint's TimeLineID
	// WALTimeline is the newest timeline with a history file in pg_wal:
	// a primary promoted moments ago is on it while the control file
	// still names the old one (until the checkpoint after the promotion).
	WALTimeline  int      `json:"wal_timeline,omitempty"`
	ClusterState string   `json:"cluster_state,omitempty"` // "in production", "in archive recovery", "shut down", ...
	Running      bool     `json:"running"`                 // postmaster.pid names a live postgres process
	InRecovery   bool     `json:"in_recovery"`             // running and the control file says recovery
	Signals      []string `json:"signals,omitempty"`       // standby.signal, recovery.signal, recovery.conf present
	// Role is the replication role's state when asked and the server runs:
	// "present", "absent", "lacking" (exists without LOGIN REPLICATION) or
	// "" (not checked: server down, psql failed).
	Role string `json:"replication_role,omitempty"`
	// Settings is what the running server says about restarts; nil when
	// it was not asked (not running, psql failed, a warm standby that
	// takes no connections).
	Settings *ServerSettings `json:"server_settings,omitempty"`
}

// ServerSettings: the settings whose pg_settings.context is postmaster
// (they take effect only at a restart), and those already waiting for one
// (pending_restart: changed in a file and reloaded, not restarted).
type ServerSettings struct {
	Postmaster     []string `json:"postmaster"`
	PendingRestart []string `json:"pending_restart"`
}

// CurrentTimeline is the timeline the cluster writes (a primary) or last
// checkpointed on: the newer of the control file's and pg_wal's newest
// history file. 0 when unknown (no cluster, or not read).
func (dd *DataDir) CurrentTimeline() int {
	if dd == nil || dd.State != DataDirInitialised {
		return 0
	}
	return max(dd.Timeline, dd.WALTimeline)
}

// Service is what systemd says about the PostgreSQL unit.
type Service struct {
	Name    string `json:"name"`
	Active  string `json:"active"`  // systemctl is-active
	Enabled string `json:"enabled"` // systemctl is-enabled
}

// FileType is the kind of thing at a managed path.
type FileType string

const (
	Missing FileType = ""
	Regular FileType = "file"
	Dir     FileType = "dir"
	Other   FileType = "other" // socket, device, ...: never overwritten silently
)

// File is the current state of one managed path.
type File struct {
	Type   FileType `json:"type,omitempty"`
	Mode   string   `json:"mode,omitempty"` // octal permission bits, "0644"
	Owner  string   `json:"owner,omitempty"`
	Group  string   `json:"group,omitempty"`
	Size   int64    `json:"size,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	// Content is the file's text when it was asked for (managed blocks,
	// config files to diff); nil when not asked or too large.
	Content *string `json:"content,omitempty"`
	// Unreadable is set when the path exists but could not be read.
	Unreadable bool `json:"unreadable,omitempty"`
}

// Exists reports whether anything is at the path.
func (f File) Exists() bool { return f.Type != Missing }

// Files maps absolute paths to their state. A path that was asked for is
// always present in the map (Type Missing when absent).
type Files map[string]File

// Filesystem is the filesystem an archive path lives (or would live) on.
type Filesystem struct {
	Path       string `json:"path"`   // the archive path asked about
	Exists     bool   `json:"exists"` // the path itself exists
	Probed     string `json:"probed"` // the nearest existing parent that df ran on
	Device     string `json:"device"`
	Type       string `json:"type"` // ext4, xfs, nfs4, overlay, tmpfs, ...
	SizeBytes  int64  `json:"size_bytes"`
	AvailBytes int64  `json:"avail_bytes"`
	UsedPct    int    `json:"used_pct"`
	MountPoint string `json:"mount_point"`
}

// Request says what to probe on one host beyond the basics.
type Request struct {
	DataDir     string // "" on hosts without PostgreSQL duty
	BinDir      string // the inventory's bin dir; probed even when not a standard layout
	Service     string // systemd unit name, e.g. postgresql@15-main
	Paths       []PathRequest
	ArchivePath string // on the archive host: df of its nearest existing parent
	HostKeys    bool   // read /etc/ssh/ssh_host_*_key.pub
	ArchiveUser string // on the archive host: getent passwd of this account
	// Role and Port: when the server runs, ask it (psql as postgres over
	// the local socket) whether this replication role exists.
	Role string
	Port int
}

// PathRequest is one managed path; Content asks for its text as well as its
// hash (never for secrets or binaries).
type PathRequest struct {
	Path    string
	Content bool
}

// MaxContent caps the text collected per file; bigger files get a hash only.
const MaxContent = 1 << 20

// Gather probes h with one composite read-only shell script and parses
// its output. Nothing is written on the host, not even a temp file.
func Gather(ctx context.Context, h host.Host, req Request) (Facts, error) {
	cmd, err := Probe(req)
	if err != nil {
		return Facts{}, fmt.Errorf("%s: facts: %w", h.Name(), err)
	}
	res, err := h.Run(ctx, cmd)
	return Read(h.Name(), req, res, err)
}

// Probe is the one command Gather runs for req, for callers that run it
// themselves (as the first command of a connection, say: host.DialRun).
func Probe(req Request) (host.Cmd, error) {
	script, err := Script(req)
	if err != nil {
		return host.Cmd{}, err
	}
	return host.Cmd{Command: script}, nil
}

// Read turns the result of running Probe(req) on host name — or the
// error of running it — into Facts, with Gather's errors.
func Read(name string, req Request, res host.Result, runErr error) (Facts, error) {
	if runErr != nil {
		return Facts{}, fmt.Errorf("facts: %w", runErr) // host errors already name the host
	}
	if !res.OK() {
		return Facts{}, fmt.Errorf("%s: facts: probe exited %d: %s", name, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	f, err := Parse(name, req, res.Stdout)
	if err != nil {
		return Facts{}, fmt.Errorf("%s: facts: %w", name, err)
	}
	return f, nil
}
