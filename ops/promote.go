package ops

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/apply"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
	"github.com/pgwarm/pgwarm/wal/segname"
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
	pm := &promoteRun{inv: inv, hosts: hosts, opts: opts, pr: pr, start: time.Now()}
	if err := apply.ExecuteOf(ctx, pm, pr, "pgwarm promote "+opts.Target, promoteSteps()); err != nil {
		return err
	}
	// What went wrong after the promotion is reported, not a step's
	// failure: the new primary is up and nothing can undo that.
	return errors.Join(pm.errs...)
}

// promoteSteps is promote's workflow, run by apply's executor. A failure
// before the promotion stops it (never a promotion next to a primary that
// was not fenced); after it, each remaining step still runs and says what
// is left to fix.
func promoteSteps() []apply.StepOf[*promoteRun] {
	return []apply.StepOf[*promoteRun]{pmCheck{}, pmFence{}, pmGrant{}, pmPromote{}, pmAfter{}}
}

// promoteRun is one promotion's state, filled in step by step; the phase
// times are measured from start.
type promoteRun struct {
	inv   *inventory.Inventory
	hosts Hosts
	opts  PromoteOptions
	pr    *Printer
	start time.Time

	r                         *Report
	plan                      PromotePlan
	observed, fenced, granted time.Duration
	next                      uint32 // the timeline the target's key may push while it promotes
	out                       string // the promote script's output
	newTLI                    uint32
	errs                      []error // after the promotion: reported at the end
}

type pmCheck struct{}

func (pmCheck) Title() string {
	return "check the roles: who is primary, who is promoted, who is fenced"
}

func (pmCheck) Run(ctx context.Context, pm *promoteRun) error {
	pm.r = ObserveRoles(ctx, pm.inv, pm.hosts)
	plan, err := PlanPromote(pm.r, pm.opts.Target)
	if err != nil {
		return err
	}
	pm.plan, pm.observed = plan, time.Since(pm.start)
	for _, name := range plan.Unfenceable {
		pm.pr.Hostf(name, "could not be fenced: unreachable (%s); it must not start again as a primary: rebuild it with `pgwarm rebuild %s` once it is back", pm.r.Row(name).Error, name)
	}
	return nil
}

type pmFence struct{}

func (pmFence) Title() string { return "fence the old primary (stop it, no automatic start)" }

func (pmFence) ShouldRun(pm *promoteRun) bool { return len(pm.plan.Fence) > 0 }

func (pmFence) Run(ctx context.Context, pm *promoteRun) error {
	for _, name := range pm.plan.Fence {
		if err := fence(ctx, pm.inv, pm.hosts, name, pm.pr); err != nil {
			// Promoting next to a primary we failed to stop is split brain.
			return fmt.Errorf("%w; not promoting %s while %s may still accept writes", err, pm.plan.Target, name)
		}
	}
	pm.fenced = time.Since(pm.start)
	return nil
}

type pmGrant struct{}

func (pmGrant) Title() string {
	return "archive access: the target may push the timeline it is about to create"
}

// Run: until it is out of recovery the target must still read the archive
// (the segments the fenced primary archived last, and the history files
// that decide its new timeline); right after, it pushes its new timeline.
// So it may do both until the promotion is done. Its key may push the
// timeline PostgreSQL will pick: one past the newest history file archived
// from the target's timeline up. A failure here is reported at the end:
// the promotion itself can go on.
func (pmGrant) Run(ctx context.Context, pm *promoteRun) error {
	if pm.fenced == 0 {
		pm.fenced = pm.observed
	}
	next := uint32(0)
	if t := pm.r.Row(pm.plan.Target); t != nil {
		next = t.Timeline
	}
	next, err := nextTimeline(ctx, pm.inv, pm.hosts, pm.plan.Target, next)
	if err != nil {
		pm.errs = append(pm.errs, err)
	} else if err := grantArchive(ctx, pm.inv, pm.hosts, pm.plan.Target, promotingRights(next), pm.pr); err != nil {
		pm.errs = append(pm.errs, err)
	}
	pm.next, pm.granted = next, time.Since(pm.start)
	return nil
}

type pmPromote struct{}

func (pmPromote) Title() string { return "promote the target and wait for its first write" }

