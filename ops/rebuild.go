package ops

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgwarm/pgwarm/apply"
	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
)

// Rebuild methods.
const (
	MethodAuto       = "auto"
	MethodRewind     = "rewind"
	MethodBasebackup = "basebackup"
)

// RebuildDecision is what rebuild found it may do.
type RebuildDecision struct {
	Primary string // the host to follow: the running primary on the newest timeline
	// FenceStale: the target still accepts writes, but on an older timeline
	// than Primary's, so it is a former primary that came back (after a
	// crash, when promote could not fence it). Its writes since the
	// failover are on a dead timeline whatever happens, and rebuilding it
	// is discarding them, so rebuild stops it at once instead of refusing:
	// every second it runs more client writes are lost.
	FenceStale bool
}

// CheckRebuild decides whether target may be rebuilt and from which
// primary. It refuses when target is the live primary, or accepts writes
// and nothing proves another host superseded it. Pure.
func CheckRebuild(r *Report, target string) (RebuildDecision, error) {
	row := r.Row(target)
	switch {
	case row == nil || !row.IsPostgres():
		return RebuildDecision{}, fmt.Errorf("%s: not a PostgreSQL host of the inventory", target)
	case row.State == StateUnreachable:
		return RebuildDecision{}, fmt.Errorf("%s: unreachable: %s", target, row.Error)
	case row.State == StateRunning && row.Error != "":
		return RebuildDecision{}, fmt.Errorf("%s: running but cannot be queried (%s): stop it first", target, row.Error)
	}
	var prim *HostStatus
	for i := range r.Hosts {
		h := &r.Hosts[i]
		if h.Name == target || !h.IsPostgres() || h.State != StateRunning || h.Role != string(inventory.RolePrimary) || h.Error != "" {
			continue
		}
		if prim == nil || h.Timeline > prim.Timeline {
			prim = h
		}
	}
	targetWrites := row.State == StateRunning && row.Role == string(inventory.RolePrimary)
	switch {
	case prim == nil && targetWrites:
		return RebuildDecision{}, fmt.Errorf("%s: is the live primary (no other host accepts writes): promote a standby first (pgwarm promote)", target)
	case prim == nil:
		return RebuildDecision{}, fmt.Errorf("%s: no other host accepts writes: there is no primary to rebuild it from (see pgwarm status)", target)
	case targetWrites && (prim.Timeline == 0 || row.Timeline == 0 || prim.Timeline <= row.Timeline):
		return RebuildDecision{}, fmt.Errorf("%s: still accepts writes (timeline %d) and is not fenced, and %s (timeline %d) is not on a newer timeline: stop %s or run pgwarm promote first",
			target, row.Timeline, prim.Name, prim.Timeline, target)
	}
	return RebuildDecision{Primary: prim.Name, FenceStale: targetWrites}, nil
}

// ControlData is what pg_controldata says about a stopped data directory.
type ControlData struct {
	Initialised bool
	SystemID    string
	State       string // "shut down", "in production", ...
	WalLogHints bool
	Checksums   bool
	Timeline    uint32
	Checkpoint  LSN // latest checkpoint location
}

// ParseControlData reads pg_controldata's output. Pure.
func ParseControlData(out string) ControlData {
	var c ControlData
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Database system identifier":
			c.SystemID, c.Initialised = v, true
		case "Database cluster state":
			c.State = v
		case "wal_log_hints setting":
			c.WalLogHints = v == "on"
		case "Data page checksum version":
			c.Checksums = v != "" && v != "0"
		case "Latest checkpoint's TimeLineID":
			n, _ := strconv.ParseUint(v, 10, 32)
			c.Timeline = uint32(n)
		case "Latest checkpoint location":
			c.Checkpoint, _ = ParseLSN(v)
		}
	}
	return c
}

// DivergedFrom reports whether a target whose last checkpoint is cd lies
// past the point where the source's timeline history (the content of the
// source's TLI.history file) forked off the target's timeline: then it
// cannot follow the source without a rewind or a new base backup. pg_rewind
// 13 says "no rewind required" for a target shut down right after the fork
// (its shutdown checkpoint is the only record past it); PostgreSQL then
// refuses to start it ("requested timeline is not a child"). Pure.
func DivergedFrom(cd ControlData, history string) (LSN, bool) {
	for _, l := range strings.Split(history, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || uint32(tli) != cd.Timeline {
			continue
		}
		fork, err := ParseLSN(f[1])
		if err != nil {
			continue
		}
		return fork, cd.Checkpoint >= fork
	}
	return 0, false
}

