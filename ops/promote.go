package ops

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/apply"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
)

// PromotePlan is what promote will do, decided from one observation.
type PromotePlan struct {
	Target string
	// Fence are the other hosts that are or may be a primary and answer:
	// they are stopped and kept from starting on their own before Target
	// accepts writes.
	Fence []string
	// Unfenceable are such hosts that cannot be reached: promote goes on
	// and says so.
	Unfenceable []string
}

// PlanPromote picks the standby to promote (target, or the only running
// standby) and the hosts to fence. Pure.
func PlanPromote(r *Report, target string) (PromotePlan, error) {
	var candidates []string
	for _, h := range r.Hosts {
		if h.IsPostgres() && h.State == StateRunning && h.Role == string(inventory.RoleStandby) && h.Error == "" {
			candidates = append(candidates, h.Name)
		}
	}
	if target == "" {
		switch len(candidates) {
		case 0:
			return PromotePlan{}, errors.New("no running standby to promote (see pgwarm status)")
		case 1:
			target = candidates[0]
		default:
			return PromotePlan{}, fmt.Errorf("several running standbys (%s): name the one to promote", strings.Join(candidates, ", "))
		}
	}
	row := r.Row(target)
	switch {
	case row == nil || !row.IsPostgres():
		return PromotePlan{}, fmt.Errorf("%s: not a PostgreSQL host of the inventory", target)
	case row.State == StateUnreachable:
		return PromotePlan{}, fmt.Errorf("%s: unreachable: %s", target, row.Error)
	case row.State != StateRunning:
		return PromotePlan{}, fmt.Errorf("%s: PostgreSQL is not running (%s): start it as a standby first", target, row.State)
	case row.Error != "":
		return PromotePlan{}, fmt.Errorf("%s: cannot query PostgreSQL: %s", target, row.Error)
	case row.Role == string(inventory.RolePrimary):
		return PromotePlan{}, fmt.Errorf("%s: already accepts writes (not in recovery): nothing to promote", target)
	}
	p := PromotePlan{Target: target}
	for _, h := range r.Hosts {
		if !h.IsPostgres() || h.Name == target {
			continue
		}
		// The inventory's primary is fenced whatever it looks like (it may
		// be down now and start later); any other host only when it is or
		// would start as a primary. Running standbys keep following.
		mayBePrimary := h.InventoryRole == inventory.RolePrimary || h.Role == string(inventory.RolePrimary)
		if !mayBePrimary || h.State == StateNoCluster {
			continue
		}
		if h.State == StateUnreachable {
			p.Unfenceable = append(p.Unfenceable, h.Name)
		} else {
			p.Fence = append(p.Fence, h.Name)
		}
	}
	return p, nil
}

// PromoteOptions are promote's inputs besides the inventory.
type PromoteOptions struct {
	Target string
	// WriteTimeout bounds the wait for the promoted host to accept a write.
	WriteTimeout time.Duration
	// UpdateInventory rewrites the inventory file with the roles swapped.
	UpdateInventory bool
	// LateFence: after promoting around a host that could not be reached,
	// keep trying this long to reach it (through Redial, with the full
	// connect timeout) and fence it: the short fence timeout trades a
	// fast promotion for the chance that a live primary only answered late.
	LateFence time.Duration
	Redial    func(ctx context.Context, name string) (host.Host, error)
}

