// Package archive stores and fetches archived WAL files. One interface,
// two backends: a local (or NFS-mounted) directory, and ssh:// whose far
// end is `pgwarm-wal serve` running the same local backend.
package archive

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

// Archive is what the pgwarm-wal commands need from a storage backend.
type Archive interface {
	// Put stores a complete encoded file (walfile format) under name, durably,
	// and only if no different content is already there.
	Put(ctx context.Context, name segname.Name, file []byte) error
	// Get returns the encoded file. When it is missing it waits up to wait
	// for it to appear, then fails with KindNotFound.
	Get(ctx context.Context, name segname.Name, wait time.Duration) ([]byte, error)
	// List describes the archive.
	List(ctx context.Context) (Listing, error)
	// Cleanup records the caller's restart point oldest (%r) and removes
	// what segname.CleanupSet selects for the oldest restart point of all
	// standbys (restartpoints.go).
	Cleanup(ctx context.Context, oldest segname.Name, opt CleanupOptions) (CleanupResult, error)
	// Verify reads and checks every file.
	Verify(ctx context.Context) (Report, error)
	Close() error
}

// Meta is the archive root's metadata file.
type Meta struct {
	Format   int    `json:"format"`
	SysID    string `json:"system_identifier"` // decimal, as pg_controldata prints it
	SegSize  uint32 `json:"wal_segment_size"`
	Created  string `json:"created"`
	Hostname string `json:"created_by_host,omitempty"`
}

// SysIDValue parses m.SysID (0 when unset).
func (m Meta) SysIDValue() uint64 {
	v, _ := strconv.ParseUint(m.SysID, 10, 64)
	return v
}

// SegSizeOrZero is the archive's wal_segment_size, or 0 for an archive not
// bound to a cluster yet (m nil).
func (m *Meta) SegSizeOrZero() uint32 {
	if m == nil {
		return 0
	}
	return m.SegSize
}

// Entry is one archived file.
type Entry struct {
	Name        string         `json:"name"`
	Kind        string         `json:"kind"`
	TLI         uint32         `json:"timeline"`
	StoredBytes int64          `json:"stored_bytes"`
	Bytes       uint64         `json:"bytes"`
	Compression string         `json:"compression"`
	SHA256      string         `json:"sha256"`
	SHA256Of    string         `json:"sha256_of"` // "stored" (the file's body) or "content" (older files)
	Header      walfile.Header `json:"-"`
	Parsed      segname.Name   `json:"-"`
}

// Listing is the result of List.
type Listing struct {
	Meta    *Meta    `json:"meta,omitempty"`
	Entries []Entry  `json:"files"`
	Foreign []string `json:"foreign_files,omitempty"` // names in the WAL directory that are not WAL file names
	Broken  []string `json:"unreadable_headers,omitempty"`
}

// Names returns the parsed names of the entries.
func (l Listing) Names() []segname.Name {
	out := make([]segname.Name, 0, len(l.Entries))
	for _, e := range l.Entries {
		out = append(out, e.Parsed)
	}
	return out
}

// Problem is one finding of Verify.
type Problem struct {
	Kind Kind   `json:"code"`
	What string `json:"kind"`
	Name string `json:"name,omitempty"`
	Msg  string `json:"message"`
}

// Report is the result of Verify.
type Report struct {
	Files     int       `json:"files"`
	Timelines []uint32  `json:"timelines"`
	Problems  []Problem `json:"problems"`
}

// Options are the client-side settings common to all backends.
type Options struct {
	RequireMarker string // refuse to work unless ROOT/<marker> exists
	// Cluster, when known, bounds what Get accepts from the archive
	// before it is read: a segment of another size is refused at its
	// header, whatever the archive (host) claims its binding is.
	Cluster Cluster
}

// Cluster is the database cluster a reader restores for: its system
// identifier and wal_segment_size, as pgwarm renders them into
// restore_command from the primary's pg_controldata (--system-identifier,
// --segment-size). The archive's own binding (pgwarm-archive.json) comes
// from the archive host: a hostile one could bind it to 1 GiB segments or
// to another cluster. A reader that knows its cluster trusts no archive
// for it. Zero fields are unknown.
type Cluster struct {
	SysID   uint64
	SegSize uint32
}

// CheckHeader refuses the header h of n when it describes WAL of another
// cluster than c: another system identifier or segment size.
func (c Cluster) CheckHeader(n segname.Name, h walfile.Header) error {
	if !n.HasWALContent() {
		return nil
	}
	if c.SysID != 0 && h.SysID != c.SysID {
		return Errorf(KindForeign, "refusing %s: it is WAL of database cluster %d, but this standby restores for cluster %d; it is not this cluster's WAL (find out how it got into the archive, and move it out)", n, h.SysID, c.SysID)
	}
	if c.SegSize != 0 && h.SegSize != c.SegSize {
		return Errorf(KindForeign, "refusing %s: its header says %d-byte WAL segments, but this cluster's are %d bytes; it is not this cluster's WAL", n, h.SegSize, c.SegSize)
	}
	return nil
}

// ParseCluster reads --system-identifier and --segment-size as given
// (either may be empty: unknown).
func ParseCluster(sysid, segSize string) (Cluster, error) {
	var c Cluster
	if sysid != "" {
		v, err := strconv.ParseUint(sysid, 10, 64)
		if err != nil || v == 0 {
			return c, Errorf(KindBadInput, "--system-identifier %q: want the decimal number pg_controldata prints as \"Database system identifier\"", sysid)
		}
		c.SysID = v
	}
	if segSize != "" {
		v, err := strconv.ParseUint(segSize, 10, 32)
		if err != nil || !segname.ValidSegSize(uint32(v)) {
			return c, Errorf(KindBadInput, "--segment-size %q: want wal_segment_size in bytes, a power of two from 1 MiB to 1 GiB (pg_controldata: \"Bytes per WAL segment\")", segSize)
		}
		c.SegSize = uint32(v)
	}
	return c, nil
}

// Open parses an archive URL: an absolute path, file:///path, or
// ssh://user@host[:port]/path.
func Open(raw string, opt Options) (Archive, error) {
	if err := validMarker(opt.RequireMarker); err != nil {
		return nil, err
	}
	if strings.HasPrefix(raw, "/") {
		return NewLocal(filepath.Clean(raw), opt), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, Errorf(KindBadInput, "archive URL %q: %v", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, Errorf(KindBadInput, "archive URL %q: file URLs must be file:///absolute/path", raw)
		}
		if !strings.HasPrefix(u.Path, "/") {
			return nil, Errorf(KindBadInput, "archive URL %q: path must be absolute", raw)
		}
		return NewLocal(filepath.Clean(u.Path), opt), nil
	case "ssh":
		return newSSH(u, opt)
	}
	return nil, Errorf(KindBadInput, "archive URL %q: want /path, file:///path or ssh://user@host[:port]/path", raw)
}

func validMarker(m string) error {
	if m == "" {
		return nil
	}
	if strings.ContainsAny(m, "/\\\x00") || m == "." || m == ".." || len(m) > 200 {
		return Errorf(KindBadInput, "--require-marker %q must be a plain file name in the archive root", m)
	}
	return nil
}

// lines keeps the report messages short in one place.
func gapMsg(g segname.Gap, segSize uint32) string {
	if g.First == g.Last {
		return fmt.Sprintf("timeline %d: segment %s is missing", g.TLI, g.First)
	}
	return fmt.Sprintf("timeline %d: %d segments missing, %s .. %s", g.TLI, g.Count(segSize), g.First, g.Last)
}