// CleanlyShutDown reports whether pg_rewind accepts the directory as is.
func (c ControlData) CleanlyShutDown() bool {
	return c.State == "shut down" || c.State == "shut down in recovery"
}

// ChooseMethod decides how to rebuild: pg_rewind needs the same cluster
// (system identifier), hint bits in the WAL (wal_log_hints or checksums)
// and, for the replication role as its source, PostgreSQL 11 (function
// grants); otherwise a base backup. auto picks rewind when it can. Pure.
func ChooseMethod(requested string, v inventory.Version, t ControlData, primarySysID string) (string, string, error) {
	var why string
	switch {
	case !t.Initialised:
		why = "the data directory holds no cluster"
	case t.SystemID != primarySysID:
		why = fmt.Sprintf("another cluster (system identifier %s, the primary's is %s)", t.SystemID, primarySysID)
	case !t.WalLogHints && !t.Checksums:
		why = "neither wal_log_hints nor data checksums were on"
	case !v.AtLeast(11):
		why = "PostgreSQL before 11 lets only a superuser be pg_rewind's source"
	}
	switch requested {
	case MethodBasebackup:
		return MethodBasebackup, "requested", nil
	case MethodRewind:
		if why != "" {
			return "", "", fmt.Errorf("pg_rewind cannot be used: %s (use --method basebackup)", why)
		}
		return MethodRewind, "requested", nil
	case MethodAuto, "":
		if why != "" {
			return MethodBasebackup, "pg_rewind cannot be used: " + why, nil
		}
		return MethodRewind, "same cluster, hint bits WAL-logged", nil
	}
	return "", "", fmt.Errorf("--method %q: want auto, rewind or basebackup", requested)
}

// RebuildOptions are rebuild's inputs besides the inventory.
type RebuildOptions struct {
	Target        string
	Method        string
	VerifyTimeout time.Duration
	Password      string // the replication password, for rendering .pgpass (not written by rebuild)
	// Lock: rebuild takes apply's lock on the primary it follows, so an
	// apply and a rebuild of the same cluster never run at once.
	Lock apply.LockOptions
}

// Rebuild turns target into a standby of the current primary.
func Rebuild(ctx context.Context, inv *inventory.Inventory, hosts Hosts, opts RebuildOptions, pr *Printer) error {
	switch opts.Method {
	case MethodAuto, MethodRewind, MethodBasebackup:
	default:
		return fmt.Errorf("--method %q: want auto, rewind or basebackup", opts.Method)
	}
	rb := &rebuildRun{inv: inv, hosts: hosts, opts: opts, pr: pr, start: time.Now(), name: opts.Target}
	return apply.ExecuteOf(ctx, rb, pr, "pgwarm rebuild "+opts.Target, rebuildSteps())
}

// rebuildSteps is rebuild's workflow, run by apply's executor: each step
// reads and writes the run's state; the whole is run again after a
// failure (every step finds what the last run left and goes on from it).
func rebuildSteps() []apply.StepOf[*rebuildRun] {
	return []apply.StepOf[*rebuildRun]{rbCheck{}, rbLock{}, rbStop{}, rbChoose{}, rbRewind{}, rbBaseBackup{}, rbConfigure{}, rbVerify{}}
}

// rebuildRun is one rebuild's state, filled in step by step.
type rebuildRun struct {
	inv   *inventory.Inventory
	hosts Hosts
	opts  RebuildOptions
	pr    *Printer
	start time.Time

	name, prim string // the target, and the primary it follows
	d          RebuildDecision
	h, ph      host.Host
	primTL     uint32
	stopOut    string
	sysid      string
	ckErr      error // the primary's checkpoint for pg_rewind; fails only the rewind
	cd         ControlData
	method     string
	sinv       *inventory.Inventory // the inventory as observed: prim primary, name a standby
	st         *apply.State
	lockHeld   string // the lock this run wrote on the primary, for release
	t0         time.Time
	copied     time.Duration
}

type rbCheck struct{}

func (rbCheck) Title() string { return "check the target and the primary it will follow" }

