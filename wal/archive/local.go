package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

// On-disk layout of a local archive:
//
//	ROOT/pgwarm-archive.json   cluster system identifier + segment size, written on first use
//	ROOT/<marker>              optional, created by the operator (the seed's "mounted")
//	ROOT/wal/<NAME>            one walfile per archived file, NAME exactly as PostgreSQL named it
//	ROOT/wal/.tmp-<NAME>-...   in-flight writes; never read, removed by cleanup after an hour
//	ROOT/restartpoints/<HOST>  each standby's last restart point (restartpoints.go)
const (
	MetaFile  = "pgwarm-archive.json"
	WALDir    = "wal"
	tmpPrefix = ".tmp-"
	// pollEvery bounds how late a waiting get notices a new file: one
	// stat per period and waiting standby, so it can be short.
	pollEvery = 20 * time.Millisecond
)

// Local is a directory archive. Root must already exist: when an NFS mount
// is missing we would rather fail than fill the empty mount point.
type Local struct {
	Root string
	opt  Options
}

// NewLocal returns the backend for a directory.
func NewLocal(root string, opt Options) *Local { return &Local{Root: root, opt: opt} }

func (l *Local) walDir() string             { return filepath.Join(l.Root, WALDir) }
func (l *Local) path(n segname.Name) string { return filepath.Join(l.walDir(), n.String()) }
func (l *Local) Close() error               { return nil }

// CheckRoot refuses to touch an archive whose root is missing or whose
// marker is absent.
func (l *Local) CheckRoot() error {
	st, err := os.Stat(l.Root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Errorf(KindBadInput, "archive directory %s does not exist (is the archive filesystem mounted?)", l.Root)
		}
		return classify(err, "checking the archive directory")
	}
	if !st.IsDir() {
		return Errorf(KindBadInput, "archive path %s is not a directory", l.Root)
	}
	// The root may be a link or a mount point (the operator's path);
	// ROOT/wal is pgwarm-wal's own directory: a link there would send
	// every read and write elsewhere.
	if st, err := os.Lstat(l.walDir()); err == nil && !st.IsDir() {
		return Errorf(KindBadInput, "%s is %s, not a directory: pgwarm-wal creates it as a directory and follows no links inside the archive (the archive root itself may be a link); replace it with a real directory after checking who made it",
			l.walDir(), describeMode(st.Mode()))
	}
	if l.opt.RequireMarker != "" {
		if _, err := os.Stat(filepath.Join(l.Root, l.opt.RequireMarker)); err != nil {
			return &Error{Kind: KindMarker, Err: err, Msg: fmt.Sprintf(
				"marker file %s is missing, so %s is probably not the mounted archive; refusing to touch it (mount the archive, or create the marker if this really is the archive)",
				filepath.Join(l.Root, l.opt.RequireMarker), l.Root)}
		}
	}
	return nil
}

