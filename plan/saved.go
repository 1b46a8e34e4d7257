package plan

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

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

// CheckFresh refuses a saved plan when the inventory, pgwarm or any host
// changed since it was made. current holds facts gathered now with the
// same requests and r the files rendered now (secret files are compared
// with it on this machine, see Observe); every difference is reported,
// naming host and path.
func CheckFresh(saved Plan, inventorySHA256, version string, current map[string]facts.Facts, r templates.Rendered) error {
	var errs []error
	if saved.Inventory.SHA256 != inventorySHA256 {
		errs = append(errs, fmt.Errorf("inventory %s changed since the plan was made", saved.Inventory.Path))
	}
	if saved.PgwarmVersion != version {
		errs = append(errs, fmt.Errorf("the plan was made by pgwarm %s, this is %s", saved.PgwarmVersion, version))
	}
	for _, hp := range saved.Hosts {
		if _, ok := current[hp.Name]; !ok {
			errs = append(errs, fmt.Errorf("%s: no current facts", hp.Name))
			continue
		}
		now := ObserveHost(r, hp.Name, current)
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