func (rbCheck) Run(ctx context.Context, rb *rebuildRun) error {
	r := Observe(ctx, rb.inv, rb.hosts)
	Evaluate(r, rb.inv.Replication.Mode, DefaultThresholds())
	d, err := CheckRebuild(r, rb.name)
	if err != nil {
		return err
	}
	rb.d, rb.prim = d, d.Primary
	rb.primTL = r.Row(rb.prim).Timeline
	rb.pr.Hostf(rb.name, "rebuilding as a standby of %s (timeline %d)", rb.prim, rb.primTL)
	if rb.ph, err = rb.hosts.Get(ctx, rb.prim); err != nil {
		return err
	}
	if rb.h, err = rb.hosts.Get(ctx, rb.name); err != nil {
		return err
	}
	if d.FenceStale {
		rb.pr.Hostf(rb.name, "accepts writes on timeline %d while %s is the primary on timeline %d: a former primary that came back; fencing it now (its writes since the failover cannot be kept)",
			r.Row(rb.name).Timeline, rb.prim, rb.primTL)
	}
	return nil
}

type rbLock struct{}

func (rbLock) Title() string { return "lock: take the apply lock on the primary" }

func (rbLock) Run(ctx context.Context, rb *rebuildRun) error {
	o := rb.opts.Lock
	if o.Cmd == "" {
		o.Cmd = "rebuild"
	}
	held, err := apply.TakeLock(ctx, rb.ph, apply.LockPath(rb.inv), o, rb.pr)
	rb.lockHeld = held
	return err
}

// CleanUp releases the lock this run took, whatever happened after.
func (rbLock) CleanUp(ctx context.Context, rb *rebuildRun) {
	if rb.lockHeld != "" && apply.ReleaseLock(ctx, rb.ph, apply.LockPath(rb.inv), rb.lockHeld, rb.pr) {
		rb.lockHeld = ""
	}
}

type rbStop struct{}

func (rbStop) Title() string {
	return "stop the target and read its control file; the primary's system identifier"
}

// Run does both hosts at once: the target stops and prints its control
// file; the primary gives its system identifier and, unless a base
// backup was asked for, checkpoints for pg_rewind (see
// checkpointForRewind), which so costs no time of its own.
func (rbStop) Run(ctx context.Context, rb *rebuildRun) error {
	inv := rb.inv
	err := host.ParallelNames(ctx, 0, []string{rb.name, rb.prim}, func(ctx context.Context, n string) error {
		if n == rb.prim {
			res, err := host.CheckRun(ctx, rb.ph, host.Cmd{Command: Psql(inv, "SELECT system_identifier FROM pg_control_system()"), Timeout: 30 * time.Second})
			if err != nil {
				return err
			}
			rb.sysid = strings.TrimSpace(string(res.Stdout))
			if rb.opts.Method != MethodBasebackup {
				rb.ckErr = checkpointForRewind(ctx, inv, rb.ph)
			}
			return nil
		}
		res, err := rb.h.Run(ctx, host.Cmd{Command: stopScript(inv, rb.d.FenceStale) + "\n" + controlDataScript(inv), Timeout: 5 * time.Minute})
		if err != nil {
			return err
		}
		if !res.OK() {
			return fmt.Errorf("stopping PostgreSQL failed (exit %d): %s", res.ExitCode, firstLine(res.Stderr))
		}
		rb.stopOut = string(res.Stdout)
		return nil
	})
	if err != nil {
		return err
	}
	if l, ok := lineWith(rb.stopOut, "stopped "); ok {
		rb.pr.Hostf(rb.name, "%s", l)
	}
	rb.cd = ParseControlData(rb.stopOut)
	return nil
}

type rbChoose struct{}

func (rbChoose) Title() string { return "choose pg_rewind or a base backup" }

func (rbChoose) Run(ctx context.Context, rb *rebuildRun) error {
	method, why, err := ChooseMethod(rb.opts.Method, rb.inv.Postgres.Version, rb.cd, rb.sysid)
	if err != nil {
		return &host.Error{Host: rb.name, Err: err}
	}
	rb.method = method
	rb.pr.Hostf(rb.name, "method %s: %s", method, why)
	// apply's standby code, on the inventory as observed.
	rb.sinv = withPrimary(rb.inv, rb.prim)
	if rb.inv.Primary().Name != rb.prim {
		rb.pr.Hostf(rb.prim, "is the primary but %s names %s: using %s; inventory change to make: %s primary, %s standby (pgwarm promote --update-inventory does it)",
			rb.inv.File, rb.inv.Primary().Name, rb.prim, rb.prim, rb.inv.Primary().Name)
	}
	rb.st, err = applyState(ctx, rb.sinv, rb.hosts, rb.name, rb.prim, rb.opts.Password, rb.pr.W)
	rb.t0 = time.Now()
	return err
}

