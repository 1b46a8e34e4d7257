// Package plan computes, as a plain value, every change that would bring
// the hosts from what facts observed to what the inventory renders, and
// prints it for people (unified diffs) and for programs (JSON).
//
// Compute is pure: the inventory, the rendered files and the facts go in,
// a Plan comes out. Reading facts is the facts package's job and changing
// hosts is apply's; this package does neither.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
)

// FormatVersion is the version of the saved plan's JSON layout. 2: no
// digest of a secret file (Observe), masked passwords, so a plan of
// version 1 (which has them) is refused. 3: the templates directory and
// the helper binaries it was made with are part of it.
const FormatVersion = 3

// Action is what a change does.
type Action string

const (
	Create Action = "+"
	Modify Action = "~"
	Remove Action = "-"
	Run    Action = "!" // a one-shot action: seed, restart, install, generate
)

// Masked replaces a secret's content in every output.
const Masked = "(sensitive value)"

// Plan is the whole preview. It is what --json prints and --out saves.
type Plan struct {
	FormatVersion int    `json:"format_version"`
	PgwarmVersion string `json:"pgwarm_version"`
	Inventory     Source `json:"inventory"`
	// TemplatesDir is the inventory's templates_dir (its files' digest,
	// templates.OverridesHash), when it has one: a changed override is a
	// changed plan.
	TemplatesDir *Source `json:"templates_dir,omitempty"`
	// Helpers maps an architecture to the sha256 of the pgwarm-wal binary
	// apply would install there.
	Helpers  map[string]string `json:"helpers,omitempty"`
	Limit    []string          `json:"limit,omitempty"`
	Hosts    []HostPlan        `json:"hosts"`
	Warnings []string          `json:"warnings,omitempty"`
}

// Source identifies the inventory a plan was made from.
type Source struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// HostPlan is one host's changes. Observed holds what facts saw on every
// path the plan depends on, so apply can refuse a plan the host has moved
// away from (see CheckFresh).
type HostPlan struct {
	Name     string            `json:"name"`
	Role     string            `json:"role"`
	Address  string            `json:"address"`
	Changes  []Change          `json:"changes"`
	Observed map[string]string `json:"observed"`
}

// Change is one file change or one-shot action.
type Change struct {
	Action  Action `json:"action"`
	Path    string `json:"path,omitempty"`    // the file, for + ~ - (and the key/binary for some !)
	Subject string `json:"subject,omitempty"` // what a ! does: "seed standby from a base backup of pg1"
	Kind    string `json:"kind"`              // templates.Kind*, or "action"
	// Before and After are the whole content (for Block files the whole
	// file, merged), Masked for secrets, empty for directories and binaries,
	// with any password in them masked (MaskSecrets). The hashes are those
	// of the content; they are left out for secrets and for content that
	// holds a password.
	Before     string `json:"before,omitempty"`
	After      string `json:"after,omitempty"`
	BeforeHash string `json:"before_sha256,omitempty"`
	AfterHash  string `json:"after_sha256,omitempty"`
	BeforeMode string `json:"before_mode,omitempty"` // "0644 root:root"
	AfterMode  string `json:"after_mode,omitempty"`
	// AfterUnknown: part of the content is known only during apply (a key
	// apply generates, a secret whose variable is unset).
	AfterUnknown bool   `json:"after_unknown,omitempty"`
	Sensitive    bool   `json:"sensitive,omitempty"`
	Binary       bool   `json:"binary,omitempty"`
	Reason       string `json:"reason,omitempty"`  // for display only
	Restart      bool   `json:"restart,omitempty"` // this change needs PostgreSQL restarted
	Reload       bool   `json:"reload,omitempty"`  // this change needs PostgreSQL reloaded
}

// KindAction is the Kind of one-shot actions.
const KindAction = "action"

// Input is everything Compute needs.
type Input struct {
	Inventory     *inventory.Inventory
	InventoryPath string
	InventoryHash string // sha256 of the inventory file's bytes
	TemplatesHash string // TreeHash of the inventory's templates_dir ("" without one)
	Rendered      templates.Rendered
	Facts         map[string]facts.Facts // by host name
	// Helpers maps an architecture (facts.Facts.Arch) to the sha256 of the
	// pgwarm-wal binary apply would upload there.
	Helpers map[string]string
	Version string   // pgwarm's version, saved with the plan
	Limit   []string // host names; empty means all
}

