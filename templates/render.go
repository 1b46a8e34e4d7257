package templates

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/Masterminds/sprig/v3"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

//go:embed files/*.tmpl
var builtin embed.FS

// The pgwarm-wal serve rights (--allow) of a PostgreSQL host's key on the
// archive host: the primary may only add files of its own timeline (a
// compromised primary can neither read nor delete the archive, nor take
// the next timeline ahead of a promotion); standbys read and clean up.
const ArchiveRightsStandby = "get,cleanup,list,verify"

// ArchiveRightsPrimary are the rights of the primary on timeline tli (a
// number, or TimelinePlaceholder): push@tli.
func ArchiveRightsPrimary(tli string) string { return "push@" + tli }

// ArchiveRightsWatcher are the rights of the standby that runs the DNS
// trigger: a standby's, plus push for the timeline its own promotion will
// create (next), so that once the watcher has promoted it the new primary
// archives at once (the watcher cannot change the archive host's rights
// file as `pgwarm promote` does). push never replaces a file that is
// there, a standby in recovery does not archive, and push@next cannot
// touch the primary's timeline.
func ArchiveRightsWatcher(next string) string { return ArchiveRightsStandby + ",push@" + next }

// TimelinePlaceholder is replaced by plan and apply with the timeline
// host is on now (facts: DataDir.CurrentTimeline), NextTimelinePlaceholder
// with the one after it: the timeline a standby promoted from host's
// timeline gets when no later history file is archived.
func TimelinePlaceholder(host string) string     { return "{{timeline:" + host + "}}" }
func NextTimelinePlaceholder(host string) string { return "{{nexttimeline:" + host + "}}" }

// ClusterPlaceholder is replaced by plan and apply with the restore flags
// that name host's database cluster (facts: DataDir.SystemID and
// WALSegSize, from pg_controldata): a standby's restore trusts no archive
// host for which cluster it restores, nor for how large a segment is.
func ClusterPlaceholder(host string) string { return "{{cluster:" + host + "}}" }

// ClusterValues is the value of host's cluster placeholder for the
// cluster sysid (decimal) with segSize-byte segments; none when either is
// unknown or not plausible.
func ClusterValues(host, sysid string, segSize uint32) map[string]string {
	v, err := strconv.ParseUint(sysid, 10, 64)
	if err != nil || v == 0 || segSize < 1<<20 || segSize > 1<<30 || segSize&(segSize-1) != 0 {
		return nil
	}
	return map[string]string{ClusterPlaceholder(host): "--system-identifier " + strconv.FormatUint(v, 10) + " --segment-size " + strconv.FormatUint(uint64(segSize), 10)}
}

// TimelineValues are the values of host's timeline placeholders for its
// current timeline tli; none when tli is unknown (0).
func TimelineValues(host string, tli int) map[string]string {
	if tli <= 0 {
		return nil
	}
	return map[string]string{TimelinePlaceholder(host): strconv.Itoa(tli), NextTimelinePlaceholder(host): strconv.Itoa(tli + 1)}
}

// ArchiveGrant is one key's line in the archive host's rights file.
type ArchiveGrant struct{ Host, Rights string }

// ArchiveRightsPath is the rights file of the cluster's keys on the archive
// host, beside the authorized_keys whose forced commands read it.
func ArchiveRightsPath(inv *inventory.Inventory) string {
	return path.Join(inv.Archive.Home, ".ssh", "pgwarm-"+inv.Cluster+".rights")
}

// RenderArchiveRights is the content of the rights file: one "HOST
// OPERATIONS" line per key, as pgwarm-wal serve --rights reads it. Pure.
func RenderArchiveRights(cluster, watcher string, grants []ArchiveGrant) string {
	var b strings.Builder
	b.WriteString("# pgwarm-wal serve rights of cluster " + cluster + "'s keys (authorized_keys: --as HOST), read at every\n" +
		"# request, so a change applies to open connections at once; pgwarm promote rewrites it.\n" +
		"# push@T adds files of timeline T (and earlier timelines' leftovers), never a later timeline's\n" +
		"# or another timeline's history; get reads them (and lists, verifies); cleanup removes old ones.\n")
	if watcher != "" {
		b.WriteString("# " + watcher + " runs the DNS trigger and may promote itself: it may add the next timeline's files.\n")
	}
	for _, g := range grants {
		b.WriteString(g.Host + " " + g.Rights + "\n")
	}
	return b.String()
}