// ReadMeta returns the root metadata, or nil when the archive is unused.
func (l *Local) ReadMeta() (*Meta, error) {
	b, err := ReadRegular(filepath.Join(l.Root, MetaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err, "reading "+MetaFile)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil || m.SysIDValue() == 0 {
		return nil, Errorf(KindCorrupt, "%s is damaged (%v); it must record the cluster's system_identifier", filepath.Join(l.Root, MetaFile), err)
	}
	return &m, nil
}

// checkCluster binds the archive to the first cluster that writes WAL to
// it, and refuses WAL from any other cluster afterwards. An archive that
// pgwarm apply provisioned is bound already; one used without apply is
// bound only by a segment that passed every check (file is decoded and
// its pages checked here first, whoever sent it), so a crafted file
// cannot choose the cluster or the segment size of an empty archive
// without also being a well-formed segment.
func (l *Local) checkCluster(name segname.Name, h walfile.Header, file []byte) error {
	m, err := l.ReadMeta()
	if err != nil {
		return err
	}
	if m == nil {
		if v := CheckFile(name, file, 0); v.Err != nil {
			return Errorf(KindCorrupt, "refusing the file sent for %s: %v; the archive is not bound to a cluster yet and is left untouched", name, v.Err)
		}
		host, _ := os.Hostname()
		nm := Meta{Format: 1, SysID: strconv.FormatUint(h.SysID, 10), SegSize: h.SegSize,
			Created: time.Now().UTC().Format(time.RFC3339), Hostname: host}
		b, _ := json.MarshalIndent(nm, "", "  ")
		// link, not rename: two first writers racing must not replace each
		// other's record; the loser re-reads and compares.
		if err := writeDurable(l.Root, MetaFile, append(b, '\n'), false); err != nil && !errors.Is(err, fs.ErrExist) {
			return classify(err, "recording the cluster in "+MetaFile)
		}
		if m, err = l.ReadMeta(); err != nil {
			return err
		}
		if m == nil {
			return Errorf(KindOther, "%s vanished right after it was written", MetaFile)
		}
	}
	if m.SysIDValue() != h.SysID {
		return Errorf(KindForeign, "this WAL belongs to database cluster %d but archive %s belongs to cluster %d (wrong archive URL, or the cluster was re-created with initdb: give it a new archive directory)",
			h.SysID, l.Root, m.SysIDValue())
	}
	if m.SegSize != 0 && h.SegSize != 0 && m.SegSize != h.SegSize {
		return Errorf(KindForeign, "WAL segment size %d differs from the archive's %d", h.SegSize, m.SegSize)
	}
	return nil
}

// Put implements Archive.
func (l *Local) Put(ctx context.Context, name segname.Name, file []byte) error {
	if err := l.CheckRoot(); err != nil {
		return err
	}
	h, err := walfile.UnmarshalHeader(file)
	if err != nil {
		return err
	}
	// A body that no longer matches its checksum (damaged on the way here)
	// is refused before it can take the name: cheap, it is the stored size.
	if _, err := walfile.CheckBody(file); err != nil {
		return Errorf(KindCorrupt, "the file sent for %s is damaged (%v); archive left untouched", name, err)
	}
	// The segment size itself is compared with the archive's by
	// checkCluster below.
	if err := CheckSize(name, h, 0); err != nil {
		return Errorf(KindCorrupt, "refusing the file sent for %s: %w; archive left untouched", name, err)
	}
	if name.HasWALContent() {
		if err := l.checkCluster(name, h, file); err != nil {
			return err
		}
	} else if err := checkText(name, file); err != nil {
		return err
	}
	if err := os.Mkdir(l.walDir(), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return classify(err, "creating "+l.walDir())
	}
	if done, err := l.compareExisting(name, h, file); done || err != nil {
		return err
	}
	err = writeDurable(l.walDir(), name.String(), file, false)
	if errors.Is(err, fs.ErrExist) {
		// Someone archived the same name between our check and our link.
		if done, err := l.compareExisting(name, h, file); done || err != nil {
			return err
		}
	}
	return classify(err, "writing "+l.path(name))
}

// checkText refuses a history or backup history file whose content is
// not one (CheckContentKind): stored, a broken history file stops every
// standby that reads it. They are small (CheckSize), so decoding here
// costs little.
func checkText(name segname.Name, file []byte) error {
	content, _, err := DecodeFor(name, file, 0)
	if err == nil {
		err = CheckContentKind(name, content)
	}
	if err != nil {
		return Errorf(KindCorrupt, "refusing the file sent for %s: %w; archive left untouched", name, err)
	}
	return nil
}

// compareExisting decides what an existing file under name means: the same
// content is success (PostgreSQL retries after a crash between our rename
// and its bookkeeping), different content is a conflict that leaves the
// archive untouched. done=false means nothing is there. Contents are
// compared by their sha256, computed as they stream by: neither is held.
func (l *Local) compareExisting(name segname.Name, h walfile.Header, file []byte) (done bool, err error) {
	old, oh, err := readArchived(l.path(name), name, func(walfile.Header) (uint32, error) { return h.SegSize, nil })
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil && !errors.Is(err, walfile.ErrCorrupt) {
		return true, classify(err, "reading the already archived "+name.String())
	}
	derr := err
	var oldSum [32]byte
	if derr == nil {
		oldSum, _, derr = SumFor(name, old, h.SegSize)
	}
	// The same header means the same content: with SumBody every field
	// that turns the body into content is in it (size, codec, filter) and
	// the body's sha256; with SumContent the sha256 is of the content.
	sameHeader := oh == h || (oh.SumKind == walfile.SumContent && h.SumKind == walfile.SumContent &&
		oh.SHA256 == h.SHA256 && oh.Size == h.Size)
	switch {
	case derr == nil && sameHeader:
		return true, nil
	case derr == nil:
		// Different checksums can still be the same content: another
		// compression, or a file written by another pgwarm-wal version.
		newSum, _, err := SumFor(name, file, h.SegSize)
		if err != nil {
			return true, Errorf(KindCorrupt, "the file sent for %s is damaged (%v); archive left untouched", name, err)
		}
		if oldSum == newSum {
			return true, nil
		}
		what := "different content is already archived under this name"
		if name.Kind == segname.History {
			what = "a different timeline history file is already archived under this name (history files are never replaced; two clusters or two promotions produced the same timeline)"
		}
		return true, Errorf(KindConflict, "%s: archived sha256 %x, new sha256 %x (of the uncompressed content); archive left untouched", what, oldSum, newSum)
	case sameHeader || claimsContentOf(name, oh, h, file):
		// The stored copy claims our exact content but is damaged: replacing
		// it with the intact bytes changes no WAL, it repairs the archive.
		return true, classify(writeDurable(l.walDir(), name.String(), file, true), "repairing "+name.String())
	default:
		return true, Errorf(KindCorrupt, "the already archived %s is damaged (%v) and cannot be compared; move it aside after checking it, then PostgreSQL's retry will archive it again", l.path(name), derr)
	}
}

// readArchived reads the archived file at path that is to be name: its
// header first, checked against name and the archive's segment size
// (CheckSize), then the file only if its length is one such a header
// allows (MaxFileSize), so no damaged or planted file makes a reader
// allocate more than one file of the size its name allows. h is the
// header whenever it could be read; a refusal wraps walfile.ErrCorrupt.
func readArchived(path string, name segname.Name, segSize func(walfile.Header) (uint32, error)) (file []byte, h walfile.Header, err error) {
	f, size, err := OpenRegular(path) // no link, FIFO or device is read
	if err != nil {
		return nil, h, err
	}
	defer f.Close()
	hb := make([]byte, walfile.HeaderSize)
	if _, err := io.ReadFull(f, hb); err != nil {
		return nil, h, fmt.Errorf("%w: %s is %d bytes, shorter than a header", walfile.ErrCorrupt, path, size)
	}
	if h, err = walfile.UnmarshalHeader(hb); err != nil {
		return nil, h, err
	}
	ss, err := segSize(h)
	if err != nil {
		return nil, h, err
	}
	if err := CheckSize(name, h, ss); err != nil {
		return nil, h, err
	}
	if uint64(size) > MaxFileSize(h) {
		return nil, h, fmt.Errorf("%w: %s is %d bytes, more than a file whose header says %d stored bytes can take", walfile.ErrCorrupt, path, size, h.Stored)
	}
	file = make([]byte, size)
	copy(file, hb)
	if _, err := io.ReadFull(f, file[walfile.HeaderSize:]); err != nil {
		return nil, h, fmt.Errorf("reading %s: %w", path, err)
	}
	return file, h, nil
}

// Get implements Archive.
func (l *Local) Get(ctx context.Context, name segname.Name, wait time.Duration) ([]byte, error) {
	if wait > 0 && !l.worthWaiting(name) {
		wait = 0
	}
	deadline := time.Now().Add(wait)
	for {
		if err := l.CheckRoot(); err != nil {
			return nil, err
		}
		m, err := l.ReadMeta()
		if err != nil {
			return nil, err
		}
		b, bh, err := readArchived(l.path(name), name, func(h walfile.Header) (uint32, error) {
			// The reader's own cluster first (restore): refused at the
			// header, whatever the archive's binding file says.
			if err := l.opt.Cluster.CheckHeader(name, h); err != nil {
				return 0, err
			}
			return l.readBound(m), nil
		})
		if err == nil && name.HasWALContent() {
			err = l.checkBinding(name, bh, m)
		}
		if err == nil {
			return b, nil
		}
		if KindOf(err) == KindForeign {
			return nil, err // a link, FIFO or device: it says so, path and all
		}
		if errors.Is(err, walfile.ErrCorrupt) {
			// Everything else (the checksums) is the reader's to find: it
			// decodes what it gets.
			return nil, Errorf(KindCorrupt, "refusing to hand out %s: %v", l.path(name), err)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, classify(err, "reading "+l.path(name))
		}
		if !time.Now().Before(deadline) {
			return nil, Errorf(KindNotFound, "%s is not in the archive %s", name, l.Root)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(pollEvery, time.Until(deadline))):
		}
	}
}

