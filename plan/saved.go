package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/pgwarm/pgwarm/facts"
)

// Observe is the fingerprint of a host that a saved plan depends on: one
// entry per managed path ("absent", "dir 0700 postgres:postgres",
// "sha256:<hex> 0644 root:root") and one for the data directory.
func Observe(f facts.Facts) map[string]string {
	m := map[string]string{}
	for p, fi := range f.Files {
		switch fi.Type {
		case facts.Missing:
			m[p] = "absent"
		case facts.Dir:
			m[p] = "dir " + modeOwner(fi.Mode, fi.Owner, fi.Group)
		case facts.Regular:
			m[p] = "sha256:" + fi.SHA256 + " " + modeOwner(fi.Mode, fi.Owner, fi.Group)
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

// JSON is the plan as indented JSON with a final newline; --json prints
// it and --out saves it.
func (p Plan) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Save writes the plan to file, readable by its owner only: it names every
// managed path and hash of the hosts.
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

// CheckFresh refuses a saved plan when the inventory, pgwarm or any host
// changed since it was made. current holds facts gathered now with the
// same requests; every difference is reported, naming host and path.
func CheckFresh(saved Plan, inventorySHA256, version string, current map[string]facts.Facts) error {
	var errs []error
	if saved.Inventory.SHA256 != inventorySHA256 {
		errs = append(errs, fmt.Errorf("inventory %s changed since the plan was made", saved.Inventory.Path))
	}
	if saved.PgwarmVersion != version {
		errs = append(errs, fmt.Errorf("the plan was made by pgwarm %s, this is %s", saved.PgwarmVersion, version))
	}
	for _, hp := range saved.Hosts {
		f, ok := current[hp.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no current facts", hp.Name))
			continue
		}
		now := Observe(f)
		keys := make([]string, 0, len(hp.Observed))
		for k := range hp.Observed {
			keys = append(keys, k)
		}
		for k := range now {
			if _, ok := hp.Observed[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			was, is := hp.Observed[k], now[k]
			if was != is {
				errs = append(errs, fmt.Errorf("%s: %s changed since the plan was made (was %s, now %s)", hp.Name, k, orNone(was), orNone(is)))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w:\n%w", ErrStale, errors.Join(errs...))
}

func orNone(s string) string {
	if s == "" {
		return "not observed"
	}
	return s
}