// Names returns the names of the built-in templates, sorted; an operator's
// templates_dir may hold files by these names to replace them.
func Names() []string {
	entries, _ := fs.ReadDir(builtin, "files") // embedded: cannot fail
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Builtin returns the text of a built-in template (for operators who want
// to start an override from it).
func Builtin(name string) ([]byte, error) { return builtin.ReadFile("files/" + name) }

// Options carry Render's inputs from outside the inventory, so RenderWith
// stays pure.
type Options struct {
	// LookupEnv reads the replication password variable.
	LookupEnv func(string) (string, bool)
	// Overrides holds operator templates by name (the inventory's
	// templates_dir); nil means none.
	Overrides fs.FS
}

// Render renders every file for every host, reading the replication
// password from the environment and overrides from templates_dir.
func Render(inv *inventory.Inventory) (Rendered, error) {
	opts := Options{LookupEnv: os.LookupEnv}
	if inv.TemplatesDir != "" {
		opts.Overrides = os.DirFS(inv.TemplatesDir)
	}
	return RenderWith(inv, opts)
}

// OverridesHash is the digest of what dir (a templates_dir) overrides:
// each built-in template's name and the sha256 of the file that replaces
// it there. A saved plan records it, so that a template changed between
// plan and apply makes the plan stale; other files in dir do not count.
func OverridesHash(dir string) (string, error) {
	h := sha256.New()
	for _, n := range Names() {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("templates_dir: %w", err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s %x\n", n, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// secretPlaceholder stands in for a secret whose variable is unset.
func secretPlaceholder(env string) string { return "{{secret:" + env + "}}" }

// KeyPlaceholder is replaced by apply with the public key of host's
// postgres user; HostKeyPlaceholder with host's SSH host key.
func KeyPlaceholder(host string) string     { return "{{key:" + host + "}}" }
func HostKeyPlaceholder(host string) string { return "{{hostkey:" + host + "}}" }

// RenderWith is Render with explicit inputs.
func RenderWith(inv *inventory.Inventory, opts Options) (Rendered, error) {
	set, err := parseTemplates(opts.Overrides)
	if err != nil {
		return Rendered{}, err
	}
	r := &renderer{inv: inv, opts: opts, tmpl: set, out: map[string]map[string]File{}}
	for _, h := range inv.Hosts {
		r.out[h.Name] = map[string]File{}
		if h.IsPostgres() {
			r.postgresHost(h)
		}
		if h.Name == inv.Archive.Host {
			r.archiveHost(h)
		}
	}
	if len(r.errs) > 0 {
		return Rendered{}, errors.Join(r.errs...)
	}
	res := Rendered{Hosts: map[string][]File{}}
	for host, files := range r.out {
		list := make([]File, 0, len(files))
		for _, f := range files {
			list = append(list, f)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
		res.Hosts[host] = list
	}
	res.Warnings = dedupSorted(r.warnings)
	return res, nil
}

func dedupSorted(in []string) []string {
	sort.Strings(in)
	var out []string
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func funcs() template.FuncMap {
	f := sprig.HermeticTxtFuncMap()
	f["pgquote"] = pgquote
	f["shquote"] = host.Quote
	return f
}

// parseTemplates loads the built-in templates and replaces those the
// operator overrides. An override with an unknown name is an error: a typo
// would otherwise be silently ignored.
func parseTemplates(overrides fs.FS) (map[string]*template.Template, error) {
	names := Names()
	set := map[string]*template.Template{}
	var errs []error
	for _, name := range names {
		text, _ := builtin.ReadFile("files/" + name)
		origin := "built-in template " + name
		if overrides != nil {
			if b, err := fs.ReadFile(overrides, name); err == nil {
				text, origin = b, "templates_dir/"+name
			} else if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("templates_dir/%s: %w", name, err))
				continue
			}
		}
		t, err := template.New(origin).Funcs(funcs()).Option("missingkey=error").Parse(string(text))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set[name] = t
	}
	if overrides != nil {
		entries, err := fs.ReadDir(overrides, ".")
		if err != nil {
			errs = append(errs, fmt.Errorf("templates_dir: %w", err))
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if _, ok := set[e.Name()]; !ok && !contains(names, e.Name()) {
				errs = append(errs, fmt.Errorf("templates_dir/%s: no built-in template by that name (known: %s)", e.Name(), strings.Join(names, ", ")))
			}
		}
	}
	return set, errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type renderer struct {
	inv      *inventory.Inventory
	opts     Options
	tmpl     map[string]*template.Template
	out      map[string]map[string]File
	errs     []error
	warnings []string
}

func (r *renderer) warn(s string) { r.warnings = append(r.warnings, s) }

func (r *renderer) exec(host, name string, data any) []byte {
	var b bytes.Buffer
	if err := r.tmpl[name].Execute(&b, data); err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %w", host, err))
	}
	return b.Bytes()
}

// add records f on host. Two artifacts may ask for the same path (the
// archive host is a standby in the seed's layout); identical requests
// merge, conflicting ones are an error.
func (r *renderer) add(host string, f File) {
	if f.Dir {
		f.Mode |= fs.ModeDir
	}
	if prev, ok := r.out[host][f.Path]; ok {
		if prev.Dir && f.Dir && prev.Mode == f.Mode && prev.Owner == f.Owner {
			return
		}
		if !bytes.Equal(prev.Content, f.Content) || prev.Kind != f.Kind || prev.Mode != f.Mode || prev.Owner != f.Owner {
			r.errs = append(r.errs, fmt.Errorf("%s: %s is rendered twice with different content (%s and %s)", host, f.Path, prev.Kind, f.Kind))
		}
		return
	}
	r.out[host][f.Path] = f
}

const pgOwner = "postgres:postgres"

type header struct {
	Cluster, Host, Role, Version string
}

func (r *renderer) header(h inventory.Host) header {
	return header{Cluster: r.inv.Cluster, Host: h.Name, Role: string(h.Role), Version: r.inv.Postgres.Version.String()}
}

// restoresFor is whose cluster a standby's restore_command names (its
// ClusterPlaceholder): the primary's; nothing for the primary itself.
func (r *renderer) restoresFor(h inventory.Host) []string {
	if h.Role != inventory.RoleStandby {
		return nil
	}
	return []string{r.inv.Primary().Name}
}

func (r *renderer) postgresHost(h inventory.Host) {
	inv := r.inv
	p := inv.Paths()
	v := inv.Postgres.Version
	standby := h.Role == inventory.RoleStandby

	r.add(h.Name, File{Path: p.StateDir, Dir: true, Mode: 0o700, Owner: pgOwner, Kind: KindDir,
		Reason: "pgwarm's state directory: trigger file, NFS mount point"})
	r.add(h.Name, File{Path: inventory.DefaultHelperPath, Mode: 0o755, Owner: "root:root", Kind: KindHelper, Source: SourceHelper,
		Reason: "pgwarm-wal: archive_command, restore_command and archive_cleanup_command"})

	var notes []string
	if standby && v.AtLeast(12) {
		notes = append(notes,
			"restore_command waits up to a second for a segment not archived yet and gets it the",
			"moment it lands; it stops waiting when a promotion is requested. While the standby is",
			"behind it fetches the next segments at once (--prefetch) into the state directory.")
		if v.AtLeast(16) {
			notes = append(notes, "PostgreSQL 16 removed promote_trigger_file: promote with pgwarm promote (pg_ctl promote).")
		}
	}
	if !standby {
		notes = append(notes, "archive_mode is on (not always) on every host: a standby archives once promoted.")
	}
	r.add(h.Name, File{
		Path: p.SettingsFile, Mode: 0o644, Owner: pgOwner, Kind: KindSettings,
		NeedsClusters: r.restoresFor(h),
		Content: r.exec(h.Name, "pgwarm.conf.tmpl", struct {
			header
			Notes    []string
			Settings []Setting
		}{r.header(h), notes, Settings(inv, h.Name)}),
		Reason: "managed settings: archiving, WAL level, replication",
	})
	r.add(h.Name, File{
		Path: p.MainConfig, Mode: 0o644, Owner: pgOwner, Kind: KindSettingsInclude, Block: "settings",
		Content: r.exec(h.Name, "postgresql.conf-include.tmpl", struct{ SettingsFile string }{path.Base(p.SettingsFile)}),
		Reason:  "include pgwarm.conf last from postgresql.conf",
	})
	r.add(h.Name, File{
		Path: p.HBAFile, Mode: 0o640, Owner: pgOwner, Kind: KindHBA, Block: "replication",
		Content: r.exec(h.Name, "pg_hba.conf.tmpl", struct {
			Cluster string
			Entries []hbaEntry
		}{inv.Cluster, r.hbaEntries(h)}),
		Reason: "allow the replication role from the other PostgreSQL hosts",
	})
	r.pgpass(h)

	if standby {
		if v.AtLeast(12) {
			r.add(h.Name, File{Path: path.Join(p.DataDir, "standby.signal"), Mode: 0o600, Owner: pgOwner, Kind: KindSignal,
				Reason: "start in standby mode (PostgreSQL 12 and later)"})
		} else {
			r.add(h.Name, File{
				Path: path.Join(p.DataDir, "recovery.conf"), Mode: 0o600, Owner: pgOwner, Kind: KindRecovery,
				NeedsClusters: r.restoresFor(h),
				Content: r.exec(h.Name, "recovery.conf.tmpl", struct {
					header
					Notes    []string
					Settings []Setting
				}{r.header(h), []string{
					"standby_mode makes PostgreSQL retry a missing segment itself; restore_command waits",
					"up to a second for it (never pg_standby-style); trigger_file ends recovery.",
				}, RecoverySettings(inv, h.Name)}),
				Reason: "recovery settings (PostgreSQL 11 and earlier)",
			})
		}
		for _, w := range inv.DNSWatchers() {
			if w.Name == h.Name {
				r.dnsTrigger(h)
			}
		}
	}
	if !inv.ArchiveIsLocal(h) {
		switch inv.Archive.Transport {
		case inventory.TransportSSH:
			r.sshClient(h)
		case inventory.TransportNFS:
			r.nfsClient(h)
		}
	}
}

type hbaEntry struct {
	Type, Database, User, Address, Method, Comment string
}

// hbaEntries lets every other PostgreSQL host in: roles swap at failover,
// so the standby needs the same entries as the primary.
func (r *renderer) hbaEntries(h inventory.Host) []hbaEntry {
	method := "md5"
	if r.inv.Postgres.Version.AtLeast(14) {
		method = "scram-sha-256" // the default password_encryption from 14
	}
	var out []hbaEntry
	for _, peer := range r.inv.PostgresHosts() {
		if peer.Name == h.Name {
			continue
		}
		addr := hbaAddress(peer.Address)
		for _, db := range []string{"replication", "postgres"} {
			out = append(out, hbaEntry{"host", db, r.inv.Replication.User, addr, method, peer.Name})
		}
	}
	return out
}

func hbaAddress(a string) string {
	ip := net.ParseIP(a)
	switch {
	case ip == nil:
		return a // a host name: pg_hba matches it by reverse and forward lookup
	case ip.To4() != nil:
		return ip.String() + "/32"
	}
	return ip.String() + "/128"
}

func (r *renderer) pgpass(h inventory.Host) {
	env := r.inv.Replication.PasswordEnv
	pw, ok := "", false
	if r.opts.LookupEnv != nil {
		pw, ok = r.opts.LookupEnv(env)
	}
	f := File{
		Path: path.Join(r.inv.Paths().Home, ".pgpass"), Mode: 0o600, Owner: pgOwner, Kind: KindPgpass,
		Secret: true, SecretEnv: env,
		Reason: "replication password for libpq (primary_conninfo, pg_basebackup, pg_rewind)",
	}
	if !ok || pw == "" {
		f.SecretMissing = true
		pw = secretPlaceholder(env)
		r.warn(fmt.Sprintf("%s is not set: .pgpass is rendered with the placeholder %s", env, pw))
	} else if i := strings.IndexFunc(pw, unicode.IsControl); i >= 0 {
		// .pgpass is one entry per line, and libpq has no escape for a
		// line break: the rest of the password would become an entry of
		// its own. The value is not printed, only where it is wrong.
		r.errs = append(r.errs, fmt.Errorf("%s: the replication password in %s has a control character (byte %d, %U); libpq's .pgpass cannot hold it: choose a password without newlines, tabs or other control characters", h.Name, env, i+1, []rune(pw[i:])[0]))
		return
	} else {
		pw = pgpassEscape(pw)
	}
	f.Content = r.exec(h.Name, "pgpass.tmpl", struct {
		Cluster        string
		Port           int
		User, Password string
	}{r.inv.Cluster, r.inv.Postgres.Port, r.inv.Replication.User, pw})
	r.add(h.Name, f)
}

func (r *renderer) keyPath() string {
	return path.Join(r.inv.Paths().Home, ".ssh", "pgwarm_"+r.inv.Cluster)
}

// sshClient gives the postgres user a key of its own, an ssh config block
// and the archive host's host key. apply generates the key pair and fills
// the host key; rendering only says where they go.
func (r *renderer) sshClient(h inventory.Host) {
	inv := r.inv
	home := inv.Paths().Home
	ah := inv.ArchiveHost()
	port := inv.SSHFor(ah).Port
	knownHosts := path.Join(home, ".ssh", "pgwarm_"+inv.Cluster+"_known_hosts")
	r.add(h.Name, File{Path: path.Join(home, ".ssh"), Dir: true, Mode: 0o700, Owner: pgOwner, Kind: KindDir,
		Reason: "the postgres user's ssh directory"})
	r.add(h.Name, File{Path: r.keyPath(), Mode: 0o600, Owner: pgOwner, Kind: KindSSHKey, Secret: true, Source: SourceGenerate,
		Reason: "key pair of the postgres user for the archive (generated by apply; public half in .pub)"})
	r.add(h.Name, File{
		Path: path.Join(home, ".ssh", "config"), Mode: 0o600, Owner: pgOwner, Kind: KindSSHConfig, Block: "archive-" + inv.Cluster,
		Content: r.exec(h.Name, "ssh_config.tmpl", struct {
			Cluster, Address, User, IdentityFile, KnownHostsFile, ControlDir string
			Port                                                             int
		}{inv.Cluster, ah.Address, inv.Archive.User, r.keyPath(), knownHosts, path.Join(home, ".ssh"), port}),
		Reason: "how pgwarm-wal reaches the archive over ssh",
	})
	pattern := ah.Address
	if port != 22 || strings.Contains(ah.Address, ":") {
		pattern = "[" + ah.Address + "]:" + strconv.Itoa(port)
		if port == 22 {
			pattern = ah.Address // IPv6 on the default port is written bare
		}
	}
	r.add(h.Name, File{
		Path: knownHosts, Mode: 0o644, Owner: pgOwner, Kind: KindKnownHosts, NeedsHostKeys: []string{ah.Name},
		Content: r.exec(h.Name, "known_hosts.tmpl", struct{ Pattern, Placeholder string }{pattern, HostKeyPlaceholder(ah.Name)}),
		Reason:  "the archive host's host key (filled in by apply)",
	})
}

func (r *renderer) nfsClient(h inventory.Host) {
	inv := r.inv
	ah := inv.ArchiveHost()
	server := ah.Address
	if strings.Contains(server, ":") {
		server = "[" + server + "]"
	}
	r.add(h.Name, File{Path: inv.Archive.MountPoint, Dir: true, Mode: 0o700, Owner: pgOwner, Kind: KindDir,
		Reason: "NFS mount point of the archive; the marker " + inv.Archive.Marker + " shows it is mounted"})
	r.add(h.Name, File{
		Path: "/etc/fstab", Mode: 0o644, Owner: "root:root", Kind: KindFstab, Block: "archive-" + inv.Cluster,
		Content: r.exec(h.Name, "fstab.tmpl", struct{ Cluster, Source, MountPoint, Options string }{
			inv.Cluster, server + ":" + inv.Archive.Path, inv.Archive.MountPoint, "rw,hard,noatime,_netdev"}),
		Reason: "mount the archive from " + ah.Name,
	})
}

func (r *renderer) dnsTrigger(h inventory.Host) {
	inv := r.inv
	dns := inv.Failover.DNS
	p := inv.Paths()
	recoveryFile := path.Join(p.DataDir, "standby.signal")
	if !inv.Postgres.Version.AtLeast(12) {
		recoveryFile = path.Join(p.DataDir, "recovery.conf")
	}
	name := "pgwarm-" + inv.Cluster + "-dns-trigger"
	script := path.Join("/usr/local/lib/pgwarm", inv.Cluster+"-dns-trigger")
	primary := inv.Primary()
	r.add(h.Name, File{Path: "/usr/local/lib/pgwarm", Dir: true, Mode: 0o755, Owner: "root:root", Kind: KindDir,
		Reason: "pgwarm's scripts"})
	r.add(h.Name, File{
		Path: script, Mode: 0o755, Owner: "root:root", Kind: KindScript,
		Content: r.exec(h.Name, "dns-trigger.sh.tmpl", struct {
			Cluster, Host, Name, Target, Primary, PrimaryAddress, User, Script, RecoveryFile, PgIsready, Psql, PrimaryConninfo, Promote string
			Port                                                                                                                        int
		}{inv.Cluster, h.Name, dns.Name, dnsTarget(dns.Target), primary.Name, primary.Address, inv.Replication.User, script, recoveryFile,
			host.Quote(path.Join(p.BinDir, "pg_isready")), host.Quote(path.Join(p.BinDir, "psql")), primaryConninfo(inv, h, "postgres"),
			promoteCommand(inv), inv.Postgres.Port}),
		Reason: "the seed's DNS trigger: promote when " + dns.Name + " resolves to " + dns.Target,
	})
	every := dns.Every.D()
	j := job{
		name:        name,
		description: "promote " + h.Name + " when " + dns.Name + " resolves to " + dns.Target,
		user:        "postgres",
		command:     script,
		cron:        cronEvery(every),
		timer:       []string{"OnBootSec=" + systemdSpan(every), "OnUnitActiveSec=" + systemdSpan(every), "AccuracySec=1s"},
	}
	// flock -n: a run still busy (a slow check) makes the next one exit at
	// once instead of checking beside it.
	j.cronCommand = "flock -n " + script + " " + script
	if every < time.Minute {
		// cron starts at most once a minute: each run checks 60/every
		// times, every apart, and stops early once it has promoted.
		secs := int(every / time.Second)
		j.cronCommand += " " + strconv.Itoa(60/secs) + " " + strconv.Itoa(secs)
		j.timer[2] = "AccuracySec=100ms"
	}
	r.schedule(h, j)
}

// dnsTarget is the target as getent prints it: without a trailing dot, an
// IP address in its canonical form.
func dnsTarget(t string) string {
	t = strings.TrimSuffix(t, ".")
	if ip := net.ParseIP(t); ip != nil {
		return ip.String()
	}
	return t
}

// job is a periodic command rendered twice: as an /etc/cron.d file and as a
// systemd service + timer. The plan keeps one of them per host (ForHost).
type job struct {
	name, description, user, command, cron string
	// cronCommand, when set, replaces command in the cron entry.
	cronCommand string
	timer       []string
}

func (r *renderer) schedule(h inventory.Host, j job) {
	cronCommand := j.command
	if j.cronCommand != "" {
		cronCommand = j.cronCommand
	}
	r.add(h.Name, File{
		Path: "/etc/cron.d/" + j.name, Mode: 0o644, Owner: "root:root", Kind: KindCron,
		Content: r.exec(h.Name, "cron.tmpl", struct{ Description, Schedule, User, Command string }{j.description, j.cron, j.user, cronCommand}),
		Reason:  j.description + " (cron; hosts without systemd)",
	})
	r.add(h.Name, File{
		Path: "/etc/systemd/system/" + j.name + ".service", Mode: 0o644, Owner: "root:root", Kind: KindSystemd,
		Content: r.exec(h.Name, "systemd.service.tmpl", struct{ Description, User, Command string }{j.description, j.user, j.command}),
		Reason:  j.description + " (systemd service)",
	})
	r.add(h.Name, File{
		Path: "/etc/systemd/system/" + j.name + ".timer", Mode: 0o644, Owner: "root:root", Kind: KindSystemd,
		Content: r.exec(h.Name, "systemd.timer.tmpl", struct {
			Description, Unit string
			Timer             []string
		}{j.description, j.name + ".service", j.timer}),
		Reason: j.description + " (systemd timer)",
	})
}

// cronEvery is the cron schedule of a period: every minute for a minute or
// less (shorter periods loop inside the run), else every d minutes.
func cronEvery(d time.Duration) string {
	m := int(d / time.Minute)
	switch {
	case m <= 1:
		return "* * * * *"
	case m >= 60:
		return "0 * * * *"
	}
	return "*/" + strconv.Itoa(m) + " * * * *"
}

func systemdSpan(d time.Duration) string {
	if d%time.Minute != 0 {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return strconv.Itoa(int(d/time.Minute)) + "min"
}

// ArchiveOwner is the owner:group of the archive account's files.
func ArchiveOwner(inv *inventory.Inventory) string {
	if inv.Archive.User == "postgres" {
		return pgOwner
	}
	return inv.Archive.User + ":" + inv.Archive.User
}

func (r *renderer) archiveHost(h inventory.Host) {
	inv := r.inv
	a := inv.Archive
	owner := ArchiveOwner(inv)
	r.add(h.Name, File{Path: a.Path, Dir: true, Mode: 0o700, Owner: owner, Kind: KindArchiveDir,
		Reason: "the WAL archive; readable only by its owner, it holds every write"})
	r.add(h.Name, File{Path: inventory.DefaultHelperPath, Mode: 0o755, Owner: "root:root", Kind: KindHelper, Source: SourceHelper,
		Reason: "pgwarm-wal: serve and verify on the archive host"})
	clients := inv.ArchiveClients()
	switch a.Transport {
	case inventory.TransportSSH:
		type entry struct{ Command, Placeholder string }
		var entries []entry
		var needs []string
		var grants []ArchiveGrant
		var watcher string
		rights := ArchiveRightsPath(inv)
		// The primary's timeline comes from its facts (plan and apply fill
		// the placeholders): the rights follow the cluster across promotions.
		var timelineOf []string
		prim := inv.Primary().Name
		for _, c := range clients {
			allow := ArchiveRightsStandby
			if c.Role == inventory.RolePrimary {
				allow, timelineOf = ArchiveRightsPrimary(TimelinePlaceholder(c.Name)), []string{c.Name}
			}
			for _, w := range inv.DNSWatchers() {
				if w.Name == c.Name {
					allow, watcher, timelineOf = ArchiveRightsWatcher(NextTimelinePlaceholder(prim)), c.Name, []string{prim}
				}
			}
			grants = append(grants, ArchiveGrant{Host: c.Name, Rights: allow})
			entries = append(entries, entry{
				Command:     inventory.DefaultHelperPath + " serve --root " + host.Quote(a.Path) + " --rights " + host.Quote(rights) + " --as " + host.Quote(c.Name),
				Placeholder: KeyPlaceholder(c.Name),
			})
			needs = append(needs, c.Name)
		}
		sort.Strings(needs)
		if len(entries) > 0 {
			r.add(h.Name, File{Path: path.Join(a.Home, ".ssh"), Dir: true, Mode: 0o700, Owner: owner, Kind: KindDir,
				Reason: "ssh directory of the archive account"})
			r.add(h.Name, File{
				Path: path.Join(a.Home, ".ssh", "authorized_keys"), Mode: 0o600, Owner: owner, Kind: KindAuthorizedKeys,
				Block: inv.Cluster, NeedsKeys: needs,
				Content: r.exec(h.Name, "authorized_keys.tmpl", struct {
					Cluster string
					Entries []entry
				}{inv.Cluster, entries}),
				Reason: "keys of the PostgreSQL hosts, restricted to pgwarm-wal serve",
			})
			r.add(h.Name, File{
				Path: rights, Mode: 0o600, Owner: owner, Kind: KindArchiveRights, NeedsTimelines: timelineOf,
				Content: []byte(RenderArchiveRights(inv.Cluster, watcher, grants)),
				Reason:  "what each key may do in the archive, read at every request (pgwarm promote rewrites it)",
			})
		}
	case inventory.TransportNFS:
		if len(clients) > 0 {
			var addrs []string
			for _, c := range clients {
				addrs = append(addrs, c.Address)
			}
			r.add(h.Name, File{
				Path: "/etc/exports", Mode: 0o644, Owner: "root:root", Kind: KindExports, Block: inv.Cluster,
				Content: r.exec(h.Name, "exports.tmpl", struct {
					Cluster, Path string
					Clients       []string
				}{inv.Cluster, a.Path, addrs}),
				Reason: "export the archive to the PostgreSQL hosts",
			})
		}
	}
	if a.Marker != "" {
		r.add(h.Name, File{Path: path.Join(a.Path, a.Marker), Mode: 0o600, Owner: owner, Kind: KindMarker,
			Reason: "the seed's marker: pgwarm-wal ship --require-marker refuses to write where it is missing"})
	}
	r.schedule(h, job{
		name:        "pgwarm-" + inv.Cluster + "-archive-verify",
		description: "verify the WAL archive of cluster " + inv.Cluster + " daily",
		user:        a.User,
		command:     inventory.DefaultHelperPath + " verify --archive " + host.Quote(a.Path),
		cron:        "17 3 * * *",
		timer:       []string{"OnCalendar=*-*-* 03:17:00", "Persistent=true"},
	})
}
