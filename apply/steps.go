package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/pgwarm/pgwarm/templates"
)

// Steps is the workflow, in dependency order: the archive must accept WAL
// before the primary ships any, and the primary must archive before a
// standby is seeded from it.
func Steps() []Step {
	return []Step{
		lockStep{},
		preflightStep{},
		helperStep{},
		keysStep{},
		archiveStep{},
		primaryFilesStep{},
		primaryRoleStep{},
		primaryReloadStep{},
		archivingProofStep{},
		standbyPrepareStep{},
		standbySeedStep{},
		standbyConfigStep{},
		standbyVerifyStep{},
	}
}

// inDataDir: files PostgreSQL's data directory holds are written only after
// the standby is seeded (pg_basebackup needs an empty directory).
func (s *State) inDataDir(f templates.File) bool {
	return strings.HasPrefix(f.Path, s.Paths.DataDir+"/")
}

// ---- preflight ----

type preflightStep struct{}

func (preflightStep) Title() string { return "preflight: check the hosts before changing anything" }

func (preflightStep) Run(ctx context.Context, s *State) error {
	// The plan's preflight, on the facts apply was given (one set of
	// checks and messages, whether a plan was saved or just made), then
	// what only apply can check: the archive's binding on the host itself,
	// and the password it is about to write.
	var limit []string
	if s.Opts.Plan != nil {
		limit = s.Opts.Plan.Limit
	}
	errs := []error{plan.Preflight(plan.Input{Inventory: s.Inv, Rendered: s.Rendered, Facts: s.Facts, Limit: limit})}
	if pf := s.Facts[s.Inv.Primary().Name]; pf.DataDir != nil && pf.DataDir.State == "initialised" && !pf.DataDir.InRecovery {
		errs = append(errs, checkBinding(ctx, s))
	}
	if s.Opts.Password == "" {
		errs = append(errs, fmt.Errorf("the environment variable %s (replication.password_env) is not set", s.Inv.Replication.PasswordEnv))
	}
	return errors.Join(errs...)
}

// ---- helper binary ----

type helperStep struct{}

func (helperStep) Title() string { return "install pgwarm-wal on every host (checksum checked)" }

func (helperStep) Run(ctx context.Context, s *State) error {
	var list []host.Host
	for _, h := range s.planned(s.Inv.Hosts) {
		list = append(list, s.host(h.Name))
	}
	return host.Parallel(ctx, 0, list, func(ctx context.Context, h host.Host) error {
		for _, f := range s.filesFor(h.Name(), func(f templates.File) bool { return f.Source == templates.SourceHelper }) {
			if _, err := ensureHelper(ctx, s, h, f); err != nil {
				return err
			}
		}
		return nil
	})
}