type rbRewind struct{}

func (rbRewind) Title() string { return "pg_rewind the target onto the primary's timeline" }

func (rbRewind) ShouldRun(rb *rebuildRun) bool { return rb.method == MethodRewind }

// Run does both hosts at once again: the primary grants pg_rewind its
// functions while the target gets its standby settings and, after a crash
// or an immediate stop, finishes its crash recovery. With --method auto a
// failed rewind falls back to a base backup (the next step).
func (rbRewind) Run(ctx context.Context, rb *rebuildRun) error {
	inv, name := rb.inv, rb.name
	err := host.ParallelNames(ctx, 0, []string{name, rb.prim}, func(ctx context.Context, n string) error {
		if n == rb.prim {
			if rb.ckErr != nil {
				return rb.ckErr
			}
			return grantRewind(ctx, inv, rb.ph)
		}
		if err := writeSettings(ctx, rb.sinv, rb.st, rb.h); err != nil {
			return err
		}
		if rb.cd.CleanlyShutDown() {
			return nil
		}
		rb.pr.Hostf(name, "data directory state %q: finishing crash recovery in single-user mode first (pg_rewind needs a clean shutdown)", rb.cd.State)
		rc, err := recoverSingleUser(ctx, inv, rb.h)
		rb.cd = rc
		return err
	})
	if err == nil {
		err = rewind(ctx, inv, rb.h, rb.ph, rb.cd, rb.prim, rb.pr)
	}
	if err != nil && rb.opts.Method == MethodAuto {
		rb.pr.Hostf(name, "pg_rewind failed (%v); falling back to a base backup", err)
		rb.method, rb.t0 = MethodBasebackup, time.Now()
		return nil
	}
	if err == nil {
		rb.copied = time.Since(rb.t0)
	}
	return err
}

type rbBaseBackup struct{}

func (rbBaseBackup) Title() string { return "seed the target from a base backup of the primary" }

func (rbBaseBackup) ShouldRun(rb *rebuildRun) bool { return rb.method == MethodBasebackup }

func (rbBaseBackup) Run(ctx context.Context, rb *rebuildRun) error {
	if err := apply.Reseed(ctx, rb.st, rb.name); err != nil {
		return err
	}
	rb.copied = time.Since(rb.t0)
	return nil
}

type rbConfigure struct{}

func (rbConfigure) Title() string { return "standby settings, automatic start, start in recovery" }

// Run writes only the files whose content depends on the role: the
// others (.pgpass, ssh keys and known_hosts) were written by apply and
// are the same for a primary and a standby.
func (rbConfigure) Run(ctx context.Context, rb *rebuildRun) error {
	keep := func(f templates.File) bool { return !f.Secret && len(f.NeedsKeys) == 0 && len(f.NeedsHostKeys) == 0 }
	if res, err := rb.h.Run(ctx, host.Cmd{Command: autostartScript(rb.inv, true)}); err != nil {
		return err
	} else if l, ok := lineWith(string(res.Stdout), "autostart "); ok {
		rb.pr.Hostf(rb.name, "automatic start re-enabled (%s)", strings.TrimPrefix(l, "autostart "))
	}
	return apply.ConfigureStandby(ctx, rb.st, rb.name, keep)
}

type rbVerify struct{}

func (rbVerify) Title() string { return "prove the target replays the primary's WAL" }

func (rbVerify) Run(ctx context.Context, rb *rebuildRun) error {
	if err := verifyOn(ctx, rb.inv, rb.hosts, rb.prim, []string{rb.name}, rb.opts.VerifyTimeout, rb.pr); err != nil {
		return fmt.Errorf("%w (rebuilt with %s, but not proven to replay)", err, rb.method)
	}
	rb.pr.Hostf(rb.name, "rebuilt as a standby of %s with %s in %s (%s %s)", rb.prim, rb.method, time.Since(rb.start).Round(100*time.Millisecond),
		map[string]string{MethodRewind: "pg_rewind", MethodBasebackup: "base backup"}[rb.method], rb.copied.Round(100*time.Millisecond))
	return nil
}

