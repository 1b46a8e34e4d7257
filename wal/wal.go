package wal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

// ParseName parses a WAL file name given on the command line.
func ParseName(s string) (segname.Name, error) {
	n, err := segname.Parse(s)
	if err != nil {
		return n, &archive.Error{Kind: archive.KindBadInput, Msg: err.Error(), Err: err}
	}
	return n, nil
}

// Encode reads the file PostgreSQL wants archived and builds the archived
// form, checking first that a segment really is the segment it is named.
func Encode(src string, name segname.Name, c walfile.Compression) ([]byte, walfile.Header, error) {
	content, release, err := readSource(src)
	if err != nil {
		return nil, walfile.Header{}, archive.Errorf(archive.KindBadInput, "cannot read the file to archive: %w", err)
	}
	defer release()
	var info walfile.PageInfo
	if name.HasWALContent() {
		if info, err = walfile.ParseLongHeader(content); err != nil {
			return nil, walfile.Header{}, archive.Errorf(archive.KindBadInput, "%s is not a WAL segment: %v", src, err)
		}
		if name.Kind == segname.Segment && uint64(len(content)) != uint64(info.SegSize) {
			return nil, walfile.Header{}, archive.Errorf(archive.KindBadInput, "%s is %d bytes but the cluster's segments are %d bytes (a partially written copy?)", src, len(content), info.SegSize)
		}
	}
	file, h, err := walfile.Encode(content, c, info)
	if err != nil {
		return nil, h, fmt.Errorf("compressing: %w", err)
	}
	if name.HasWALContent() {
		if err := archive.CheckWALContent(name, content, h); err != nil {
			return nil, h, archive.Errorf(archive.KindBadInput, "%s does not contain %s: %v", src, name, err)
		}
	}
	return file, h, nil
}

// Ship is archive_command: make src durable in the archive under name.
func Ship(ctx context.Context, a archive.Archive, src, name string, c walfile.Compression) error {
	n, err := ParseName(name)
	if err != nil {
		return err
	}
	file, _, err := Encode(src, n, c)
	if err != nil {
		return err
	}
	return a.Put(ctx, n, file)
}

// Fetch gets and fully checks one archived file, returning its content.
// c is the cluster the caller restores for (zero fields: unknown).
func Fetch(ctx context.Context, a archive.Archive, n segname.Name, wait time.Duration, c archive.Cluster) ([]byte, error) {
	file, err := a.Get(ctx, n, wait)
	if err != nil {
		return nil, err
	}
	return decodeChecked(n, file, c)
}

// decodeChecked decodes an archived file and checks it is n, of cluster c
// where c is known: what Fetch does after the transfer. The archive's
// binding is checked on the archive's side (Local, or serve on the archive
// host); c is checked here because the archive host may be the one lying.
func decodeChecked(n segname.Name, file []byte, c archive.Cluster) ([]byte, error) {
	if h, err := walfile.UnmarshalHeader(file); err == nil {
		if err := c.CheckHeader(n, h); err != nil {
			return nil, err
		}
	}
	content, h, err := archive.DecodeFor(n, file, c.SegSize)
	if err != nil {
		return nil, &archive.Error{Kind: archive.KindCorrupt, Err: err,
			Msg: "refusing to hand a damaged file to PostgreSQL: " + err.Error() + " (restore it from another copy, or take a new base backup)"}
	}
	if n.HasWALContent() {
		if err := archive.CheckWALContent(n, content, h); err != nil {
			return nil, &archive.Error{Kind: archive.KindCorrupt, Err: err, Msg: "refusing to hand it to PostgreSQL: " + err.Error()}
		}
	}
	// A history file PostgreSQL cannot parse stops a standby with FATAL:
	// one that is archived already (stored before these checks) is refused
	// here, and recovery goes on without it.
	if err := archive.CheckContentKind(n, content); err != nil {
		return nil, &archive.Error{Kind: archive.KindCorrupt, Err: err, Msg: "refusing to hand it to PostgreSQL: " + err.Error() + " (move it aside on the archive host: a promoted primary still holds the real one in its pg_wal and archives it again)"}
	}
	return content, nil
}

