package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/templates"
	"github.com/pgwarm/pgwarm/wal/archive"
)

// The archive's binding (ROOT/pgwarm-archive.json: the cluster's system
// identifier and wal_segment_size) is what every pgwarm-wal reader bounds
// a file by: an archive bound to 16 MiB segments refuses a 1 GiB one
// before reading it. pgwarm-wal binds an unbound archive to the first WAL
// that passes every check; apply binds the archive it provisions to the
// primary's cluster (read from pg_controldata) before any WAL reaches it,
// so no push can choose the binding of an archive pgwarm set up.

// wantBinding is the binding the primary's facts call for.
func wantBinding(s *State) (archive.Meta, error) {
	prim := s.Inv.Primary()
	dd := s.Facts[prim.Name].DataDir
	if dd == nil || dd.SystemID == "" || dd.WALSegSize == 0 {
		return archive.Meta{}, fmt.Errorf("%s: cannot read the system identifier and WAL segment size of the primary's cluster (pg_controldata -D %s); the archive cannot be bound to it", prim.Name, s.Paths.DataDir)
	}
	if _, err := strconv.ParseUint(dd.SystemID, 10, 64); err != nil {
		return archive.Meta{}, fmt.Errorf("%s: pg_controldata's system identifier %q is not a number", prim.Name, dd.SystemID)
	}
	return archive.Meta{Format: 1, SysID: dd.SystemID, SegSize: dd.WALSegSize,
		Created: time.Now().UTC().Format(time.RFC3339), Hostname: prim.Name}, nil
}

func bindingPath(s *State) string { return path.Join(s.Inv.Archive.Path, archive.MetaFile) }

// readBinding returns the archive's binding on h, nil when there is none.
func readBinding(ctx context.Context, s *State, h host.Host) (*archive.Meta, error) {
	b, err := h.ReadFile(ctx, bindingPath(s))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", h.Name(), bindingPath(s), err)
	}
	var m archive.Meta
	if err := json.Unmarshal(b, &m); err != nil || m.SysIDValue() == 0 {
		return nil, fmt.Errorf("%s: %s is damaged (%v); it must record the cluster's system_identifier: check it, then fix or remove it", h.Name(), bindingPath(s), err)
	}
	return &m, nil
}

// sameCluster refuses an archive bound to another cluster than want,
// naming both.
func sameCluster(s *State, h host.Host, have *archive.Meta, want archive.Meta) error {
	if have.SysIDValue() == want.SysIDValue() && (have.SegSize == 0 || have.SegSize == want.SegSize) {
		return nil
	}
	return fmt.Errorf("%s: the archive %s belongs to cluster %s with %d-byte WAL segments (%s), but the primary %s is cluster %s with %d-byte segments; "+
		"apply changed nothing. Give this cluster its own archive (archive.path in %s), or move the old archive aside if nothing needs it any more",
		h.Name(), s.Inv.Archive.Path, have.SysID, have.SegSize, bindingPath(s), s.Inv.Primary().Name, want.SysID, want.SegSize, s.Inv.File)
}

// checkBinding is preflight's part: an archive bound to another cluster
// stops apply before it changes anything.
func checkBinding(ctx context.Context, s *State) error {
	want, err := wantBinding(s)
	if err != nil {
		return err
	}
	h := s.host(s.Inv.ArchiveHost().Name)
	have, err := readBinding(ctx, s, h)
	if err != nil || have == nil {
		return err
	}
	return sameCluster(s, h, have, want)
}

// bindArchive writes the binding into the archive directory when there is
// none (the directory exists: the archive step made it). An existing one
// is never replaced.
func bindArchive(ctx context.Context, s *State, h host.Host) error {
	want, err := wantBinding(s)
	if err != nil {
		return err
	}
	have, err := readBinding(ctx, s, h)
	if err != nil {
		return err
	}
	if have != nil {
		return sameCluster(s, h, have, want)
	}
	b, _ := json.MarshalIndent(want, "", "  ")
	if err := h.WriteFile(ctx, bindingPath(s), append(b, '\n'), 0o600, templates.ArchiveOwner(s.Inv)); err != nil {
		return fmt.Errorf("%s: binding the archive: %w", h.Name(), err)
	}
	s.Out.Hostf(h.Name(), "bound the archive %s to cluster %s (%d-byte WAL segments)", s.Inv.Archive.Path, want.SysID, want.SegSize)
	return nil
}