func lineWith(out, prefix string) (string, bool) {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l, true
		}
	}
	return "", false
}

// stopScript stops PostgreSQL when it runs: fast, or at once (immediate)
// for a stale former primary. Its WAL since the failover is discarded
// whatever happens, so nothing is lost by not writing a shutdown
// checkpoint, while a fast shutdown also waits for its archiver to push
// that dead-timeline WAL, which the archive refuses since the promotion:
// three tries a second apart, twice (4.5 s in bench-ops). The crash
// recovery pg_rewind then needs replays only the WAL since its last
// checkpoint; a base backup discards the directory.
func stopScript(inv *inventory.Inventory, immediate bool) string {
	p := inv.Paths()
	stop := controls(inv, "stop") + " || exit 4\n  echo \"stopped fast ($how)\""
	if immediate {
		stop = asPostgres(path.Join(p.BinDir, "pg_ctl"), "-D", p.DataDir, "-w", "-t", "60", "-m", "immediate", "stop") + " >/dev/null || exit 4\n" +
			"  echo 'stopped at once (pg_ctl stop -m immediate): a stale primary needs no shutdown checkpoint and no archiving'"
	}
	return "if " + asPostgres(path.Join(p.BinDir, "pg_ctl"), "-D", p.DataDir, "status") + " >/dev/null 2>&1; then\n  " + stop + "\nfi"
}

// controlDataScript prints pg_control of the (stopped) data directory;
// nothing when there is none.
func controlDataScript(inv *inventory.Inventory) string {
	return asPostgres(path.Join(inv.Paths().BinDir, "pg_controldata"), "-D", inv.Paths().DataDir) + " 2>/dev/null || true"
}

// checkpointForRewind checkpoints the primary. pg_rewind reads the
// source's timeline from its control file, which a promotion updates only
// with its next checkpoint (spread over minutes by default): before it,
// pg_rewind sees one timeline and answers "no rewind required" for a
// target that did diverge.
func checkpointForRewind(ctx context.Context, inv *inventory.Inventory, ph host.Host) error {
	if _, err := host.CheckRun(ctx, ph, host.Cmd{Command: Psql(inv, "CHECKPOINT"), Timeout: 10 * time.Minute}); err != nil {
		return fmt.Errorf("checkpoint before pg_rewind: %w", err)
	}
	return nil
}

// withPrimary is a copy of inv where prim is the primary and every other
// primary a standby.
func withPrimary(inv *inventory.Inventory, prim string) *inventory.Inventory {
	c := *inv
	c.Hosts = append([]inventory.Host(nil), inv.Hosts...)
	for i, h := range c.Hosts {
		switch {
		case h.Name == prim:
			c.Hosts[i].Role = inventory.RolePrimary
		case h.Role == inventory.RolePrimary:
			c.Hosts[i].Role = inventory.RoleStandby
		}
	}
	return &c
}

// applyState prepares apply's state for the two hosts rebuild touches.
func applyState(ctx context.Context, inv *inventory.Inventory, hosts Hosts, name, prim, password string, w io.Writer) (*apply.State, error) {
	rendered, err := templates.RenderWith(inv, templates.Options{LookupEnv: func(k string) (string, bool) {
		if k == inv.Replication.PasswordEnv && password != "" {
			return password, true
		}
		return os.LookupEnv(k)
	}})
	if err != nil {
		return nil, err
	}
	conns := map[string]host.Host{}
	fs := map[string]facts.Facts{}
	var mu sync.Mutex
	err = host.ParallelNames(ctx, 0, []string{name, prim}, func(ctx context.Context, n string) error {
		h, err := hosts.Get(ctx, n)
		if err != nil {
			return err
		}
		ih, _ := inv.Host(n)
		f, err := facts.Gather(ctx, h, apply.FactsRequest(inv, ih))
		if err != nil {
			return err
		}
		mu.Lock()
		conns[n], fs[n] = h, f
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return apply.NewState(inv, rendered, conns, fs, apply.Options{Password: password}, apply.NewPrinter(w, false)), nil
}

// writeSettings writes the standby's managed settings file (outside the
// data directory) before pg_rewind, whose --restore-target-wal reads the
// restore_command from it.
func writeSettings(ctx context.Context, inv *inventory.Inventory, st *apply.State, h host.Host) error {
	file := inv.Paths().SettingsFile
	for _, f := range st.Rendered.ForHost(h.Name(), st.Facts[h.Name()].Systemd) {
		if f.Path == file {
			content, err := st.Content(f)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name(), err)
			}
			return h.WriteFile(ctx, f.Path, content, f.Mode.Perm(), f.Owner)
		}
	}
	return fmt.Errorf("%s: no rendered %s", h.Name(), file)
}

