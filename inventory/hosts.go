package inventory

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// DefaultHelperPath is where apply installs pgwarm-wal on every host.
const DefaultHelperPath = "/usr/local/bin/pgwarm-wal"

// DefaultRestoreRetry is replication.restore_retry when unset: how long a
// standby waits after the archive lacked the next segment before asking
// again. PostgreSQL's own default (5s) is most of the replay delay of an
// archive-fed standby; with the ssh connection shared, one more ask costs a
// few milliseconds (bench/ops measures both).
const DefaultRestoreRetry = 200 * time.Millisecond

// Primary returns the primary host.
func (inv *Inventory) Primary() Host {
	for _, h := range inv.Hosts {
		if h.Role == RolePrimary {
			return h
		}
	}
	return Host{}
}

// Standbys returns the standby hosts in inventory order.
func (inv *Inventory) Standbys() []Host {
	var out []Host
	for _, h := range inv.Hosts {
		if h.Role == RoleStandby {
			out = append(out, h)
		}
	}
	return out
}

// PostgresHosts returns the primary and the standbys in inventory order.
func (inv *Inventory) PostgresHosts() []Host {
	var out []Host
	for _, h := range inv.Hosts {
		if h.IsPostgres() {
			out = append(out, h)
		}
	}
	return out
}

// ArchiveHost returns the host named by archive.host.
func (inv *Inventory) ArchiveHost() Host {
	h, _ := inv.Host(inv.Archive.Host)
	return h
}

// Host returns the host called name.
func (inv *Inventory) Host(name string) (Host, bool) {
	for _, h := range inv.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// SSHFor merges the ssh defaults with h's overrides. Paths are already
// absolute (~ and relative paths were resolved by Load).
func (inv *Inventory) SSHFor(h Host) SSH {
	s := inv.SSH
	o := h.SSH
	if o.User != "" {
		s.User = o.User
		if o.Become == "" {
			s.Become = defaultBecome(o.User)
		}
	}
	if o.Port != 0 {
		s.Port = o.Port
	}
	if o.IdentityFile != "" {
		s.IdentityFile = o.IdentityFile
	}
	if o.Become != "" {
		s.Become = o.Become
	}
	if o.KnownHosts != "" {
		s.KnownHosts = o.KnownHosts
	}
	return s
}

func defaultBecome(user string) string {
	if user == "root" {
		return "none"
	}
	return "sudo"
}

// Paths resolves the PostgreSQL locations for the inventory's layout.
func (inv *Inventory) Paths() Paths {
	pg := inv.Postgres
	v := pg.Version.String()
	var p Paths
	switch pg.Layout {
	case LayoutRHEL:
		p = Paths{
			DataDir: "/var/lib/pgsql/" + v + "/data",
			BinDir:  "/usr/pgsql-" + v + "/bin",
			Service: "postgresql-" + v,
			Home:    "/var/lib/pgsql",
		}
		p.ConfigDir = p.DataDir
	case LayoutCustom:
		p = Paths{DataDir: pg.DataDir, ConfigDir: pg.ConfigDir, BinDir: pg.BinDir, Service: "postgresql", Home: "/var/lib/postgresql"}
		if p.ConfigDir == "" {
			p.ConfigDir = p.DataDir
		}
	default: // debian
		p = Paths{
			DataDir:   "/var/lib/postgresql/" + v + "/main",
			ConfigDir: "/etc/postgresql/" + v + "/main",
			BinDir:    "/usr/lib/postgresql/" + v + "/bin",
			Service:   "postgresql@" + v + "-main",
			Home:      "/var/lib/postgresql",
		}
	}
	// Explicit keys win over the layout's defaults.
	if pg.DataDir != "" {
		p.DataDir = pg.DataDir
	}
	if pg.ConfigDir != "" {
		p.ConfigDir = pg.ConfigDir
	}
	if pg.BinDir != "" {
		p.BinDir = pg.BinDir
	}
	if pg.Service != "" {
		p.Service = pg.Service
	}
	if pg.Home != "" {
		p.Home = pg.Home
	}
	if pg.Layout == LayoutDebian || pg.Layout == "" {
		// pg_ctlcluster reads the data directory from the cluster's config.
		p.Ctl = "pg_ctlcluster " + v + " main"
	} else {
		p.Ctl = path.Join(p.BinDir, "pg_ctl") + " -D " + p.DataDir
	}
	p.MainConfig = path.Join(p.ConfigDir, "postgresql.conf")
	p.SettingsFile = path.Join(p.ConfigDir, "pgwarm.conf")
	p.HBAFile = path.Join(p.ConfigDir, "pg_hba.conf")
	p.StateDir = "/var/lib/pgwarm/" + inv.Cluster
	return p
}

// ArchiveIsLocal reports whether h reaches the archive as a local
// directory because it is the archive host itself (the seed's layout).
func (inv *Inventory) ArchiveIsLocal(h Host) bool { return h.Name == inv.Archive.Host }

// ArchiveClients are the PostgreSQL hosts that reach the archive through
// its transport (every one but the archive host itself), in inventory order.
func (inv *Inventory) ArchiveClients() []Host {
	var out []Host
	for _, h := range inv.PostgresHosts() {
		if !inv.ArchiveIsLocal(h) {
			out = append(out, h)
		}
	}
	return out
}

// ArchiveURL is the --archive argument of pgwarm-wal on host h:
//   - on the archive host itself: the archive path;
//   - nfs: the local mount point;
//   - ssh: ssh://user@address[:port]/path.
func (inv *Inventory) ArchiveURL(h Host) string {
	a := inv.Archive
	switch {
	case inv.ArchiveIsLocal(h):
		return a.Path
	case a.Transport == TransportNFS:
		return a.MountPoint
	}
	ah := inv.ArchiveHost()
	hostport := ah.Address
	if port := inv.SSHFor(ah).Port; port != 22 && port != 0 {
		hostport = net.JoinHostPort(ah.Address, strconv.Itoa(port))
	} else if strings.Contains(ah.Address, ":") {
		hostport = "[" + ah.Address + "]" // IPv6 literal
	}
	u := url.URL{Scheme: "ssh", User: url.User(a.User), Host: hostport, Path: a.Path}
	return u.String()
}

// SlotName is the physical replication slot of standby h (streaming with slot: true).
func SlotName(h Host) string {
	b := []byte("pgwarm_")
	for _, c := range []byte(h.Name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			b = append(b, '_')
		}
	}
	return string(b)
}

