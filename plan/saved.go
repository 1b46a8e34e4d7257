package plan

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/templates"
)

// Observe is the fingerprint of a host that a saved plan depends on: one
// entry per managed path ("absent", "dir 0700 postgres:postgres",
// "sha256:<hex> 0644 root:root") and one for the data directory.
//
// No entry carries a digest derived from a secret: a sha256 of .pgpass
// would let anyone holding the plan test password guesses offline. secrets
// maps each secret file's path to the sha256 its rendered content would
// have ("" when it cannot be compared: a generated key, an unset password
// variable); the entry says only whether the host's file has that content,
// and the digests never leave memory. A file that holds a password pgwarm
// did not put there (a primary_conninfo with password=) is fingerprinted
// by the digest of its masked text instead.
func Observe(f facts.Facts, secrets map[string]string) map[string]string {
	m := map[string]string{}
	for p, fi := range f.Files {
		switch fi.Type {
		case facts.Missing:
			m[p] = "absent"
		case facts.Dir:
			m[p] = "dir " + modeOwner(fi.Mode, fi.Owner, fi.Group)
		case facts.Regular:
			mo := modeOwner(fi.Mode, fi.Owner, fi.Group)
			if want, secret := secrets[p]; secret {
				m[p] = "secret, " + secretState(fi, want) + " " + mo
			} else if fi.Content != nil && HasSecret("", *fi.Content) {
				m[p] = "sha256-masked:" + Hash([]byte(MaskSecrets("", *fi.Content))) + " " + mo
			} else {
				m[p] = "sha256:" + fi.SHA256 + " " + mo
			}
		default:
			m[p] = string(fi.Type)
		}
	}
	if dd := f.DataDir; dd != nil {
		m["data directory "+dd.Path] = fmt.Sprintf("%s version=%s system_id=%s timeline=%d running=%t in_recovery=%t",
			dd.State, dd.Version, dd.SystemID, max(dd.Timeline, dd.WALTimeline), dd.Running, dd.InRecovery)
	}
	return m
}

func secretState(fi facts.File, want string) string {
	switch {
	case want == "":
		return "content not compared"
	case subtle.ConstantTimeCompare([]byte(fi.SHA256), []byte(want)) == 1:
		return "content as the inventory renders it"
	}
	return "content differs from what the inventory renders"
}

// ObserveHost is Observe of host name with its secret files compared to
// what r renders for them.
func ObserveHost(r templates.Rendered, name string, all map[string]facts.Facts) map[string]string {
	return Observe(all[name], secretDigests(r, name, all))
}

// secretDigests maps each secret file rendered for host name to the
// sha256 of its desired content, or "" when that is not known now.
func secretDigests(r templates.Rendered, name string, all map[string]facts.Facts) map[string]string {
	out := map[string]string{}
	for _, rf := range r.Hosts[name] {
		if !rf.Secret {
			continue
		}
		content, unknown := Resolve(rf, all)
		if unknown || rf.SecretMissing || rf.Block != "" || rf.Source != "" {
			out[rf.Path] = ""
			continue
		}
		out[rf.Path] = Hash([]byte(content))
	}
	return out
}