// grantRewind grants the replication role the functions pg_rewind reads
// the primary's files with. They let the role read the data directory's
// files, which it can already copy whole with pg_basebackup; no superuser
// password leaves the primary.
func grantRewind(ctx context.Context, inv *inventory.Inventory, ph host.Host) error {
	user := `"` + strings.ReplaceAll(inv.Replication.User, `"`, `""`) + `"`
	grants := []string{
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO " + user,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO " + user,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO " + user,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO " + user,
	}
	if _, err := host.CheckRun(ctx, ph, host.Cmd{Command: psqlMulti(inv, grants...), Timeout: 30 * time.Second}); err != nil {
		return fmt.Errorf("granting pg_rewind's functions to %s: %w", inv.Replication.User, err)
	}
	return nil
}

// recoverSingleUser finishes the crash recovery of a target that crashed
// or was stopped at once, in single-user mode, and returns its control file
// as it is afterwards: the divergence check needs the checkpoint that
// recovery wrote. Single-user mode runs no archiver, but archive_mode stays
// as configured: with it off, the shutdown checkpoint removes WAL segments
// still waiting to be archived (the archive refuses a stale primary's), and
// pg_rewind, reading the target's WAL back from the fork, then cannot find
// the segment holding the end of the record at the fork ("could not find
// previous WAL record", seen in bench-ops).
func recoverSingleUser(ctx context.Context, inv *inventory.Inventory, h host.Host) (ControlData, error) {
	res, err := host.CheckRun(ctx, h, host.Cmd{Command: singleUserScript(inv), Timeout: 10 * time.Minute})
	if err != nil {
		return ControlData{}, fmt.Errorf("single-user crash recovery: %w", err)
	}
	cd := ParseControlData(string(res.Stdout))
	if !cd.CleanlyShutDown() {
		return cd, fmt.Errorf("single-user crash recovery left the data directory %q", cd.State)
	}
	return cd, nil
}

// singleUserScript runs crash recovery in single-user mode, then prints
// pg_control. The shutdown checkpoint keeps every WAL segment (the largest
// wal_keep_size or wal_keep_segments): pg_rewind reads the target's WAL
// from the last common checkpoint on, and what it finds in pg_wal it need
// not restore from the archive one segment at a time (about 0.14 s each
// over ssh, 1.15 s of a 2.7 s pg_rewind in bench-ops). The target's pg_wal
// is replaced by the rewind anyway. Pure.
func singleUserScript(inv *inventory.Inventory) string {
	p := inv.Paths()
	keep := "wal_keep_segments=2147483647"
	if inv.Postgres.Version.AtLeast(13) {
		keep = "wal_keep_size=2147483647"
	}
	return asPostgres(path.Join(p.BinDir, "postgres"), "--single", "-D", p.DataDir, "-c", "config_file="+p.MainConfig, "-c", keep, "postgres") +
		" </dev/null >/dev/null && " + controlDataScript(inv)
}

