package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/plan"
	"github.com/pgwarm/pgwarm/templates"
)

// Desired is the whole content a managed file must have, given what is on
// the host now (existing, nil when absent) and the keys apply collected:
// keys maps templates.KeyPlaceholder/HostKeyPlaceholder (and, from facts,
// TimelinePlaceholder/NextTimelinePlaceholder and ClusterPlaceholder)
// strings to their values. Block files keep everything outside their
// block. Pure.
func Desired(f templates.File, existing []byte, keys map[string]string) ([]byte, error) {
	if f.SecretMissing {
		return nil, fmt.Errorf("%s: the environment variable %s is not set", f.Path, f.SecretEnv)
	}
	content := f.Content
	for _, need := range [][]string{f.NeedsKeys, f.NeedsHostKeys} {
		for _, h := range need {
			ph := templates.KeyPlaceholder(h)
			if !bytes.Contains(content, []byte(ph)) {
				ph = templates.HostKeyPlaceholder(h)
			}
			v, ok := keys[ph]
			if !ok || v == "" {
				return nil, fmt.Errorf("%s: no key for %s yet (%s)", f.Path, h, ph)
			}
			content = bytes.ReplaceAll(content, []byte(ph), []byte(v))
		}
	}
	for _, h := range f.NeedsTimelines {
		for _, ph := range []string{templates.TimelinePlaceholder(h), templates.NextTimelinePlaceholder(h)} {
			if !bytes.Contains(content, []byte(ph)) {
				continue
			}
			v, ok := keys[ph]
			if !ok || v == "" {
				return nil, fmt.Errorf("%s: the timeline of %s is not known (its data directory was not read), and the archive rights name it; run pgwarm apply again once %s answers", f.Path, h, h)
			}
			content = bytes.ReplaceAll(content, []byte(ph), []byte(v))
		}
	}
	for _, h := range f.NeedsClusters {
		ph := templates.ClusterPlaceholder(h)
		if !bytes.Contains(content, []byte(ph)) {
			continue
		}
		v, ok := keys[ph]
		if !ok || v == "" {
			return nil, fmt.Errorf("%s: the system identifier and WAL segment size of %s's cluster are not known (pg_controldata could not be read there), and restore_command names them; run pgwarm apply again once %s answers", f.Path, h, h)
		}
		content = bytes.ReplaceAll(content, []byte(ph), []byte(v))
	}
	if f.Block == "" {
		return content, nil
	}
	if err := templates.CheckBlock(existing, f.Block); err != nil {
		return nil, fmt.Errorf("%s: %w; fix the pgwarm markers by hand", f.Path, err)
	}
	return templates.MergeBlock(existing, f.Block, content), nil
}

// splitOwner turns "user:group" into its parts.
func splitOwner(owner string) (string, string) {
	u, g, ok := strings.Cut(owner, ":")
	if !ok {
		g = u
	}
	return u, g
}