// Counts is the summary line's numbers.
type Counts struct{ Add, Change, Destroy, Actions int }

// Count tallies p's changes by action.
func (p Plan) Count() Counts {
	var c Counts
	for _, h := range p.Hosts {
		for _, ch := range h.Changes {
			switch ch.Action {
			case Create:
				c.Add++
			case Modify:
				c.Change++
			case Remove:
				c.Destroy++
			case Run:
				c.Actions++
			}
		}
	}
	return c
}

// Empty reports whether nothing would change.
func (p Plan) Empty() bool { return p.Count() == Counts{} }

// Hash is the lower-case hex sha256 of b.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Selected returns the inventory hosts a plan covers, in inventory order;
// an unknown name in limit is an error.
func Selected(inv *inventory.Inventory, limit []string) ([]inventory.Host, error) {
	if len(limit) == 0 {
		return inv.Hosts, nil
	}
	var errs []error
	for _, n := range limit {
		if _, ok := inv.Host(n); !ok {
			errs = append(errs, fmt.Errorf("--limit: no host %q in %s", n, inv.File))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []inventory.Host
	for _, h := range inv.Hosts {
		if slices.Contains(limit, h.Name) {
			out = append(out, h)
		}
	}
	return out, nil
}

// Probed returns the hosts whose facts a plan of the selected hosts needs:
// the selected ones plus the primary (standbys are compared with it), the
// archive host (its host key and filesystem) and, when the archive host is
// selected, every PostgreSQL host (their keys), in inventory order.
func Probed(inv *inventory.Inventory, limit []string) ([]inventory.Host, error) {
	sel, err := Selected(inv, limit)
	if err != nil {
		return nil, err
	}
	// The archive host's authorized_keys holds every PostgreSQL host's
	// key: a plan of it reads them all.
	archiveSelected := slices.ContainsFunc(sel, func(s inventory.Host) bool { return s.Name == inv.Archive.Host })
	var out []inventory.Host
	for _, h := range inv.Hosts {
		if slices.ContainsFunc(sel, func(s inventory.Host) bool { return s.Name == h.Name }) ||
			h.Role == inventory.RolePrimary || h.Name == inv.Archive.Host ||
			(archiveSelected && h.IsPostgres() && inv.Archive.Transport == inventory.TransportSSH) {
			out = append(out, h)
		}
	}
	return out, nil
}

// Requests says what facts to read on each probed host: every path the
// rendered files name (both scheduler twins, so a stale one can be
// removed), the public halves of generated keys, the data directory, and
// on the archive host its filesystem and host keys.
func Requests(inv *inventory.Inventory, r templates.Rendered, limit []string) (map[string]facts.Request, error) {
	hosts, err := Probed(inv, limit)
	if err != nil {
		return nil, err
	}
	p := inv.Paths()
	out := map[string]facts.Request{}
	for _, h := range hosts {
		req := facts.Request{}
		if h.IsPostgres() {
			req.DataDir, req.BinDir, req.Service, req.Port = p.DataDir, p.BinDir, p.Service, inv.Postgres.Port
			if h.Role == inventory.RolePrimary {
				req.Role = inv.Replication.User
			}
		}
		if h.Name == inv.Archive.Host {
			req.ArchivePath = inv.Archive.Path
			req.HostKeys = true
			req.ArchiveUser = inv.Archive.User
		}
		seen := map[string]bool{}
		add := func(path string, content bool) {
			if !seen[path] {
				seen[path] = true
				req.Paths = append(req.Paths, facts.PathRequest{Path: path, Content: content})
			}
		}
		for _, f := range r.Hosts[h.Name] {
			switch {
			case f.Source == templates.SourceGenerate:
				add(f.Path, false)
				add(f.Path+".pub", true)
			case f.Dir, f.Source != "", f.Secret:
				add(f.Path, false)
			default:
				add(f.Path, true)
			}
		}
		if h.IsPostgres() {
			// What decides restart versus reload: the main config around
			// the include block, even when its block is already in place.
			add(p.MainConfig, true)
			add(p.SettingsFile, true)
			if h.Role == inventory.RoleStandby && inv.Replication.TriggerFile != "" {
				add(inv.Replication.TriggerFile, false)
			}
			if h.Role == inventory.RoleStandby {
				add(SeedMarker(inv), false) // a seed that did not finish
			}
		}
		sort.Slice(req.Paths, func(i, j int) bool { return req.Paths[i].Path < req.Paths[j].Path })
		out[h.Name] = req
	}
	return out, nil
}

// Compute returns the plan, or every preflight problem at once (each
// naming its host) when a change would be unsafe or impossible.
func Compute(in Input) (Plan, error) {
	sel, err := Selected(in.Inventory, in.Limit)
	if err != nil {
		return Plan{}, err
	}
	if err := Preflight(in); err != nil {
		return Plan{}, err
	}
	p := Plan{
		FormatVersion: FormatVersion,
		PgwarmVersion: in.Version,
		Inventory:     Source{Path: in.InventoryPath, SHA256: in.InventoryHash},
		Helpers:       in.Helpers,
		Limit:         in.Limit,
		Warnings:      in.Rendered.Warnings,
	}
	if in.Inventory.TemplatesDir != "" {
		p.TemplatesDir = &Source{Path: in.Inventory.TemplatesDir, SHA256: in.TemplatesHash}
	}
	// Every probed host is planned: a limited plan must know whether the
	// hosts its own hosts depend on are ready (limitNeeds).
	probed, err := Probed(in.Inventory, in.Limit)
	if err != nil {
		return Plan{}, err
	}
	var errs []error
	all := map[string]HostPlan{}
	for _, h := range probed {
		hp, err := hostPlan(in, h)
		if err != nil {
			if slices.ContainsFunc(sel, func(s inventory.Host) bool { return s.Name == h.Name }) {
				errs = append(errs, err)
			}
			continue
		}
		all[h.Name] = hp
	}
	if err := errors.Join(errs...); err != nil {
		return Plan{}, err
	}
	for _, h := range sel {
		p.Hosts = append(p.Hosts, all[h.Name])
	}
	if len(in.Limit) > 0 {
		if err := limitNeeds(in, sel, all); err != nil {
			return Plan{}, err
		}
	}
	return p, nil
}

// limitNeeds refuses a limited plan whose hosts' changes cannot be made
// without a host it leaves out: a seed needs the primary (its pg_hba, its
// replication role, its archiving) and the archive host ready; a new key
// must reach the archive host's authorized_keys; the archive host's
// authorized_keys needs every key, and a key not generated yet is made by
// its own host. One line per need, naming both hosts.
func limitNeeds(in Input, sel []inventory.Host, all map[string]HostPlan) error {
	inv := in.Inventory
	chosen := map[string]bool{}
	for _, h := range sel {
		chosen[h.Name] = true
	}
	pending := func(name string) []string {
		var what []string
		for _, c := range all[name].Changes {
			if c.Path != "" && c.Action != Run {
				what = append(what, string(c.Action)+" "+c.Path)
			} else {
				what = append(what, "! "+c.Subject)
			}
		}
		return what
	}
	var errs []error
	need := func(h inventory.Host, dep, why string) {
		if chosen[dep] {
			return
		}
		if p := pending(dep); len(p) > 0 {
			if len(p) > 3 {
				p = append(p[:3], fmt.Sprintf("%d more", len(p)-3))
			}
			errs = append(errs, fmt.Errorf("%s: %s, and %s has changes this plan leaves out (%s); plan with --limit %s,%s, or apply %s first",
				h.Name, why, dep, strings.Join(p, "; "), strings.Join(in.Limit, ","), dep, dep))
		}
	}
	prim, arch := inv.Primary().Name, inv.Archive.Host
	for _, h := range sel {
		for _, c := range all[h.Name].Changes {
			switch {
			case c.Action == Run && strings.HasPrefix(c.Subject, "seed "):
				need(h, prim, "its seed is a base backup of "+prim+" (its pg_hba, replication role and archiving must be in place)")
				need(h, arch, "its seed needs the archive on "+arch+" to accept and serve WAL")
			case c.Action == Run && strings.HasPrefix(c.Subject, "generate SSH key") && inv.Archive.Transport == inventory.TransportSSH:
				need(h, arch, "its new key must be authorized on the archive host "+arch)
			}
		}
		seen := map[string]bool{}
		for _, rf := range in.Rendered.Hosts[h.Name] {
			for _, k := range rf.NeedsKeys {
				if !chosen[k] && !seen[k] && publicKey(in.Facts[k]) == "" {
					seen[k] = true
					errs = append(errs, fmt.Errorf("%s: %s needs the key of %s, which %s has not generated yet and this plan leaves out; plan with --limit %s,%s",
						h.Name, rf.Path, k, k, strings.Join(in.Limit, ","), k))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// hostPlan compares one host's rendered files with its facts and adds the
// one-shot actions the differences call for.
func hostPlan(in Input, h inventory.Host) (HostPlan, error) {
	inv := in.Inventory
	f := in.Facts[h.Name]
	hp := HostPlan{Name: h.Name, Role: string(h.Role), Address: h.Address, Changes: []Change{}, Observed: ObserveHost(in.Rendered, h.Name, in.Facts)}
	seed := h.Role == inventory.RoleStandby && seedReason(inv, in.Facts, h) != ""
	keep := templates.Rendered{Hosts: in.Rendered.Hosts}.ForHost(h.Name, f.Systemd)

	var files, actions []Change
	var errs []error
	for _, rf := range keep {
		ch, err := fileChange(in, h, f, rf)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", h.Name, rf.Path, err))
			continue
		}
		if ch == nil {
			continue
		}
		if ch.Action == Run {
			actions = append(actions, *ch)
		} else {
			files = append(files, *ch)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return HostPlan{}, err
	}
	files = append(files, removals(in, h, f, keep)...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })

	if h.IsPostgres() {
		actions = append(actions, postgresActions(in, h, f, seed, files)...)
	}
	sort.SliceStable(actions, func(i, j int) bool { return actionRank(actions[i]) < actionRank(actions[j]) })
	hp.Changes = append(files, actions...)
	// Masked last: the restart decision above reads the real settings.
	for i := range hp.Changes {
		if c := &hp.Changes[i]; !c.Sensitive {
			c.Before, c.After = MaskSecrets(c.Kind, c.Before), MaskSecrets(c.Kind, c.After)
		}
	}
	return hp, nil
}

// actionRank orders one-shot actions as apply would run them.
func actionRank(c Change) int {
	for i, prefix := range []string{"install pgwarm-wal", "generate", "create replication role", "seed", "start", "restart", "reload"} {
		if strings.HasPrefix(c.Subject, prefix) {
			return i
		}
	}
	return 100
}

func modeOwner(mode, owner, group string) string {
	if mode == "" {
		return ""
	}
	return mode + " " + owner + ":" + group
}

func wantMode(rf templates.File) string {
	return fmt.Sprintf("%04o %s", rf.Mode.Perm(), rf.Owner)
}

// fileChange compares one rendered file with the host; nil means equal.
func fileChange(in Input, h inventory.Host, f facts.Facts, rf templates.File) (*Change, error) {
	cur, ok := f.Files[rf.Path]
	if !ok {
		return nil, fmt.Errorf("no facts for this path")
	}
	if cur.Unreadable {
		return nil, fmt.Errorf("exists but cannot be read (does the SSH user become root?)")
	}
	if cur.Type == facts.Other {
		return nil, fmt.Errorf("exists and is neither a file nor a directory; pgwarm will not replace it")
	}
	if cur.Exists() && (cur.Type == facts.Dir) != rf.Dir {
		return nil, fmt.Errorf("exists as a %s, rendered as a %s; move it away first", cur.Type, map[bool]string{true: "directory", false: "file"}[rf.Dir])
	}
	have := modeOwner(cur.Mode, cur.Owner, cur.Group)
	want := wantMode(rf)
	ch := &Change{Path: rf.Path, Kind: rf.Kind, Reason: rf.Reason, BeforeMode: have, AfterMode: want, Sensitive: rf.Secret}

	switch {
	case rf.Dir:
		if !cur.Exists() {
			ch.Action = Create
			return ch, nil
		}
		if have != want {
			ch.Action = Modify
			return ch, nil
		}
		return nil, nil

	case rf.Source == templates.SourceGenerate:
		if cur.Exists() {
			return nil, nil
		}
		return &Change{Action: Run, Path: rf.Path, Kind: rf.Kind, Subject: "generate SSH key for postgres (" + rf.Path + ")",
			Reason: rf.Reason, Sensitive: true, AfterMode: want}, nil

	case rf.Source == templates.SourceHelper:
		want := in.Helpers[f.Arch]
		ch := &Change{Action: Run, Path: rf.Path, Kind: rf.Kind, Binary: true, BeforeHash: cur.SHA256, AfterHash: want,
			BeforeMode: have, AfterMode: wantMode(rf), Reason: rf.Reason}
		switch {
		case want == "":
			ch.AfterUnknown = true
			ch.Subject = "install pgwarm-wal"
			ch.Reason = fmt.Sprintf("no pgwarm-wal binary for %s was found next to pgwarm: build one (make build) before apply", archOrUnknown(f.Arch))
		case !cur.Exists():
			ch.Subject = "install pgwarm-wal"
		case cur.SHA256 != want:
			ch.Subject = "install pgwarm-wal (replace a different build)"
		case have != ch.AfterMode:
			ch.Subject = "install pgwarm-wal (fix mode and owner)"
		default:
			return nil, nil
		}
		return ch, nil
	}

	// A regular file with rendered content.
	content, unknown := Resolve(rf, in.Facts)
	after := content
	var before string
	if cur.Exists() && !rf.Secret {
		if cur.Content == nil {
			return nil, fmt.Errorf("larger than %d bytes; pgwarm will not manage it", facts.MaxContent)
		}
		before = *cur.Content
	}
	if rf.Block != "" {
		if err := templates.CheckBlock([]byte(before), rf.Block); err != nil {
			return nil, fmt.Errorf("managed block %q is damaged (%v); fix the markers by hand", rf.Block, err)
		}
		after = string(templates.MergeBlock([]byte(before), rf.Block, []byte(content)))
	}
	afterHash := Hash([]byte(after))
	unknown = unknown || rf.SecretMissing
	switch {
	case !cur.Exists():
		ch.Action = Create
		ch.BeforeMode = ""
	case unknown && rf.Secret:
		// A secret we cannot render cannot be compared: say so.
		ch.Action = Modify
	case !unknown && cur.SHA256 == afterHash && have == want:
		return nil, nil
	case unknown && sameOutsidePlaceholders(before, after):
		// Keys are generated on apply; what is there already matches
		// everything we can know now.
		if have == want {
			return nil, nil
		}
		ch.Action = Modify
	default:
		ch.Action = Modify
	}
	ch.AfterUnknown = unknown
	// A digest of a secret (or of a file holding a password) would let a
	// password be guessed offline against it: none is carried.
	if !rf.Secret {
		if !HasSecret(rf.Kind, before) {
			ch.BeforeHash = cur.SHA256
		}
		if !unknown && !HasSecret(rf.Kind, after) {
			ch.AfterHash = afterHash
		}
	}
	if rf.Secret {
		if cur.Exists() {
			ch.Before = Masked
		}
		ch.After = Masked
	} else {
		ch.Before, ch.After = before, after
	}
	return ch, nil
}

// shownHash is the host file's sha256 for the plan, or "" when it is a
// secret's or the file holds a password.
func shownHash(rf templates.File, cur facts.File) string {
	if rf.Secret || (cur.Content != nil && HasSecret(rf.Kind, *cur.Content)) {
		return ""
	}
	return cur.SHA256
}

func archOrUnknown(a string) string {
	if a == "" {
		return "an unknown architecture"
	}
	return a
}

// Resolve returns rf's content with the placeholders filled from facts:
// {{key:HOST}} with the public half of HOST's generated key, {{hostkey:HOST}}
// with HOST's SSH host key, {{timeline:HOST}} and {{nexttimeline:HOST}}
// with HOST's current timeline and the one after, {{cluster:HOST}} with
// the restore flags naming HOST's cluster. unknown reports a placeholder that facts could
// not fill (the key does not exist yet); it is left in place. apply fills
// the same placeholders the same way once the keys exist.
func Resolve(rf templates.File, all map[string]facts.Facts) (content string, unknown bool) {
	content = string(rf.Content)
	for _, n := range rf.NeedsKeys {
		ph := templates.KeyPlaceholder(n)
		if k := publicKey(all[n]); k != "" {
			content = strings.ReplaceAll(content, ph, k)
		} else if strings.Contains(content, ph) {
			unknown = true
		}
	}
	for _, n := range rf.NeedsHostKeys {
		ph := templates.HostKeyPlaceholder(n)
		if hk := all[n].HostKeys; len(hk) > 0 {
			content = strings.ReplaceAll(content, ph, hk[0])
		} else if strings.Contains(content, ph) {
			unknown = true
		}
	}
	// Timelines and clusters: the values plan and apply take from facts.
	vals := FactValues(all)
	for _, n := range rf.NeedsTimelines {
		for _, ph := range []string{templates.TimelinePlaceholder(n), templates.NextTimelinePlaceholder(n)} {
			content, unknown = fill(content, ph, vals, unknown)
		}
	}
	for _, n := range rf.NeedsClusters {
		content, unknown = fill(content, templates.ClusterPlaceholder(n), vals, unknown)
	}
	return content, unknown
}

// fill replaces ph in content with its value in vals; unknown becomes
// true when ph is there without a value.
func fill(content, ph string, vals map[string]string, unknown bool) (string, bool) {
	if v, ok := vals[ph]; ok {
		return strings.ReplaceAll(content, ph, v), unknown
	}
	return content, unknown || strings.Contains(content, ph)
}

// FactValues maps every placeholder whose value comes from facts (each
// host's timeline placeholders and cluster placeholder) to its value; a
// placeholder facts cannot fill is absent. plan (Resolve) and apply fill
// from the same map.
func FactValues(all map[string]facts.Facts) map[string]string {
	m := map[string]string{}
	for h, f := range all {
		for ph, v := range templates.TimelineValues(h, f.DataDir.CurrentTimeline()) {
			m[ph] = v
		}
		if dd := f.DataDir; dd != nil {
			for ph, v := range templates.ClusterValues(h, dd.SystemID, dd.WALSegSize) {
				m[ph] = v
			}
		}
	}
	return m
}

// PublicKey is the ".pub" next to the host's generated key, trimmed; ""
// when the host has none (or was not probed).
func PublicKey(f facts.Facts) string { return publicKey(f) }

// publicKey is the ".pub" next to the host's generated key, trimmed.
func publicKey(f facts.Facts) string {
	for p, fi := range f.Files {
		if strings.HasSuffix(p, ".pub") && fi.Content != nil {
			if _, isKey := f.Files[strings.TrimSuffix(p, ".pub")]; isKey {
				return strings.TrimSpace(*fi.Content)
			}
		}
	}
	return ""
}

// sameOutsidePlaceholders reports whether before matches after where after
// has no unfilled placeholder lines.
func sameOutsidePlaceholders(before, after string) bool {
	bl, al := strings.Split(before, "\n"), strings.Split(after, "\n")
	if len(bl) != len(al) {
		return false
	}
	for i := range al {
		if strings.Contains(al[i], "{{key:") || strings.Contains(al[i], "{{hostkey:") || strings.Contains(al[i], "{{secret:") ||
			strings.Contains(al[i], "{{timeline:") || strings.Contains(al[i], "{{nexttimeline:") || strings.Contains(al[i], "{{cluster:") {
			continue
		}
		if al[i] != bl[i] {
			return false
		}
	}
	return true
}

// removals are files that must go: the scheduler twin this host does not
// use, a leftover trigger file on a standby (it would end recovery at once)
// and a recovery.conf that PostgreSQL 12+ refuses to start with.
func removals(in Input, h inventory.Host, f facts.Facts, keep []templates.File) []Change {
	var out []Change
	for _, rf := range in.Rendered.Hosts[h.Name] {
		if slices.ContainsFunc(keep, func(k templates.File) bool { return k.Path == rf.Path }) {
			continue
		}
		if cur := f.Files[rf.Path]; cur.Exists() {
			other := "systemd"
			if rf.Kind == templates.KindSystemd {
				other = "cron"
			}
			out = append(out, Change{Action: Remove, Path: rf.Path, Kind: rf.Kind, BeforeHash: shownHash(rf, cur),
				BeforeMode: modeOwner(cur.Mode, cur.Owner, cur.Group), Reason: "this host runs the job with " + other + " instead"})
		}
	}
	inv := in.Inventory
	if h.Role != inventory.RoleStandby || seedReason(inv, in.Facts, h) != "" {
		return out // a seed replaces the data directory anyway
	}
	if t := inv.Replication.TriggerFile; t != "" && !inv.Postgres.Version.AtLeast(16) {
		if cur := f.Files[t]; cur.Exists() {
			out = append(out, Change{Action: Remove, Path: t, Kind: "trigger", BeforeHash: cur.SHA256,
				Reason: "a leftover trigger file would end recovery as soon as the standby starts"})
		}
	}
	if inv.Postgres.Version.AtLeast(12) && f.DataDir != nil && slices.Contains(f.DataDir.Signals, "recovery.conf") {
		out = append(out, Change{Action: Remove, Path: path.Join(f.DataDir.Path, "recovery.conf"), Kind: templates.KindRecovery,
			Reason: "PostgreSQL 12 and later refuse to start while recovery.conf exists"})
	}
	return out
}