// rewind runs pg_rewind on the target, whose crash recovery is done,
// against the primary, as the replication role (password from
// ~postgres/.pgpass, as for base backups; see grantRewind), then switches
// the primary's WAL (see switchAfterRewind).
func rewind(ctx context.Context, inv *inventory.Inventory, h, ph host.Host, cd ControlData, prim string, pr *Printer) error {
	p := inv.Paths()
	name := h.Name()
	ph2, _ := inv.Host(prim)
	src := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres connect_timeout=10", ph2.Address, inv.Postgres.Port, inv.Replication.User)
	pr.Hostf(name, "pg_rewind from %s (%s)", prim, ph2.Address)
	// --progress for the "need to copy" line: what the rewind costs.
	args := []string{path.Join(p.BinDir, "pg_rewind"), "-D", p.DataDir, "--source-server", src, "--progress"}
	// The WAL back to the last common checkpoint is often recycled on the
	// target by then; from 13 pg_rewind fetches it with the target's
	// restore_command, which it reads from postgresql.conf (outside the
	// data directory on Debian: --config-file, from 15).
	if inv.Postgres.Version.AtLeast(15) || (inv.Postgres.Version.AtLeast(13) && p.ConfigDir == p.DataDir) {
		args = append(args, "--restore-target-wal")
		if inv.Postgres.Version.AtLeast(15) {
			args = append(args, "--config-file", p.MainConfig)
		}
	}
	res, err := h.Run(ctx, host.Cmd{Command: asPostgres(args...), Timeout: time.Hour})
	if err != nil {
		return err
	}
	if !res.OK() {
		msg := strings.TrimSpace(string(res.Stderr))
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		return fmt.Errorf("pg_rewind exited %d: %s", res.ExitCode, msg)
	}
	noRewind := false
	for _, l := range RewindSummary(string(res.Stderr) + string(res.Stdout)) {
		pr.Hostf(name, "pg_rewind: %s", l)
		noRewind = noRewind || strings.HasPrefix(l, "no rewind required")
	}
	if noRewind {
		// Check it: a target that is an ancestor of the source is fine; one
		// that wrote past the fork (if only its shutdown checkpoint) is not.
		hist, err := host.CheckRun(ctx, ph, host.Cmd{Command: historyScript(inv), Timeout: 30 * time.Second})
		if err != nil {
			return fmt.Errorf("reading %s's timeline history: %w", prim, err)
		}
		if fork, diverged := DivergedFrom(cd, string(hist.Stdout)); diverged {
			return fmt.Errorf("pg_rewind found nothing to rewind, but the last checkpoint %s on timeline %d lies past %s's fork at %s", cd.Checkpoint, cd.Timeline, prim, fork)
		}
	}
	switchAfterRewind(ctx, inv, ph, name, pr)
	return nil
}

// switchAfterRewind switches the primary's WAL. The rewound standby is
// consistent (a hot one accepts connections, and its start command
// returns) only once it has replayed up to where the primary's WAL was when
// pg_rewind finished: in the primary's current segment, which otherwise
// reaches the archive only when full or after archive_timeout. The
// standby's restore_command would wait for it (restore_retry, linger), and
// only then would recovery read the copy pg_rewind made. A failure costs
// that wait, not the rebuild.
func switchAfterRewind(ctx context.Context, inv *inventory.Inventory, ph host.Host, name string, pr *Printer) {
	res, err := host.CheckRun(ctx, ph, host.Cmd{Command: Psql(inv, walNames(inv.Postgres.Version, "SELECT pg_walfile_name(pg_switch_wal())")), Timeout: 30 * time.Second})
	if err != nil {
		pr.Hostf(ph.Name(), "could not switch WAL after pg_rewind (%v): %s may wait for its consistency point to be archived", err, name)
		return
	}
	pr.Hostf(ph.Name(), "WAL switched after pg_rewind: segment %s, which holds %s's consistency point, goes to the archive now", strings.TrimSpace(string(res.Stdout)), name)
}

// RewindSummary picks the lines worth showing from pg_rewind's output
// (with --progress, not on a terminal): where the servers diverged, the
// checkpoint it rewinds from, how much it copies (every non-relation file
// whole, the source's pg_wal included, plus the blocks the target changed
// since that checkpoint) and its verdict, without the program's prefix.
// Pure.
func RewindSummary(out string) []string {
	var keep []string
	for _, l := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "pg_rewind: "))
		for _, k := range []string{"servers diverged", "rewinding from", "need to copy", "no rewind required", "Done!"} {
			if strings.HasPrefix(l, k) {
				keep = append(keep, l)
				break
			}
		}
	}
	return keep
}

// historyScript prints the primary's current timeline history file (empty
// on timeline 1, which has none).
func historyScript(inv *inventory.Inventory) string {
	p := inv.Paths()
	wal := "pg_wal"
	if !inv.Postgres.Version.AtLeast(10) {
		wal = "pg_xlog"
	}
	// The current timeline, not the last checkpoint's: right after a
	// promotion they differ.
	tli := Psql(inv, walNames(inv.Postgres.Version, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"))
	return "t=$(" + tli + ") && f=" + host.Quote(p.DataDir+"/"+wal+"/") + "\"$t.history\" && if [ -f \"$f\" ]; then cat \"$f\"; fi"
}