// claimsContentOf reports whether a damaged archived file of an older
// version (its intact header carries the sha256 of its content) was meant
// to hold exactly the content of file, a new one with header h.
func claimsContentOf(name segname.Name, oh, h walfile.Header, file []byte) bool {
	if oh.SumKind != walfile.SumContent || h.SumKind != walfile.SumBody || oh.Size != h.Size || oh.Size == 0 {
		return false
	}
	sum, _, err := SumFor(name, file, h.SegSize)
	return err == nil && sum == oh.SHA256
}

// readBound is the segment size a file Get reads may have: the reader's
// own cluster's (Options.Cluster, restore) when it knows it, else the
// archive's binding; 0 when neither is known.
func (l *Local) readBound(m *Meta) uint32 {
	if s := l.opt.Cluster.SegSize; s != 0 {
		return s
	}
	return m.SegSizeOrZero()
}

// checkBinding refuses to hand out WAL of another cluster than the one
// the archive is bound to (m, nil when unbound): PostgreSQL would stop
// replaying at it, or worse, replay it. The header is enough: the
// reader checks that the WAL inside agrees with it (CheckWALContent).
func (l *Local) checkBinding(name segname.Name, h walfile.Header, m *Meta) error {
	if m == nil || h.SysID == m.SysIDValue() {
		return nil
	}
	return Errorf(KindForeign, "refusing to hand out %s: it is WAL of database cluster %d but archive %s belongs to cluster %d (%s); it is not this cluster's WAL: move it out of the archive after finding out how it got there",
		l.path(name), h.SysID, l.Root, m.SysIDValue(), MetaFile)
}