// RestoreOptions turn restore into a pg_standby-like waiter, or let it
// linger, and name the cluster it restores for.
type RestoreOptions struct {
	// Cluster is this standby's own cluster (restore --system-identifier,
	// --segment-size): WAL of another is refused, whatever the archive says.
	Cluster archive.Cluster
	Wait    bool
	Trigger string
	// Linger (without Wait): a segment that is not archived yet is waited
	// for up to this long and handed over the moment it lands, then restore
	// exits 1 so PostgreSQL's own retry loop runs (promotion, streaming).
	// It stops at once when PostgreSQL is asked to promote (the promote file
	// pg_ctl promote and pg_promote() write into the data directory, which
	// is DEST's grandparent, pg_wal/RECOVERYXLOG) or Trigger appears.
	Linger time.Duration
	// Prefetch (without Wait) fetches ahead into a spool while the
	// standby is behind; zero Ahead turns it off.
	Prefetch Prefetch
	// Poll is how long one archive probe may wait; the trigger file is
	// checked between probes. Zero means one second.
	Poll time.Duration
}

// Restore is restore_command: fetch name, check it, write dest atomically.
func Restore(ctx context.Context, a archive.Archive, name, dest string, w RestoreOptions) error {
	n, err := ParseName(name)
	if err != nil {
		return err
	}
	if w.Wait && w.Linger > 0 {
		return archive.Errorf(archive.KindBadInput, "--linger is for standby mode (PostgreSQL retries); --wait already waits until the segment or the trigger appears")
	}
	if !w.Wait {
		prefetch := w.Prefetch.Ahead > 0 && w.Prefetch.Spool != "" && n.Kind == segname.Segment
		if prefetch {
			if content, ok := w.Prefetch.fromSpool(n, w.Cluster); ok {
				w.Prefetch.behind(n, uint32(len(content)), true)
				return writeDest(ctx, dest, content)
			}
		}
		start := time.Now()
		var content []byte
		watch := []string{filepath.Join(filepath.Dir(filepath.Dir(dest)), "promote")}
		if w.Trigger != "" {
			watch = append(watch, w.Trigger)
		}
		if w.Linger > 0 && n.Kind == segname.Segment {
			content, err = fetchUntilPromoted(ctx, a, n, w.Linger, watch, w.Cluster)
		} else {
			content, err = Fetch(ctx, a, n, 0, w.Cluster)
		}
		if err != nil {
			return err
		}
		if err := writeDest(ctx, dest, content); err != nil {
			return err
		}
		// Not while promoting: PostgreSQL reads the last segment again at
		// the end of recovery, and nothing after it.
		if prefetch && w.Prefetch.behind(n, uint32(len(content)), time.Since(start) < prefetchWhenWithin) && firstExisting(watch) == "" {
			w.Prefetch.fill(ctx, a, n, uint32(len(content)))
		}
		return nil
	}
	if w.Trigger == "" {
		return archive.Errorf(archive.KindBadInput, "--wait needs --trigger FILE (otherwise recovery could never end)")
	}
	if w.Poll <= 0 {
		w.Poll = time.Second
	}
	worth := n.Kind == segname.Segment
	if ls, err := a.List(ctx); err == nil {
		worth = segname.WorthWaiting(n, ls.Names())
	} else if archive.KindOf(err) != archive.KindDenied {
		return err
	}
	for {
		mode, triggered, err := readTrigger(w.Trigger)
		if err != nil {
			return err
		}
		if triggered && mode == "fast" {
			return endRecovery(w.Trigger, "trigger file %s says fast: ending recovery now without replaying the rest of the archive", w.Trigger)
		}
		wait := w.Poll
		if triggered || !worth {
			wait = 0
		}
		content, err := Fetch(ctx, a, n, wait, w.Cluster)
		if err == nil {
			return writeDest(ctx, dest, content)
		}
		if archive.KindOf(err) != archive.KindNotFound {
			return err
		}
		if !worth {
			return err
		}
		if triggered {
			return endRecovery(w.Trigger, "trigger file %s found and %s is not archived: everything archived has been replayed, ending recovery", w.Trigger, n)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// promotePoll is how often a lingering restore looks for a promotion.
const promotePoll = 20 * time.Millisecond

// fetchUntilPromoted is Fetch waiting up to linger, cut short when any of
// the watched files appears: a promotion must not wait for the next segment.
func fetchUntilPromoted(ctx context.Context, a archive.Archive, n segname.Name, linger time.Duration, watch []string, c archive.Cluster) ([]byte, error) {
	if f := firstExisting(watch); f != "" {
		return fetchArchived(ctx, a, n, "not waiting for it, "+f+" exists (promotion requested)", c)
	}
	parent := ctx
	promoted := errors.New("promotion requested")
	ctx, cancel := CancelWhen(ctx, promotePoll, func() bool { return firstExisting(watch) != "" }, promoted)
	defer cancel(nil)
	content, err := Fetch(ctx, a, n, linger, c)
	if err != nil && errors.Is(context.Cause(ctx), promoted) {
		// A segment that landed as the wait was cut short still counts: a
		// fenced primary archives its last one before the promotion.
		return fetchArchived(parent, a, n, "a promotion was requested: not waiting for it", c)
	}
	return content, err
}

// fetchArchived is a restore during a promotion: PostgreSQL replays
// everything it can still get before it ends recovery, so what is archived
// is handed over and only the wait is off; why says so when n is not there.
func fetchArchived(ctx context.Context, a archive.Archive, n segname.Name, why string, c archive.Cluster) ([]byte, error) {
	content, err := Fetch(ctx, a, n, 0, c)
	if archive.KindOf(err) == archive.KindNotFound {
		return nil, archive.Errorf(archive.KindNotFound, "%s is not archived yet; %s", n, why)
	}
	return content, err
}

func firstExisting(paths []string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// readTrigger reports whether the trigger exists and its first word.
func readTrigger(path string) (mode string, exists bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading trigger file: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) > 0 {
		mode = strings.ToLower(f[0])
	}
	return mode, true, nil
}

// endRecovery returns the exit-1 error that makes PostgreSQL end recovery.
// The trigger file stays: PostgreSQL may ask for the same segment again
// while it finishes recovery, and that call must not wait forever. Whoever
// turns the node back into a standby (pgwarm rebuild) removes it.
func endRecovery(trigger, format string, args ...any) error {
	return archive.Errorf(archive.KindNotFound, format, args...)
}

// writeDest writes PostgreSQL's destination atomically: temp, fsync,
// rename. PostgreSQL never sees a partial file under dest. The temp file
// is new, under a random name (createTemp): nothing planted next to dest
// is written through. Nothing is renamed into place once ctx is done: a
// restore whose server is gone (or that is being stopped) must not write
// into a data directory another server may own by now. The zero tail of
// a segment switched early (most of an idle one) is allocated, not
// written: the blocks are reserved, as PostgreSQL expects of a WAL file it
// may later recycle and write into, and read back as zeros, without
// megabytes of zeros to write and sync.
func writeDest(ctx context.Context, dest string, content []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not writing %s: %w", dest, context.Cause(ctx))
	}
	f, err := createTemp(filepath.Dir(dest), filepath.Base(dest)+".pgwarm-wal-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	tmp := f.Name()
	body := content[:len(content)-walfile.ZeroTail(content)]
	_, err = f.Write(body)
	if err == nil && len(body) < len(content) {
		err = allocateZeros(f, int64(len(body)), int64(len(content)-len(body)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("not renaming it into place: %w", context.Cause(ctx))
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	if d, err := os.Open(filepath.Dir(dest)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