// Summary is the one-line description `pgwarm validate` prints.
func (inv *Inventory) Summary() string {
	var sb []byte
	for i, s := range inv.Standbys() {
		if i > 0 {
			sb = append(sb, ", "...)
		}
		sb = append(sb, s.Name...)
	}
	return fmt.Sprintf("cluster %s, PostgreSQL %s, primary %s, standbys %s, archive %s via %s",
		inv.Cluster, inv.Postgres.Version, inv.Primary().Name, sb, inv.Archive.Host, inv.Archive.Transport)
}

// DNSWatchers are the standbys that run the DNS trigger: the one whose name
// or address is failover.dns.target, or, when none is, the only standby
// (the seed's CNAME target need not be a name of the inventory). Never
// several: two standbys promoting on the same name change would be two
// primaries. Empty without failover.dns, or when the target names no
// standby of several (the loader rejects that).
func (inv *Inventory) DNSWatchers() []Host {
	dns := inv.Failover.DNS
	if dns == nil {
		return nil
	}
	standbys := inv.Standbys()
	for _, h := range standbys {
		if sameHost(h.Name, dns.Target) || sameHost(h.Address, dns.Target) {
			return []Host{h}
		}
	}
	if len(standbys) == 1 {
		return standbys
	}
	return nil
}

// sameHost compares two names or addresses: IP addresses as addresses,
// names without case and a trailing dot.
func sameHost(a, b string) bool {
	if ia, ib := net.ParseIP(a), net.ParseIP(b); ia != nil || ib != nil {
		return ia != nil && ib != nil && ia.Equal(ib)
	}
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}