// ensureHelper uploads the pgwarm-wal of the host's architecture when the
// installed one has another checksum; Upload verifies it on the far side.
func ensureHelper(ctx context.Context, s *State, h host.Host, f templates.File) (bool, error) {
	arch := s.Facts[h.Name()].Arch
	local, err := s.Opts.Helper(arch)
	if err != nil {
		return false, fmt.Errorf("%s: %w", h.Name(), err)
	}
	want, err := fileSHA256(local)
	if err != nil {
		return false, fmt.Errorf("%s: %w", h.Name(), err)
	}
	have, err := h.SHA256(ctx, f.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if have == want {
		if st, err := h.Stat(ctx, f.Path); err == nil && st.Mode.Perm() == f.Mode.Perm() {
			return false, nil
		}
	}
	if err := mkdirParent(ctx, h, f.Path); err != nil {
		return false, err
	}
	if err := h.Upload(ctx, local, f.Path, f.Mode.Perm(), f.Owner); err != nil {
		return false, err
	}
	s.Out.Hostf(h.Name(), "installed %s for %s (sha256 %s)", f.Path, arch, want[:12])
	return true, nil
}

func fileSHA256(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ---- keys ----

type keysStep struct{}

func (keysStep) Title() string {
	return "ssh keys: a key for the postgres user on each PostgreSQL host, the archive host's host key"
}

func (keysStep) ShouldRun(s *State) bool { return s.Inv.Archive.Transport == inventory.TransportSSH }

func (keysStep) Run(ctx context.Context, s *State) error {
	for _, ih := range s.Inv.PostgresHosts() {
		if !s.inPlan(ih.Name) {
			// Not this plan's to generate: the archive host's
			// authorized_keys gets the key the host has (plan refuses a
			// limited plan that needs a key not made yet).
			if pub := plan.PublicKey(s.Facts[ih.Name]); pub != "" {
				s.mu.Lock()
				s.pubKeys[ih.Name] = pub
				s.mu.Unlock()
			}
			continue
		}
		h := s.host(ih.Name)
		keys := s.filesFor(ih.Name, func(f templates.File) bool { return f.Kind == templates.KindSSHKey })
		for _, k := range keys {
			// The directories the key lives in come first.
			for _, d := range s.filesFor(ih.Name, func(f templates.File) bool { return f.Dir && strings.HasPrefix(k.Path, f.Path+"/") }) {
				if _, err := ensureDir(ctx, s, h, d); err != nil {
					return err
				}
			}
			pub, err := ensureKey(ctx, s, h, k)
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.pubKeys[ih.Name] = pub
			s.mu.Unlock()
		}
	}
	ah := s.Inv.ArchiveHost()
	key, err := hostKey(ctx, s.host(ah.Name))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.hostKeys[ah.Name] = key
	s.mu.Unlock()
	return nil
}

// ensureKey generates the key pair once. It is made under a temporary name
// and renamed, public half first, so an interrupted run never leaves a
// private key without its public half for long: a rerun derives it.
func ensureKey(ctx context.Context, s *State, h host.Host, k templates.File) (string, error) {
	u, g := splitOwner(k.Owner)
	comment := "postgres@" + h.Name() + " pgwarm " + s.Inv.Cluster
	res, err := host.CheckRun(ctx, h, host.Cmd{Command: script("keygen.sh", k.Path, comment, u+":"+g)})
	if err != nil {
		return "", err
	}
	if strings.Contains(string(res.Stderr), "generated") {
		s.Out.Hostf(h.Name(), "generated ssh key %s for postgres", k.Path)
	}
	pub := strings.TrimSpace(string(res.Stdout))
	if !strings.HasPrefix(pub, "ssh-") {
		return "", fmt.Errorf("%s: %s.pub does not hold a public key", h.Name(), k.Path)
	}
	return pub, nil
}

// hostKey reads the host's ssh host key through the connection pgwarm
// itself verified against known_hosts, so it is as trustworthy as that.
func hostKey(ctx context.Context, h host.Host) (string, error) {
	for _, t := range []string{"ed25519", "ecdsa", "rsa"} {
		b, err := h.ReadFile(ctx, "/etc/ssh/ssh_host_"+t+"_key.pub")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) >= 2 {
			return f[0] + " " + f[1], nil
		}
	}
	return "", fmt.Errorf("%s: no ssh host key under /etc/ssh", h.Name())
}

// ---- archive host ----

type archiveStep struct{}

func (archiveStep) Title() string {
	return "archive host: account, archive directory, marker, authorized_keys or exports"
}

func (archiveStep) ShouldRun(s *State) bool { return s.inPlan(s.Inv.Archive.Host) }

func (archiveStep) Run(ctx context.Context, s *State) error {
	ah := s.Inv.ArchiveHost()
	h := s.host(ah.Name)
	if !ah.IsPostgres() {
		if err := ensureAccount(ctx, s, h); err != nil {
			return err
		}
	}
	// On a PostgreSQL host acting as archive (the seed's layout) only the
	// archive's own files are written here; the rest in its PostgreSQL step.
	files := s.filesFor(ah.Name, func(f templates.File) bool {
		if f.Source == templates.SourceHelper || f.Source == templates.SourceGenerate {
			return false
		}
		if !ah.IsPostgres() {
			return true
		}
		switch f.Kind {
		case templates.KindArchiveDir, templates.KindMarker, templates.KindAuthorizedKeys, templates.KindArchiveRights, templates.KindExports:
			return true
		}
		return f.Dir && (strings.HasPrefix(s.Inv.Archive.Path, f.Path+"/") || strings.HasPrefix(f.Path, s.Inv.Archive.Home+"/"))
	})
	keys := path.Join(s.Inv.Archive.Home, ".ssh", "authorized_keys")
	before, _ := h.SHA256(ctx, keys)
	if _, err := ensureAll(ctx, s, h, files); err != nil {
		return err
	}
	// Before the primary ships anything (its step comes next).
	if err := bindArchive(ctx, s, h); err != nil {
		return err
	}
	if after, _ := h.SHA256(ctx, keys); before != "" && after != before {
		// Rights changed: open connections would keep the old ones.
		if err := CloseArchiveSessions(ctx, h, s.Inv.Archive.User); err != nil {
			return err
		}
	}
	if err := removeTwins(ctx, s, h); err != nil {
		return err
	}
	for _, f := range files {
		if f.Kind == templates.KindExports {
			return exportfs(ctx, s, h)
		}
	}
	return nil
}

// ensureAccount makes the archive account exist with archive.home as its
// home, where sshd looks for its authorized_keys. An existing account's
// home is never changed (the postgres user keeps .pgpass and .ssh in its
// own); plan's preflight refuses an inventory whose archive.home differs.
func ensureAccount(ctx context.Context, s *State, h host.Host) error {
	a := s.Inv.Archive
	res, err := h.Run(ctx, host.Cmd{Command: "getent passwd " + host.Quote(a.User)})
	if err != nil {
		return err
	}
	if !res.OK() {
		s.Out.Hostf(h.Name(), "creating account %s (home %s)", a.User, a.Home)
		_, err := host.CheckRun(ctx, h, host.Cmd{Command: host.Join("useradd", "--system", "--user-group", "--home-dir", a.Home, "--shell", "/bin/sh", a.User)})
		return err
	}
	fields := strings.Split(strings.TrimSpace(string(res.Stdout)), ":")
	if len(fields) >= 6 && path.Clean(fields[5]) != path.Clean(a.Home) {
		return fmt.Errorf("%s: the archive account %s has the home %s, not archive.home %s; set archive.home to it in %s (pgwarm never changes an account's home)", h.Name(), a.User, fields[5], a.Home, s.Inv.File)
	}
	return nil
}

func exportfs(ctx context.Context, s *State, h host.Host) error {
	res, err := h.Run(ctx, host.Cmd{Command: "command -v exportfs >/dev/null 2>&1 || exit 3; exportfs -ra"})
	if err != nil {
		return err
	}
	switch {
	case res.ExitCode == 3:
		s.Out.Hostf(h.Name(), "warning: exportfs not found: install an NFS server (nfs-kernel-server) to serve the archive")
	case !res.OK():
		return fmt.Errorf("%s: exportfs -ra: %s", h.Name(), strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// ---- primary ----

type primaryFilesStep struct{}

func (primaryFilesStep) Title() string {
	return "primary: managed settings, pg_hba, .pgpass, ssh config and known_hosts for the archive"
}

func (primaryFilesStep) ShouldRun(s *State) bool { return s.inPlan(s.Inv.Primary().Name) }

func (primaryFilesStep) Run(ctx context.Context, s *State) error {
	return pgHostFiles(ctx, s, s.Inv.Primary().Name, func(templates.File) bool { return true })
}

// pgHostFiles writes a PostgreSQL host's files that keep selects, checks
// an NFS archive is reachable, and records a configuration change.
func pgHostFiles(ctx context.Context, s *State, name string, keep func(templates.File) bool) error {
	h := s.host(name)
	files := s.filesFor(name, func(f templates.File) bool {
		return f.Source != templates.SourceHelper && f.Source != templates.SourceGenerate && keep(f)
	})
	conf, err := ensureAll(ctx, s, h, files)
	if err != nil {
		return err
	}
	if err := removeTwins(ctx, s, h); err != nil {
		return err
	}
	if conf {
		s.markChanged(name)
	}
	ih, _ := s.Inv.Host(name)
	if s.Inv.Archive.Transport == inventory.TransportNFS && !s.Inv.ArchiveIsLocal(ih) {
		return ensureMounted(ctx, s, h)
	}
	return nil
}

// ensureMounted checks the archive is visible at the NFS mount point by its
// marker (the seed's "mounted" file), mounting the fstab entry if not.
func ensureMounted(ctx context.Context, s *State, h host.Host) error {
	a := s.Inv.Archive
	marker := path.Join(a.MountPoint, a.Marker)
	script := fmt.Sprintf("test -e %s && exit 0; mount %s 2>&1 || exit 4; test -e %s || exit 5",
		host.Quote(marker), host.Quote(a.MountPoint), host.Quote(marker))
	res, err := h.Run(ctx, host.Cmd{Command: script})
	if err != nil {
		return err
	}
	switch res.ExitCode {
	case 0:
		return nil
	case 4:
		return fmt.Errorf("%s: the archive is not mounted at %s (no %s) and mounting it failed: %s", h.Name(), a.MountPoint, a.Marker, strings.TrimSpace(string(res.Stdout)))
	default:
		return fmt.Errorf("%s: %s is mounted but has no marker %s: is it the archive of cluster %s?", h.Name(), a.MountPoint, a.Marker, s.Inv.Cluster)
	}
}

type primaryRoleStep struct{}

func (primaryRoleStep) Title() string { return "primary: replication role (and slots for streaming)" }

func (primaryRoleStep) ShouldRun(s *State) bool { return s.inPlan(s.Inv.Primary().Name) }

func (primaryRoleStep) Run(ctx context.Context, s *State) error {
	prim := s.Inv.Primary().Name
	h := s.host(prim)
	c := NewControl(s.Inv, s.Facts[prim].Systemd)
	if up, err := running(ctx, h, c); err != nil {
		return err
	} else if !up {
		if err := control(ctx, s, h, c, "start", "the primary is not running"); err != nil {
			return err
		}
	}
	user := s.Inv.Replication.User
	// The running server's version decides the password's stored form
	// (md5 on 9.6, SCRAM from 10), not the inventory's.
	out, err := psql(ctx, s, h, roleQuery(user))
	if err != nil {
		return err
	}
	rs, err := parseRoleState(out)
	if err != nil {
		return fmt.Errorf("%s: %w", prim, err)
	}
	if rs.Exists && rs.Replication && rs.Login && PasswordMatches(rs.ServerVersionNum, rs.Password, user, s.Opts.Password) {
		s.Out.Hostf(prim, "role %s is up to date", user)
	} else {
		verifier, err := PasswordVerifier(rs.ServerVersionNum, user, s.Opts.Password)
		if err != nil {
			return err
		}
		verb := "CREATE"
		if rs.Exists {
			verb = "ALTER"
		}
		// Only the verifier (SCRAM, or md5 on 9.6) crosses the wire, on stdin.
		sql := fmt.Sprintf("%s ROLE %s WITH REPLICATION LOGIN PASSWORD %s;\n", verb, sqlIdent(user), sqlString(verifier))
		if _, err := psql(ctx, s, h, sql); err != nil {
			return err
		}
		s.Out.Hostf(prim, "role %s: %sd with replication and the password from %s", user, strings.ToLower(verb), s.Inv.Replication.PasswordEnv)
	}
	if s.Inv.Replication.Mode == inventory.ModeStreaming && s.Inv.Replication.Slot {
		for _, sb := range s.Inv.Standbys() {
			slot := inventory.SlotName(sb)
			out, err := psql(ctx, s, h, fmt.Sprintf("SELECT pg_create_physical_replication_slot(%s) IS NOT NULL WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s);\n", sqlString(slot), sqlString(slot)))
			if err != nil {
				return err
			}
			if out != "" {
				s.Out.Hostf(prim, "replication slot %s created for %s", slot, sb.Name)
			}
		}
	}
	return nil
}

// roleQuery reads, in one line, the server's version and the replication
// role's flags and stored password: "VERSION|" when the role is absent,
// "VERSION|REPLICATION LOGIN|ROLPASSWORD" (booleans as t/f) when present.
// The password comes last: a plaintext one may hold any character.
func roleQuery(user string) string {
	return "SELECT current_setting('server_version_num') || '|' || coalesce((SELECT " +
		"(CASE WHEN rolreplication THEN 't' ELSE 'f' END) || (CASE WHEN rolcanlogin THEN 't' ELSE 'f' END) || '|' || coalesce(rolpassword, '') " +
		"FROM pg_authid WHERE rolname = " + sqlString(user) + "), '');\n"
}

// roleState is roleQuery's answer.
type roleState struct {
	ServerVersionNum   int
	Exists             bool
	Replication, Login bool
	Password           string // rolpassword: a verifier, "" for none
}

func parseRoleState(out string) (roleState, error) {
	v, rest, ok := strings.Cut(out, "|")
	n, err := strconv.Atoi(v)
	if !ok || err != nil {
		return roleState{}, fmt.Errorf("unexpected answer to the role query: %q is not a server_version_num", truncate(v, 20))
	}
	rs := roleState{ServerVersionNum: n}
	if rest == "" {
		return rs, nil
	}
	flags, pw, ok := strings.Cut(rest, "|")
	if !ok || len(flags) != 2 {
		return roleState{}, fmt.Errorf("unexpected answer to the role query: no REPLICATION/LOGIN flags")
	}
	rs.Exists, rs.Replication, rs.Login, rs.Password = true, flags[0] == 't', flags[1] == 't', pw
	return rs, nil
}

// truncate keeps an unexpected answer short in an error message; only
// the version field is ever shown (what follows may be a verifier).
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

type primaryReloadStep struct{}

func (primaryReloadStep) Title() string {
	return "primary: reload, or restart when pg_settings.pending_restart says so"
}

func (primaryReloadStep) ShouldRun(s *State) bool { return s.inPlan(s.Inv.Primary().Name) }

func (primaryReloadStep) Run(ctx context.Context, s *State) error {
	return reloadOrRestart(ctx, s, s.Inv.Primary().Name)
}

// reloadOrRestart reloads the configuration (harmless when nothing
// changed, and it finishes the job of a run killed after writing files)
// and restarts only for settings that need it.
func reloadOrRestart(ctx context.Context, s *State, name string) error {
	h := s.host(name)
	if _, err := psql(ctx, s, h, "SELECT pg_reload_conf();\n"); err != nil {
		return err
	}
	if s.wasChanged(name) {
		s.Out.Hostf(name, "configuration reloaded")
	}
	// The postmaster re-reads its files asynchronously after SIGHUP; the
	// pg_settings of a new session show the result.
	var pending string
	for i := 0; i < 20; i++ {
		out, err := psql(ctx, s, h, "SELECT string_agg(name, ', ' ORDER BY name) FROM pg_settings WHERE pending_restart;\n")
		if err != nil {
			return err
		}
		pending = out
		if pending != "" {
			break
		}
		if !s.wasChanged(name) {
			break
		}
		if err := sleepCtx(ctx, 100); err != nil {
			return err
		}
	}
	if pending == "" {
		return nil
	}
	// The plan decided restart or reload from pg_settings.context (and the
	// restarts already pending) when it was made; the server agrees, or
	// apply does not restart a server the operator was not shown it would.
	if s.Opts.Plan != nil && !s.planRestarts(name) {
		return fmt.Errorf("%s: after the reload PostgreSQL reports pending_restart for %s, but the plan showed no restart of %s; it was not restarted: run pgwarm plan to see the change, then apply", name, pending, name)
	}
	c := NewControl(s.Inv, s.Facts[name].Systemd)
	return control(ctx, s, h, c, "restart", "pending_restart for "+pending)
}

// planRestarts reports whether the plan restarts PostgreSQL on host name.
func (s *State) planRestarts(name string) bool { return s.plannedAction(name, "restart postgresql") }