// Promote fences the old primary when it answers, lets the new primary
// archive, ends recovery on the standby, waits until it accepts a write and
// prints the time from start to that write.
func Promote(ctx context.Context, inv *inventory.Inventory, hosts Hosts, opts PromoteOptions, pr *Printer) error {
	start := time.Now()
	r := ObserveRoles(ctx, inv, hosts)
	plan, err := PlanPromote(r, opts.Target)
	if err != nil {
		return err
	}
	observed := time.Since(start)
	for _, name := range plan.Unfenceable {
		pr.Hostf(name, "could not be fenced: unreachable (%s); it must not start again as a primary: rebuild it with `pgwarm rebuild %s` once it is back", r.Row(name).Error, name)
	}
	var errs []error
	for _, name := range plan.Fence {
		if err := fence(ctx, inv, hosts, name, pr); err != nil {
			// Promoting next to a primary we failed to stop is split brain.
			return fmt.Errorf("%w; not promoting %s while %s may still accept writes", err, plan.Target, name)
		}
	}
	fenced := time.Since(start)
	// Until it is out of recovery the target must still read the archive
	// (the segments the fenced primary archived last, and the history files
	// that decide its new timeline); right after, it pushes its new
	// timeline. So it may do both until the promotion is done.
	if err := grantArchive(ctx, inv, hosts, plan.Target, promotingRights, pr); err != nil {
		errs = append(errs, err) // the promotion itself can go on; say what to fix
	}
	h, err := hosts.Get(ctx, plan.Target)
	if err != nil {
		return err
	}
	granted := time.Since(start)
	res, err := h.Run(ctx, host.Cmd{Command: promoteScript(inv, plan.Target, opts.WriteTimeout), Timeout: opts.WriteTimeout + 30*time.Second})
	if err != nil {
		return err
	}
	took := time.Since(start)
	out := strings.TrimSpace(string(res.Stdout))
	if !res.OK() {
		return &host.Error{Host: plan.Target, Err: fmt.Errorf("promotion failed (exit %d): %s %s", res.ExitCode, lastLine(out), firstLine(res.Stderr))}
	}
	f := strings.Split(lastLine(out), "|")
	tl := "?"
	if len(f) == 2 {
		tl = strings.TrimLeft(f[1], "0")
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	pr.Hostf(plan.Target, "promoted: accepts writes on timeline %s, %s after the command started (first write in pgwarm.promotions acknowledged; observe %s, fence %s, archive access %s, promote and write %s)",
		tl, ms(took), ms(observed), ms(fenced-observed), ms(granted-fenced), ms(took-granted))
	if len(errs) == 0 {
		errs = append(errs, grantArchive(ctx, inv, hosts, plan.Target, templates.ArchiveRightsPrimary, pr))
	}
	for _, name := range plan.Unfenceable {
		errs = append(errs, lateFence(ctx, inv, name, opts, pr))
	}
	if strings.Contains(out, "trigger removed") {
		pr.Hostf(plan.Target, "removed the stale trigger file %s", inv.Replication.TriggerFile)
	}
	errs = append(errs, inventoryChange(inv, plan.Target, opts.UpdateInventory, pr))
	return errors.Join(errs...)
}

// fence stops host name fast and keeps it from starting on its own. A
// running primary first switches WAL, so its last writes reach the archive
// during the shutdown (the archiver's final cycle) and the standby replays
// them before it is promoted.
func fence(ctx context.Context, inv *inventory.Inventory, hosts Hosts, name string, pr *Printer) error {
	h, err := hosts.Get(ctx, name)
	if err != nil {
		return err
	}
	res, err := h.Run(ctx, host.Cmd{Command: fenceScript(inv), Timeout: 2 * time.Minute})
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "switched "):
			pr.Hostf(name, "fencing: switched WAL (segment %s) so its last writes are archived on shutdown", strings.TrimPrefix(l, "switched "))
		case strings.HasPrefix(l, "stopped "):
			pr.Hostf(name, "fenced: stopped fast (%s)", strings.TrimPrefix(l, "stopped "))
		case l == "not running":
			pr.Hostf(name, "fenced: PostgreSQL was not running")
		case strings.HasPrefix(l, "autostart "):
			pr.Hostf(name, "automatic start disabled (%s); pgwarm rebuild re-enables it", strings.TrimPrefix(l, "autostart "))
		}
	}
	if !res.OK() {
		return &host.Error{Host: name, Err: fmt.Errorf("fencing failed (exit %d): %s", res.ExitCode, firstLine(res.Stderr))}
	}
	return nil
}

// lateFence tries for opts.LateFence to reach a host promote went around
// and fences it when it answers. Not reaching it is the expected case (it
// is down) and no error; reaching it and failing to fence it is one.
func lateFence(ctx context.Context, inv *inventory.Inventory, name string, opts PromoteOptions, pr *Printer) error {
	if opts.LateFence <= 0 || opts.Redial == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, opts.LateFence)
	defer cancel()
	for {
		h, err := opts.Redial(ctx, name)
		if err == nil {
			defer h.Close()
			pr.Hostf(name, "answers again after the promotion: fencing it now")
			return fence(ctx, inv, singleHost{h}, name, pr)
		}
		select {
		case <-ctx.Done():
			pr.Hostf(name, "still unreachable %s after the promotion; keep it from starting as a primary and run `pgwarm rebuild %s` once it is back", opts.LateFence, name)
			return nil
		case <-time.After(time.Second):
		}
	}
}

// singleHost is Hosts over one connected host.
type singleHost struct{ h host.Host }

func (s singleHost) Get(ctx context.Context, name string) (host.Host, error) { return s.h, nil }

// controls returns the shell that runs action with the control the host
// has: systemd when it is PID 1 there (decided on the host), else
// pg_ctlcluster or pg_ctl. apply decides the same way.
func controls(inv *inventory.Inventory, action string) string {
	sd, plain := apply.NewControl(inv, true), apply.NewControl(inv, false)
	return "if [ -d /run/systemd/system ]; then " + sd.Command(action) + "; how=" + host.Quote(sd.Describe()) +
		"; else " + plain.Command(action) + "; how=" + host.Quote(plain.Describe()) + "; fi"
}

