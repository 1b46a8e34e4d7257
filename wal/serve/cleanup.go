package serve

import (
	"context"
	"encoding/json"
	"os"

	"github.com/pgwarm/pgwarm/wal/archive"
)

// cleanup runs a standby's archive_cleanup_command. Whose restart point it
// reports is the key's name (--as), never the request's: a standby's key
// records only its own restart point, so it cannot make cleanup delete
// below another standby's. Which standbys must have reported comes from
// the rights file (every key with the cleanup right), plus any the client
// names (--standbys, e.g. a standby on the archive host itself, which
// needs no key); keys whose line lacks the cleanup right (the primary) are
// not standbys, and a record left from when they were is not counted.
func cleanup(ctx context.Context, cfg Config, req archive.Request, store *archive.Local) ([]byte, error) {
	opt := archive.CleanupOptions{DryRun: req.DryRun, Streaming: req.Streaming, Standbys: req.Standbys}
	switch {
	case cfg.RightsFile == "" && req.As != "":
		// --allow names no host: any standby could claim any name.
		return nil, archive.Errorf(archive.KindDenied, "cleanup --as %s: this key's forced command uses serve --allow, which does not say whose key it is, so the archive cannot keep %s's restart point apart from the other standbys'; use serve --rights FILE --as %s (pgwarm apply renders it)", req.As, req.As, req.As)
	case cfg.RightsFile != "":
		if err := archive.ValidStandbyName(cfg.As); err != nil {
			return nil, archive.Errorf(archive.KindDenied, "serve --as %q cannot name a standby's restart point: %v", cfg.As, err)
		}
		if req.As != "" && req.As != cfg.As {
			return nil, archive.Errorf(archive.KindDenied, "cleanup --as %s over %s's ssh key: a key reports only its own host's restart point; fix --as in %s's archive_cleanup_command", req.As, cfg.As, req.As)
		}
		opt.As = cfg.As
		all, err := cfg.rightsFile()
		if err != nil {
			return nil, err
		}
		standbys, retired := cleanupKeys(all)
		opt.Standbys = append(opt.Standbys, standbys...)
		opt.Retired = retired
	}
	res, err := store.Cleanup(ctx, req.Name, opt)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// cleanupKeys splits the rights file's names into standbys (the cleanup
// right) and the others. Pure.
func cleanupKeys(all map[string]Rights) (standbys, others []string) {
	for name, r := range all {
		if archive.ValidStandbyName(name) != nil {
			continue // cannot be anyone's record; and never waited for
		}
		if r.Allows("cleanup") {
			standbys = append(standbys, name)
		} else {
			others = append(others, name)
		}
	}
	return standbys, others
}

// rightsFile reads and parses the whole rights file.
func (cfg Config) rightsFile() (map[string]Rights, error) {
	read := cfg.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	b, err := read(cfg.RightsFile)
	if err != nil {
		return nil, archive.Errorf(archive.KindDenied, "the archive host cannot read its rights file: %w", err)
	}
	all, err := ParseRightsFile(string(b))
	if err != nil {
		return nil, archive.Errorf(archive.KindDenied, "rights file %s on the archive host: %v", cfg.RightsFile, err)
	}
	return all, nil
}