// worthWaiting applies pg_standby's rule here, beside the files, so every
// client that waits gets it: only a segment of the newest timeline the
// archive knows (or any segment of an empty archive) is worth waiting for;
// a probe for a history file, or for a segment of a timeline that has been
// superseded, is answered at once. Names only: no file is opened.
func (l *Local) worthWaiting(want segname.Name) bool {
	if want.Kind != segname.Segment {
		return false
	}
	des, err := os.ReadDir(l.walDir())
	if err != nil {
		return true // the read that follows reports the problem
	}
	names := make([]segname.Name, 0, len(des))
	for _, de := range des {
		if n, err := segname.Parse(de.Name()); err == nil {
			names = append(names, n)
		}
	}
	return segname.WorthWaiting(want, names)
}

// List implements Archive. It reads only the headers.
func (l *Local) List(ctx context.Context) (Listing, error) {
	if err := l.CheckRoot(); err != nil {
		return Listing{}, err
	}
	var out Listing
	m, err := l.ReadMeta()
	if err != nil {
		return Listing{}, err
	}
	out.Meta = m
	des, err := os.ReadDir(l.walDir())
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return Listing{}, classify(err, "listing "+l.walDir())
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			continue
		}
		n, err := segname.Parse(de.Name())
		if err != nil || !de.Type().IsRegular() {
			out.Foreign = append(out.Foreign, de.Name())
			continue
		}
		e, err := readEntry(filepath.Join(l.walDir(), de.Name()), n)
		switch {
		case err == nil:
			out.Entries = append(out.Entries, e)
		case KindOf(err) == KindForeign: // became a link or FIFO since ReadDir
			out.Foreign = append(out.Foreign, de.Name())
		case KindOf(err) == KindCorrupt:
			out.Broken = append(out.Broken, de.Name())
		default:
			return Listing{}, err
		}
	}
	sort.Slice(out.Entries, func(i, j int) bool { return segname.Less(out.Entries[i].Parsed, out.Entries[j].Parsed) })
	return out, nil
}