// JSON is the plan as indented JSON with a final newline; --json prints
// it and --out saves it.
func (p Plan) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(p.masked(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Save writes the plan to file, readable by its owner only: it names every
// managed path and the hashes of files that hold no secret.
func Save(file string, p Plan) error {
	b, err := p.JSON()
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

// Load reads a plan saved by Save.
func Load(file string) (Plan, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return Plan{}, fmt.Errorf("%s: not a pgwarm plan: %w", file, err)
	}
	if p.FormatVersion != FormatVersion {
		return Plan{}, fmt.Errorf("%s: plan format %d, this pgwarm reads %d; make the plan again", file, p.FormatVersion, FormatVersion)
	}
	return p, nil
}

// ErrStale is wrapped by every CheckFresh failure.
var ErrStale = errors.New("the saved plan is stale; run pgwarm plan again")

// CheckFresh refuses a saved plan when anything it was made from changed
// since: the inventory, the templates_dir overrides, the helper binaries,
// pgwarm itself, or any host (now holds all of them as they are now, with
// facts gathered with the plan's requests and the files rendered now;
// secret files are compared with them on this machine, see Observe). Every
// difference is reported, naming host and path. Then the plan is made
// again from now (same limit) and must be the saved one, host for host and
// change for change: a plan edited by hand (a host or a change removed, a
// hash changed) is refused as well, since apply carries out the plan it
// was shown, on the plan's hosts only.
func CheckFresh(saved Plan, now Input) error {
	var errs []error
	if saved.Inventory.SHA256 != now.InventoryHash {
		errs = append(errs, fmt.Errorf("inventory %s changed since the plan was made", saved.Inventory.Path))
	}
	if saved.PgwarmVersion != now.Version {
		errs = append(errs, fmt.Errorf("the plan was made by pgwarm %s, this is %s", saved.PgwarmVersion, now.Version))
	}
	var was, is string
	if saved.TemplatesDir != nil {
		was = saved.TemplatesDir.SHA256
	}
	if now.Inventory != nil && now.Inventory.TemplatesDir != "" {
		is = now.TemplatesHash
	}
	if was != is {
		errs = append(errs, fmt.Errorf("the templates in templates_dir changed since the plan was made"))
	}
	for _, arch := range sortedKeys(saved.Helpers, now.Helpers) {
		if saved.Helpers[arch] != now.Helpers[arch] {
			errs = append(errs, fmt.Errorf("the pgwarm-wal binary for %s changed since the plan was made (was %s, now %s)", arch, orNone(short(saved.Helpers[arch])), orNone(short(now.Helpers[arch]))))
		}
	}
	for _, hp := range saved.Hosts {
		if _, ok := now.Facts[hp.Name]; !ok {
			errs = append(errs, fmt.Errorf("%s: no current facts", hp.Name))
			continue
		}
		current := ObserveHost(now.Rendered, hp.Name, now.Facts)
		for _, k := range sortedKeys(hp.Observed, current) {
			was, is := hp.Observed[k], current[k]
			if was != is {
				errs = append(errs, fmt.Errorf("%s: %s changed since the plan was made (was %s, now %s)", hp.Name, k, orNone(was), orNone(is)))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrStale, errors.Join(errs...))
	}
	now.Limit = saved.Limit
	again, err := Compute(now)
	if err != nil {
		return fmt.Errorf("%w: planning again now fails: %w", ErrStale, err)
	}
	if diffs := planDiffs(saved, again); len(diffs) > 0 {
		return fmt.Errorf("the saved plan is not the plan pgwarm makes from the same inventory and hosts (edited by hand?); make it again with pgwarm plan:\n%s", strings.Join(diffs, "\n"))
	}
	return nil
}

// planDiffs lists where saved differs from again (both as saved: masked
// JSON), host by host and change by change.
func planDiffs(saved, again Plan) []string {
	var out []string
	if !slices.Equal(saved.Limit, again.Limit) {
		out = append(out, fmt.Sprintf("limit: %q, planned now %q", saved.Limit, again.Limit))
	}
	hosts := func(p Plan) map[string]HostPlan {
		m := map[string]HostPlan{}
		for _, h := range p.masked().Hosts {
			m[h.Name] = h
		}
		return m
	}
	sh, ah := hosts(saved), hosts(again)
	for _, n := range sortedKeys(sh, ah) {
		s, inSaved := sh[n]
		a, inAgain := ah[n]
		switch {
		case !inSaved:
			out = append(out, n+": missing from the saved plan")
			continue
		case !inAgain:
			out = append(out, n+": in the saved plan, but not a host this plan covers")
			continue
		}
		for i := 0; i < max(len(s.Changes), len(a.Changes)); i++ {
			var sc, ac []byte
			if i < len(s.Changes) {
				sc, _ = json.Marshal(s.Changes[i])
			}
			if i < len(a.Changes) {
				ac, _ = json.Marshal(a.Changes[i])
			}
			if string(sc) != string(ac) {
				out = append(out, fmt.Sprintf("%s: change %d is %s in the saved plan, %s planned now", n, i+1, describe(s.Changes, i), describe(a.Changes, i)))
				break
			}
		}
	}
	return out
}

// describe names change i of cs for a message.
func describe(cs []Change, i int) string {
	if i >= len(cs) {
		return "absent"
	}
	c := cs[i]
	what := c.Path
	if c.Subject != "" {
		what = c.Subject
	}
	if c.AfterHash == "" {
		return fmt.Sprintf("%q (%s %s)", what, c.Action, c.Kind)
	}
	return fmt.Sprintf("%q (%s %s, after %s)", what, c.Action, c.Kind, short(c.AfterHash))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// sortedKeys is the sorted union of the maps' keys.
func sortedKeys[V any](ms ...map[string]V) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

func orNone(s string) string {
	if s == "" {
		return "not observed"
	}
	return s
}