// autostartScript turns the automatic start at boot off or on: Debian's
// start.conf (read by its boot scripts and systemd generator) and, with
// systemd, the unit.
func autostartScript(inv *inventory.Inventory, on bool) string {
	p := inv.Paths()
	mode, verb := "manual", "disable"
	if on {
		mode, verb = "auto", "enable"
	}
	var s []string
	if inv.Postgres.Layout == inventory.LayoutDebian || inv.Postgres.Layout == "" {
		sc := host.Quote(path.Join(p.ConfigDir, "start.conf"))
		s = append(s, "if [ -f "+sc+" ]; then printf '%s\\n' "+mode+" > "+sc+".pgwarm && chown --reference="+sc+" "+sc+".pgwarm && mv "+sc+".pgwarm "+sc+
			" && echo "+host.Quote("autostart "+path.Join(p.ConfigDir, "start.conf")+": "+mode)+"; fi")
	}
	s = append(s, "if [ -d /run/systemd/system ]; then systemctl "+verb+" "+host.Quote(p.Service)+" 2>/dev/null && echo "+host.Quote("autostart systemctl "+verb+" "+p.Service)+"; fi")
	return strings.Join(s, "\n")
}

func fenceScript(inv *inventory.Inventory) string {
	p := inv.Paths()
	sw := walNames(inv.Postgres.Version, "SELECT pg_walfile_name(pg_switch_wal())")
	return "set -u\n" +
		"if " + asPostgres(path.Join(p.BinDir, "pg_ctl"), "-D", p.DataDir, "status") + " >/dev/null 2>&1; then\n" +
		// Only a primary can switch; a failure here (a standby, a hung server) does not stop the fencing.
		"  seg=$(timeout 5 sh -c " + host.Quote(Psql(inv, sw)) + " 2>/dev/null) && echo \"switched $seg\"\n" +
		"  " + controls(inv, "stop") + " || exit 4\n" +
		"  echo \"stopped $how\"\n" +
		"else echo 'not running'; fi\n" +
		autostartScript(inv, false) + "\n"
}