func readEntry(path string, n segname.Name) (Entry, error) {
	f, size, err := OpenRegular(path)
	if KindOf(err) == KindForeign {
		return Entry{}, err
	}
	if err != nil {
		return Entry{}, classify(err, "opening "+path)
	}
	defer f.Close()
	hb := make([]byte, walfile.HeaderSize)
	if _, err := io.ReadFull(f, hb); err != nil {
		return Entry{}, fmt.Errorf("%w: %s: %v", walfile.ErrCorrupt, path, err)
	}
	h, err := walfile.UnmarshalHeader(hb)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Name: n.String(), Kind: n.Kind.String(), TLI: n.TLI, StoredBytes: size,
		Bytes: h.Size, Compression: h.Compression.String(), SHA256: h.Sum(), SHA256Of: h.SumKind.String(), Header: h, Parsed: n}, nil
}

// removeStaleTemps deletes leftovers of writers killed mid-write in dir.
// Age guards against deleting a write that is still in progress.
func removeStaleTemps(dir string, age time.Duration) {
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), tmpPrefix) {
			continue
		}
		if info, err := de.Info(); err == nil && time.Since(info.ModTime()) > age {
			_ = os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

// Verify implements Archive: every file is decompressed and checksummed.
func (l *Local) Verify(ctx context.Context) (Report, error) {
	ls, err := l.List(ctx)
	if err != nil {
		return Report{}, err
	}
	var files []VerifiedFile
	for _, e := range ls.Entries {
		if err := ctx.Err(); err != nil {
			return Report{}, err
		}
		segSize := ls.Meta.SegSizeOrZero()
		b, _, err := readArchived(filepath.Join(l.walDir(), e.Name), e.Parsed, func(walfile.Header) (uint32, error) { return segSize, nil })
		if KindOf(err) == KindForeign { // replaced by a link or FIFO since List
			files = append(files, VerifiedFile{Name: e.Parsed, Err: err})
			continue
		}
		if errors.Is(err, walfile.ErrCorrupt) {
			files = append(files, VerifiedFile{Name: e.Parsed, Header: e.Header, Err: err})
			continue
		}
		if err != nil {
			return Report{}, classify(err, "reading "+e.Name)
		}
		files = append(files, CheckFile(e.Parsed, b, segSize))
	}
	return BuildReport(ls, files), nil
}

// --- durable writes ---------------------------------------------------

// writeDurable writes data to dir/name: temp file, fsync, then link into
// place (which fails with EEXIST instead of overwriting, so concurrent
// writers can never replace a file), unlink the temp, fsync the directory.
// A kill at any moment leaves either nothing or the complete file under
// name, plus at worst a temp file. replace=true renames over name instead
// (only used to repair a damaged copy of identical content).
func writeDurable(dir, name string, data []byte, replace bool) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, tmpPrefix+name+"-"+strconv.Itoa(os.Getpid())+"-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	final := filepath.Join(dir, name)
	if replace {
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
	} else if err := os.Link(tmp, final); err != nil {
		var le *os.LinkError
		if !errors.As(err, &le) || !linkUnsupported(le.Err) {
			return err // includes EEXIST: the caller compares
		}
		// Filesystems without hard links: check-then-rename, with a
		// small race window that only matters for concurrent writers.
		if _, serr := os.Lstat(final); serr == nil {
			return &os.LinkError{Op: "link", Old: tmp, New: final, Err: fs.ErrExist}
		}
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
	} else {
		_ = os.Remove(tmp)
	}
	ok = true
	return syncDir(dir)
}

func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EMLINK) || errors.Is(err, syscall.ENOSYS)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