// ensureFile makes path hold f's desired content, mode and owner, writing
// only when something differs. It reports whether it wrote.
func ensureFile(ctx context.Context, s *State, h host.Host, f templates.File) (bool, error) {
	existing, err := h.ReadFile(ctx, f.Path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	want, err := Desired(f, existing, s.keys())
	if err != nil {
		return false, fmt.Errorf("%s: %w", h.Name(), err)
	}
	same := exists && bytes.Equal(existing, want)
	if same {
		st, err := h.Stat(ctx, f.Path)
		if err != nil {
			return false, err
		}
		u, g := splitOwner(f.Owner)
		if st.Mode.Perm() == f.Mode.Perm() && (f.Owner == "" || (st.Owner == u && st.Group == g)) {
			return false, nil
		}
	}
	if err := s.checkObserved(h.Name(), f.Path, existing, exists); err != nil {
		return false, err
	}
	if err := mkdirParent(ctx, h, f.Path); err != nil {
		return false, err
	}
	if err := h.WriteFile(ctx, f.Path, want, f.Mode.Perm(), f.Owner); err != nil {
		return false, err
	}
	s.wrote(h.Name(), f.Path, want)
	action := "created"
	if exists {
		action = "updated"
	}
	switch {
	case f.Secret:
		s.Out.Hostf(h.Name(), "%s %s (secret, mode %04o)", action, f.Path, f.Mode.Perm())
	case plan.HasSecret(f.Kind, string(want)):
		// A digest of text with a password in it (one the operator put
		// outside pgwarm's block) would let the password be guessed.
		s.Out.Hostf(h.Name(), "%s %s (holds a password; no hash shown)", action, f.Path)
	default:
		s.Out.Hostf(h.Name(), "%s %s (sha256 %s)", action, f.Path, shortHash(want))
	}
	return true, nil
}

// checkObserved refuses to write path on host when what is there now
// (existing; exists false: nothing) is not what the plan observed: the host
// changed after the plan was made (or checked fresh), and the operator
// approved a change of what was there then. Secret files carry no digest
// in the plan (CheckFresh compares them at the start); a data directory
// replaced by a seed in this run holds the base backup's files.
func (s *State) checkObserved(hostName, p string, existing []byte, exists bool) error {
	s.mu.Lock()
	fp, ok := s.observed[hostName][p]
	seeded := s.seeded[hostName]
	s.mu.Unlock()
	if !ok || (seeded && strings.HasPrefix(p, s.Paths.DataDir+"/")) {
		return nil
	}
	was, _, _ := strings.Cut(fp, " ")
	now := "absent"
	switch {
	case fp == "absent", strings.HasPrefix(fp, "sha256:"):
		if exists {
			now = "sha256:" + plan.Hash(existing)
		}
	case strings.HasPrefix(fp, "sha256-masked:"):
		if exists {
			now = "sha256-masked:" + plan.Hash([]byte(plan.MaskSecrets("", string(existing))))
		}
	default:
		return nil
	}
	if now == was {
		return nil
	}
	return fmt.Errorf("%s: %s changed since the plan observed it (%s then, %s now); it was not written: run pgwarm plan again to see the change", hostName, p, shortFingerprint(was), shortFingerprint(now))
}

// wrote records that apply wrote content to path on host: a later write of
// the same path in this run compares with that.
func (s *State) wrote(hostName, p string, content []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.observed[hostName]; ok && !strings.HasPrefix(m[p], "secret") {
		if plan.HasSecret("", string(content)) {
			m[p] = "sha256-masked:" + plan.Hash([]byte(plan.MaskSecrets("", string(content))))
		} else {
			m[p] = "sha256:" + plan.Hash(content)
		}
	}
}

func shortFingerprint(fp string) string {
	kind, h, ok := strings.Cut(fp, ":")
	if ok && len(h) > 12 {
		return kind + ":" + h[:12]
	}
	return fp
}

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

// mkdirParent creates the parent directory of p when it is missing (root
// owned, like mkdir -p); managed directories get their own owner from
// their own entries, which come first in path order.
func mkdirParent(ctx context.Context, h host.Host, p string) error {
	_, err := host.CheckRun(ctx, h, host.Cmd{Command: "mkdir -p " + host.Quote(path.Dir(p))})
	return err
}

// ensureDir makes a directory with the file's mode and owner.
func ensureDir(ctx context.Context, s *State, h host.Host, f templates.File) (bool, error) {
	u, g := splitOwner(f.Owner)
	st, err := h.Stat(ctx, f.Path)
	if err == nil && st.IsDir && st.Mode.Perm() == f.Mode.Perm() && st.Owner == u && st.Group == g {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	cmd := fmt.Sprintf("mkdir -p %s && chown %s %s && chmod %04o %s",
		host.Quote(f.Path), host.Quote(u+":"+g), host.Quote(f.Path), f.Mode.Perm(), host.Quote(f.Path))
	if _, err := host.CheckRun(ctx, h, host.Cmd{Command: cmd}); err != nil {
		return false, err
	}
	s.Out.Hostf(h.Name(), "directory %s (mode %04o, %s)", f.Path, f.Mode.Perm(), u+":"+g)
	return true, nil
}

// Content is f as it must be written now: Desired with the placeholder
// values apply knows (for a whole file, not a block).
func (s *State) Content(f templates.File) ([]byte, error) {
	return Desired(f, nil, s.keys())
}

// keys returns the placeholder values collected so far.
func (s *State) keys() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]string{}
	for h, k := range s.pubKeys {
		m[templates.KeyPlaceholder(h)] = k
	}
	for h, k := range s.hostKeys {
		m[templates.HostKeyPlaceholder(h)] = k
	}
	for ph, v := range plan.FactValues(s.Facts) {
		m[ph] = v
	}
	return m
}

// filesFor returns host's rendered files that match keep, in path order
// (so a directory comes before what it holds).
func (s *State) filesFor(name string, keep func(templates.File) bool) []templates.File {
	var out []templates.File
	for _, f := range s.Rendered.ForHost(name, s.Facts[name].Systemd) {
		if keep(f) {
			out = append(out, f)
		}
	}
	return out
}

// ensureAll applies files in order; it reports whether any PostgreSQL
// configuration (settings, include, hba, recovery) changed.
func ensureAll(ctx context.Context, s *State, h host.Host, files []templates.File) (bool, error) {
	conf := false
	for _, f := range files {
		if !s.plannedPath(h.Name(), f.Path) {
			continue // the plan shows no change here: apply makes none
		}
		var wrote bool
		var err error
		switch {
		case f.Dir:
			wrote, err = ensureDir(ctx, s, h, f)
		case f.Source == templates.SourceHelper:
			wrote, err = ensureHelper(ctx, s, h, f)
		case f.Source == templates.SourceGenerate:
			continue // keys are generated by their own step
		default:
			wrote, err = ensureFile(ctx, s, h, f)
		}
		if err != nil {
			return conf, err
		}
		if wrote {
			switch f.Kind {
			case templates.KindSettings, templates.KindSettingsInclude, templates.KindHBA, templates.KindRecovery:
				conf = true
			}
		}
	}
	return conf, nil
}

// removeTwins deletes the scheduler twin a host does not use (the cron
// file on a systemd host, the units on one without), as the plan says.
func removeTwins(ctx context.Context, s *State, h host.Host) error {
	keep := map[string]bool{}
	for _, f := range s.Rendered.ForHost(h.Name(), s.Facts[h.Name()].Systemd) {
		keep[f.Path] = true
	}
	for _, f := range s.Rendered.Hosts[h.Name()] {
		if !keep[f.Path] && s.plannedPath(h.Name(), f.Path) {
			if err := removeFile(ctx, s, h, f.Path, "the job runs with the other scheduler here"); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeFile deletes path when it exists.
func removeFile(ctx context.Context, s *State, h host.Host, p, why string) error {
	res, err := host.CheckRun(ctx, h, host.Cmd{Command: fmt.Sprintf("if [ -e %[1]s ]; then rm -f %[1]s && echo removed; fi", host.Quote(p))})
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(res.Stdout)) == "removed" {
		s.Out.Hostf(h.Name(), "removed %s: %s", p, why)
	}
	return nil
}