// promoteScript ends recovery on the standby (pg_ctl promote waits until it
// is out of recovery; it works on every version from 9.6, pg_promote() only
// from 12), removes a trigger file nothing deletes, then retries one write
// in the pgwarm schema until it is acknowledged. Its last line is
// "<in recovery>|<timeline>" of that write.
func promoteScript(inv *inventory.Inventory, name string, timeout time.Duration) string {
	p := inv.Paths()
	promote := asPostgres(path.Join(p.BinDir, "pg_ctl"), "-D", p.DataDir, "promote", "-w", "-t", strconv.Itoa(int(timeout.Seconds())))
	write := psqlMulti(inv,
		"CREATE SCHEMA IF NOT EXISTS pgwarm",
		"CREATE TABLE IF NOT EXISTS pgwarm.promotions (host text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
		walNames(inv.Postgres.Version, "INSERT INTO pgwarm.promotions (host) VALUES ('"+strings.ReplaceAll(name, "'", "''")+"') RETURNING pg_is_in_recovery(), substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"))
	s := "set -u\n" + promote + " >/dev/null || exit 5\n"
	if t := inv.Replication.TriggerFile; t != "" {
		s += "if [ -e " + host.Quote(t) + " ]; then rm -f " + host.Quote(t) + " && echo 'trigger removed'; fi\n"
	}
	return s + fmt.Sprintf("end=$(( $(date +%%s) + %d ))\nwhile :; do\n  if out=$(%s 2>&1); then echo \"$out\" | tail -1; exit 0; fi\n"+
		"  if [ $(date +%%s) -ge $end ]; then echo \"$out\" | tail -1; exit 6; fi\n  sleep 0.02\ndone\n", int(timeout.Seconds()), write)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// authorizedKeys is the archive account's authorized_keys (apply's path).
func authorizedKeys(inv *inventory.Inventory) string {
	return path.Join(inv.Archive.Home, ".ssh", "authorized_keys")
}

// promotingRights are the archive rights of the host being promoted.
const promotingRights = templates.ArchiveRightsPrimary + ",get"

// grantArchive gives the new primary's key the given rights on an ssh
// archive, and every other key of the cluster the standbys' (a zombie old
// primary cannot write to the archive of the new timeline). Other
// transports need nothing.
func grantArchive(ctx context.Context, inv *inventory.Inventory, hosts Hosts, newPrimary, rights string, pr *Printer) error {
	if inv.Archive.Transport != inventory.TransportSSH || inv.ArchiveIsLocal(inventory.Host{Name: newPrimary}) {
		return nil
	}
	arch := inv.Archive.Host
	h, err := hosts.Get(ctx, arch)
	if err != nil {
		return fmt.Errorf("%w: %s cannot archive until its key may push (run pgwarm apply with the updated inventory)", err, newPrimary)
	}
	file := authorizedKeys(inv)
	old, err := h.ReadFile(ctx, file)
	if err != nil {
		return err
	}
	updated, changed, err := SwapArchiveGrants(string(old), inv.Cluster, newPrimary, rights)
	if err != nil {
		return &host.Error{Host: arch, Err: fmt.Errorf("%s: %w", file, err)}
	}
	if !changed {
		return nil
	}
	st, err := h.Stat(ctx, file)
	if err != nil {
		return err
	}
	if err := h.WriteFile(ctx, file, []byte(updated), st.Mode.Perm(), st.Owner+":"+st.Group); err != nil {
		return err
	}
	// sshd fixes a key's rights at login: connections opened under the old
	// lines would keep them.
	if err := apply.CloseArchiveSessions(ctx, h, inv.Archive.User); err != nil {
		return err
	}
	if rights == promotingRights {
		pr.Hostf(arch, "archive access: %s may add segments (and read them until its promotion is done), the old primary may only read (%s)", newPrimary, file)
	} else {
		pr.Hostf(arch, "archive access: %s may only add segments now that it is the primary (%s)", newPrimary, file)
	}
	pr.Hostf(arch, "archive access: closed %s's open ssh connections so every client logs in again under the new rights", inv.Archive.User)
	return nil
}

var allowRE = regexp.MustCompile(`--allow [a-z,]+`)

// SwapArchiveGrants rewrites the archive host's authorized_keys lines of a
// cluster so that newPrimary's key has the given rights and every other key
// of the cluster the standbys'; with templates.ArchiveRightsPrimary that is
// exactly what apply renders once the inventory names newPrimary as
// primary. Keys are told apart by the comment apply gives them
// ("postgres@HOST pgwarm CLUSTER"). Pure.
func SwapArchiveGrants(content, cluster, newPrimary, rights string) (string, bool, error) {
	lines := strings.Split(content, "\n")
	found := false
	changed := false
	for i, l := range lines {
		if !strings.Contains(l, "pgwarm-wal serve") || !allowRE.MatchString(l) {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 3 || f[len(f)-2] != "pgwarm" || f[len(f)-1] != cluster || !strings.HasPrefix(f[len(f)-3], "postgres@") {
			continue
		}
		owner := strings.TrimPrefix(f[len(f)-3], "postgres@")
		want := "--allow " + templates.ArchiveRightsStandby
		if owner == newPrimary {
			want, found = "--allow "+rights, true
		}
		n := allowRE.ReplaceAllString(l, want)
		if n != l {
			lines[i], changed = n, true
		}
	}
	if !found {
		return content, false, fmt.Errorf("no key of postgres@%s for cluster %s", newPrimary, cluster)
	}
	return strings.Join(lines, "\n"), changed, nil
}

// RoleChanges are the inventory edits after promoting newPrimary: it
// becomes primary, every other primary a standby. Pure.
func RoleChanges(inv *inventory.Inventory, newPrimary string) map[string]inventory.Role {
	ch := map[string]inventory.Role{}
	for _, h := range inv.Hosts {
		switch {
		case h.Name == newPrimary && h.Role != inventory.RolePrimary:
			ch[h.Name] = inventory.RolePrimary
		case h.Name != newPrimary && h.Role == inventory.RolePrimary:
			ch[h.Name] = inventory.RoleStandby
		}
	}
	return ch
}

// inventoryChange prints the role changes the inventory needs, or makes
// them in the file.
func inventoryChange(inv *inventory.Inventory, newPrimary string, update bool, pr *Printer) error {
	ch := RoleChanges(inv, newPrimary)
	if len(ch) == 0 {
		return nil
	}
	names := make([]string, 0, len(ch))
	for n := range ch {
		names = append(names, n)
	}
	slices.Sort(names)
	if update {
		if err := UpdateInventoryFile(inv.File, ch); err != nil {
			return err
		}
	}
	for _, n := range names {
		h, _ := inv.Host(n)
		if update {
			pr.Hostf(n, "role %s -> %s written to %s", h.Role, ch[n], inv.File)
		} else {
			pr.Hostf(n, "inventory change to make in %s: role %s -> %s (or rerun with --update-inventory)", inv.File, h.Role, ch[n])
		}
	}
	return nil
}