func (pmPromote) Run(ctx context.Context, pm *promoteRun) error {
	target, opts := pm.plan.Target, pm.opts
	h, err := pm.hosts.Get(ctx, target)
	if err != nil {
		return err
	}
	res, err := h.Run(ctx, host.Cmd{Command: promoteScript(pm.inv, target, opts.WriteTimeout), Timeout: opts.WriteTimeout + 30*time.Second})
	if err != nil {
		return err
	}
	took := time.Since(pm.start)
	out := strings.TrimSpace(string(res.Stdout))
	pm.out = out
	if !res.OK() {
		return &host.Error{Host: target, Err: fmt.Errorf("promotion failed (exit %d): %s %s", res.ExitCode, lastLine(out), firstLine(res.Stderr))}
	}
	if from, to, ok := parseResumed(out); ok {
		pm.pr.Hostf(target, "replay was paused at %s: resumed it and replayed to %s before the promotion, so nothing archived is left out (to promote at the paused point instead, run pg_ctl promote on the host)", from, to)
	}
	f := strings.Split(lastLine(out), "|")
	tl := "?"
	if len(f) == 2 {
		if v, err := strconv.ParseUint(f[1], 16, 32); err == nil && v > 0 {
			pm.newTLI = uint32(v)
			tl = strconv.FormatUint(v, 10)
		}
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	phases := "promote and write " + ms(took-pm.granted).String()
	if req, wrote, ok := parsePhases(out); ok {
		// What the script did not measure is the ssh round trip around it.
		phases = fmt.Sprintf("request %s, promotion and first write %s, ssh %s", req, wrote, ms(took-pm.granted-req-wrote))
	}
	pm.pr.Hostf(target, "promoted: accepts writes on timeline %s, %s after the command started (first write in pgwarm.promotions acknowledged; observe %s, fence %s, archive access %s, %s)",
		tl, ms(took), ms(pm.observed), ms(pm.fenced-pm.observed), ms(pm.granted-pm.fenced), phases)
	return nil
}

type pmAfter struct{}

func (pmAfter) Title() string {
	return "after the promotion: archive rights of the new timeline, late fencing, the inventory"
}

func (pmAfter) Run(ctx context.Context, pm *promoteRun) error {
	inv, target := pm.inv, pm.plan.Target
	switch {
	case len(pm.errs) > 0:
	case pm.newTLI == 0:
		pm.errs = append(pm.errs, fmt.Errorf("%s: promoted, but its new timeline could not be read (%q); its archive key keeps %s until `pgwarm apply` with the updated inventory writes its timeline", target, lastLine(pm.out), promotingRights(pm.next)))
	default:
		pm.errs = append(pm.errs, grantArchive(ctx, inv, pm.hosts, target, templates.ArchiveRightsPrimary(strconv.FormatUint(uint64(pm.newTLI), 10)), pm.pr))
	}
	for _, name := range pm.plan.Unfenceable {
		pm.errs = append(pm.errs, lateFence(ctx, inv, name, pm.opts, pm.pr))
	}
	if strings.Contains(pm.out, "trigger removed") {
		pm.pr.Hostf(target, "removed the stale trigger file %s", inv.Replication.TriggerFile)
	}
	pm.errs = append(pm.errs, inventoryChange(inv, target, pm.opts.UpdateInventory, pm.pr))
	return nil
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

// promoteScript ends recovery on the standby and retries one write in the
// pgwarm schema until it is acknowledged; its last line is "<in
// recovery>|<timeline>" of that write. The promotion is only requested
// (pg_ctl promote -W, any version from 9.6): pg_ctl's own wait polls every
// 100 ms. Instead each write attempt first waits inside its session,
// checking every 5 ms, until the server is out of recovery, so the write
// lands within milliseconds of the promotion; a warm standby refuses
// connections until then, and the attempt is retried 20 ms later. A
// trigger file nothing deletes is removed.
func promoteScript(inv *inventory.Inventory, name string, timeout time.Duration) string {
	p := inv.Paths()
	promote := asPostgres(path.Join(p.BinDir, "pg_ctl"), "-D", p.DataDir, "promote", "-W")
	write := psqlMulti(inv,
		"DO $$BEGIN FOR i IN 1..400 LOOP EXIT WHEN NOT pg_is_in_recovery(); PERFORM pg_sleep(0.005); END LOOP; END$$",
		"CREATE SCHEMA IF NOT EXISTS pgwarm",
		"CREATE TABLE IF NOT EXISTS pgwarm.promotions (host text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
		walNames(inv.Postgres.Version, "INSERT INTO pgwarm.promotions (host) VALUES ('"+strings.ReplaceAll(name, "'", "''")+"') RETURNING pg_is_in_recovery(), substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"))
	// "phases" reports, in milliseconds on the host's clock, how long the
	// request took and then the wait for the write.
	s := "set -u\n" + resumeScript(inv) + "t0=$(date +%s%3N)\n" + promote + " >/dev/null || exit 5\nt1=$(date +%s%3N)\n"
	if t := inv.Replication.TriggerFile; t != "" {
		s += "if [ -e " + host.Quote(t) + " ]; then rm -f " + host.Quote(t) + " && echo 'trigger removed'; fi\n"
	}
	return s + fmt.Sprintf("end=$(( $(date +%%s) + %d ))\nwhile :; do\n  if out=$(%s 2>&1); then echo \"phases $((t1-t0)) $(( $(date +%%s%%3N)-t1 ))\"; echo \"$out\" | tail -1; exit 0; fi\n"+
		"  if [ $(date +%%s) -ge $end ]; then echo \"$out\" | tail -1; exit 6; fi\n  sleep 0.02\ndone\n", int(timeout.Seconds()), write)
}

// resumeScript resumes a standby whose replay is paused and waits until
// it has replayed what the archive holds: PostgreSQL promoted while
// paused ends recovery where it paused when the pause caught it waiting
// for WAL (after a restore that found nothing), without asking the
// archive again, so segments archived since (the old primary's last
// writes) would be lost. Replay has caught up once its position stands
// still for 2 s (restore lingers 1 s for a segment not archived yet),
// within 60 s. It prints "resumed FROM TO" when it did anything.
func resumeScript(inv *inventory.Inventory) string {
	v := inv.Postgres.Version
	q := func(sql string) string { return psqlMulti(inv, walNames(v, sql)) }
	return "if [ \"$(" + q("SELECT pg_is_in_recovery() AND pg_is_wal_replay_paused()") + " 2>/dev/null)\" = t ]; then\n" +
		"  from=$(" + q("SELECT pg_last_wal_replay_lsn()") + ")\n" +
		"  " + q("SELECT pg_wal_replay_resume()") + " >/dev/null || exit 5\n" +
		"  last=$from same=0 i=0\n" +
		"  while [ $i -lt 600 ] && [ $same -lt 20 ]; do\n" +
		"    sleep 0.1; i=$((i+1)); cur=$(" + q("SELECT pg_last_wal_replay_lsn()") + ")\n" +
		"    if [ \"$cur\" = \"$last\" ]; then same=$((same+1)); else same=0 last=$cur; fi\n" +
		"  done\n" +
		"  echo \"resumed $from $last\"\n" +
		"fi\n"
}

// parseResumed reads resumeScript's "resumed FROM TO" line.
func parseResumed(out string) (from, to string, ok bool) {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "resumed" {
			return f[1], f[2], true
		}
	}
	return "", "", false
}

// parsePhases reads promoteScript's "phases REQUEST_MS WRITE_MS" line.
func parsePhases(out string) (request, write time.Duration, ok bool) {
	for _, l := range strings.Split(out, "\n") {
		var a, b int64
		if n, _ := fmt.Sscanf(l, "phases %d %d", &a, &b); n == 2 && a >= 0 && b >= 0 {
			return time.Duration(a) * time.Millisecond, time.Duration(b) * time.Millisecond, true
		}
	}
	return 0, 0, false
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// promotingRights are the archive rights of the host being promoted to
// timeline next: it still reads, and it may push its new timeline.
func promotingRights(next uint32) string {
	return templates.ArchiveRightsPrimary(strconv.FormatUint(uint64(next), 10)) + ",get"
}

// NextTimeline is the timeline PostgreSQL gives a standby on timeline
// current when it is promoted, given the timelines whose history files
// are archived: one past the newest of an unbroken run of history files
// above current (findNewestTimeLine in timeline.c probes upward and stops
// at the first missing one). Pure.
func NextTimeline(current uint32, archived []uint32) uint32 {
	have := map[uint32]bool{}
	for _, t := range archived {
		have[t] = true
	}
	n := max(current, 1)
	for have[n+1] {
		n++
	}
	return n + 1
}

// nextTimeline lists the history files on the ssh archive host and
// returns NextTimeline from current; without keys to move (other
// transports, an archive local to target) it reads nothing.
func nextTimeline(ctx context.Context, inv *inventory.Inventory, hosts Hosts, target string, current uint32) (uint32, error) {
	if inv.Archive.Transport != inventory.TransportSSH || inv.ArchiveIsLocal(inventory.Host{Name: target}) {
		return NextTimeline(current, nil), nil // no rights to move
	}
	arch := inv.Archive.Host
	h, err := hosts.Get(ctx, arch)
	if err != nil {
		return 0, fmt.Errorf("%w: cannot read which timelines the archive holds, so the promoted host's key gets no push yet (run pgwarm apply with the updated inventory)", err)
	}
	dir := host.Quote(path.Join(inv.Archive.Path, "wal"))
	res, err := host.CheckRun(ctx, h, host.Cmd{Command: "for f in " + dir + "/*.history; do [ -f \"$f\" ] && echo \"${f##*/}\"; done; true", Timeout: 30 * time.Second})
	if err != nil {
		return 0, err
	}
	var tlis []uint32
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		if n, err := segname.Parse(strings.TrimSpace(l)); err == nil && n.Kind == segname.History {
			tlis = append(tlis, n.TLI)
		}
	}
	return NextTimeline(current, tlis), nil
}

// PromotionRights is the archive host's rights file once newPrimary has
// the given rights and every other key of the cluster a standby's (a
// zombie old primary cannot add segments beside the new timeline). Pure.
func PromotionRights(inv *inventory.Inventory, newPrimary, rights string) (string, error) {
	var grants []templates.ArchiveGrant
	found := false
	for _, c := range inv.ArchiveClients() {
		g := templates.ArchiveGrant{Host: c.Name, Rights: templates.ArchiveRightsStandby}
		if c.Name == newPrimary {
			g.Rights, found = rights, true
		}
		grants = append(grants, g)
	}
	if !found {
		return "", fmt.Errorf("%s has no key on the archive host (it reaches the archive locally or is not in the inventory)", newPrimary)
	}
	return templates.RenderArchiveRights(inv.Cluster, "", grants), nil
}

// rightsScript replaces the rights file with stdin in one round trip, and
// refuses when the file is missing: such an archive host was set up before
// rights were read per request, and its forced commands would ignore it.
// It also refuses when the archive host's pgwarm-wal predates push@T: that
// serve would read the new file as broken and allow no key anything.
func rightsScript(file, owner, helper string) string {
	q := host.Quote(file)
	return "set -e; p=" + q + "\n" +
		"[ -f \"$p\" ] || exit 3\n" +
		host.Quote(helper) + " serve --help 2>/dev/null | grep -q 'push@' || exit 4\n" +
		"t=$(mktemp \"$p.XXXXXX\"); trap 'rm -f -- \"$t\"' EXIT\n" +
		"cat > \"$t\"\n" +
		"if cmp -s \"$t\" \"$p\"; then echo unchanged; exit 0; fi\n" +
		"chown " + host.Quote(owner) + " \"$t\"; chmod 600 \"$t\"; sync -- \"$t\"\n" +
		"mv -fT -- \"$t\" \"$p\"; trap - EXIT\n"
}

// grantArchive gives the new primary's key the given rights on an ssh
// archive, and every other key of the cluster the standbys'. pgwarm-wal
// serve reads the rights file at every request, so this applies at once to
// connections that are already open: no session is closed, and the
// standby's lingering restore and shared connection carry on through the
// promotion. Other transports need nothing.
func grantArchive(ctx context.Context, inv *inventory.Inventory, hosts Hosts, newPrimary, rights string, pr *Printer) error {
	if inv.Archive.Transport != inventory.TransportSSH || inv.ArchiveIsLocal(inventory.Host{Name: newPrimary}) {
		return nil
	}
	arch := inv.Archive.Host
	content, err := PromotionRights(inv, newPrimary, rights)
	if err != nil {
		return err
	}
	h, err := hosts.Get(ctx, arch)
	if err != nil {
		return fmt.Errorf("%w: %s cannot archive until its key may push (run pgwarm apply with the updated inventory)", err, newPrimary)
	}
	file := templates.ArchiveRightsPath(inv)
	res, err := h.Run(ctx, host.Cmd{Command: rightsScript(file, templates.ArchiveOwner(inv), inventory.DefaultHelperPath), Stdin: []byte(content), Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	switch {
	case res.ExitCode == 3:
		return &host.Error{Host: arch, Err: fmt.Errorf("no rights file %s: this archive host was set up by an older pgwarm, whose forced commands fix each key's rights at login; run pgwarm apply, then give %s its rights with pgwarm apply on the updated inventory", file, newPrimary)}
	case res.ExitCode == 4:
		return &host.Error{Host: arch, Err: fmt.Errorf("its %s is older than the timeline-aware rights (push@T) this pgwarm writes; %s left as it was (run pgwarm apply to install the new helper, then give %s its rights with pgwarm apply on the updated inventory)", inventory.DefaultHelperPath, file, newPrimary)}
	case !res.OK():
		return &host.Error{Host: arch, Err: fmt.Errorf("rewriting %s (exit %d): %s", file, res.ExitCode, firstLine(res.Stderr))}
	case strings.TrimSpace(string(res.Stdout)) == "unchanged":
		return nil
	}
	if strings.HasSuffix(rights, ",get") {
		pr.Hostf(arch, "archive access: %s may add files of timeline %s (and read until its promotion is done), every other key may only read (%s, in force for open connections too)", newPrimary, pushTimeline(rights), file)
	} else {
		pr.Hostf(arch, "archive access: %s may only add files of its timeline %s now that it is the primary (%s)", newPrimary, pushTimeline(rights), file)
	}
	return nil
}

// pushTimeline is T of the push@T in rights.
func pushTimeline(rights string) string {
	for _, op := range strings.Split(rights, ",") {
		if t, ok := strings.CutPrefix(op, "push@"); ok {
			return t
		}
	}
	return "?"
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
