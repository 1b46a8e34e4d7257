package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pgwarm/pgwarm/wal/segname"
)

// Cleanup with several standbys. Each standby's archive_cleanup_command
// reports its restart point (%r); the archive keeps the latest report of
// every standby and deletes only what is before the oldest of them, so one
// standby's cleanup never removes WAL another still needs (PostgreSQL's
// documentation warns against exactly that with a shared archive).
//
//	ROOT/restartpoints/<STANDBY>   "<24 hex digits>\n": STANDBY's last restart point
//
// STANDBY is the name of the reporting host: over ssh the name of its key
// on the archive host (serve --as), never a name from the request, so a
// standby's key can move only its own record; for a local or NFS archive
// the client's --as. Reports replace each other without a lock: a cleanup
// racing a report reads the old record or the new one, and a standby's
// restart point only moves back when it was rebuilt, when what it needs
// is no longer a question of cleanup.
const RestartPointsDir = "restartpoints"

// CleanupOptions say whose restart point a cleanup reports and which
// standbys the archive must hear from before it deletes anything.
type CleanupOptions struct {
	DryRun bool
	// Streaming: the caller replays streamed WAL, so its restart point may
	// be ahead of the archive while archiving lags. Its point is clamped to
	// the newest archived segment of its timeline instead of being refused.
	// Clamping is safe: what is not archived yet cannot be deleted, and the
	// point is only ever lowered. PostgreSQL does not tell %r's origin, so
	// pgwarm renders --streaming on standbys in streaming mode.
	Streaming bool
	// As names the reporting standby; its restart point is recorded. Empty
	// (a hand-run cleanup, an older configuration): nothing is recorded,
	// but every record still bounds what is deleted.
	As string
	// Standbys must all have reported before anything is deleted: a
	// standby that never reported blocks cleanup (safe; it says so).
	Standbys []string
	// OnlyStandbys: Standbys is the complete set, and records of other
	// names (hosts that are no longer standbys) are not counted. A local
	// or NFS archive trusts its client's --standbys (every client can
	// delete files there anyway); serve never does (it leaves this false
	// and names Retired from its rights file).
	OnlyStandbys bool
	// Retired are names whose records are not counted, e.g. keys of the
	// rights file without the cleanup right (the primary).
	Retired []string
}

// RestartPoint is one standby's recorded report.
type RestartPoint struct {
	Standby  string    `json:"standby"`
	Point    string    `json:"restart_point"`
	Reported time.Time `json:"reported"`
	// Counted is false for a record that does not bound cleanup (a host
	// that is no longer a standby).
	Counted bool `json:"counted"`
}

// CleanupResult is what a cleanup did and why, for --dry-run and --verbose.
type CleanupResult struct {
	Removed []string `json:"removed"`
	// As and Recorded: the restart point recorded for the caller ("" when
	// nothing was recorded); Clamped when it was lowered to the newest
	// archived segment (Streaming).
	As       string `json:"as,omitempty"`
	Recorded string `json:"recorded,omitempty"`
	Clamped  bool   `json:"clamped,omitempty"`
	// Bound: segments of its timeline before it were removed (or would
	// be); BoundOf is whose restart point it is. Empty while Waiting.
	Bound   string `json:"bound,omitempty"`
	BoundOf string `json:"bound_of,omitempty"`
	// Waiting are the standbys that must report before anything is deleted.
	Waiting []string       `json:"waiting_for,omitempty"`
	Points  []RestartPoint `json:"restart_points,omitempty"`
	Note    string         `json:"note,omitempty"`
}

// Explain renders the result for an operator, one finding per line. Pure.
func (r CleanupResult) Explain() []string {
	var out []string
	for _, p := range r.Points {
		s := fmt.Sprintf("restart point of %s: %s (reported %s)", p.Standby, p.Point, p.Reported.UTC().Format(time.RFC3339))
		if !p.Counted {
			s += ", not counted: " + p.Standby + " is not a standby of this archive any more"
		}
		out = append(out, s)
	}
	if r.Recorded != "" {
		s := "recorded " + r.Recorded + " as " + r.As + "'s restart point"
		if r.Clamped {
			s += " (its %r is ahead of the archive: clamped to the newest archived segment)"
		}
		out = append(out, s)
	}
	if r.Note != "" {
		out = append(out, r.Note)
	}
	switch {
	case len(r.Waiting) > 0:
		out = append(out, fmt.Sprintf("nothing is removed until every standby has reported a restart point; not yet: %s (a standby that never reports blocks cleanup; if one is no longer a standby, pgwarm apply takes it out of --standbys and the archive host's rights file)",
			strings.Join(r.Waiting, ", ")))
	case r.Bound != "":
		out = append(out, fmt.Sprintf("oldest restart point %s (%s): removing what is archived before it on its timeline", r.Bound, r.BoundOf))
	}
	return out
}

// ValidStandbyName accepts the host names the inventory accepts; the name
// becomes a file name under ROOT/restartpoints, so it must not be able to
// name anything else.
func ValidStandbyName(s string) error {
	ok := len(s) >= 1 && len(s) <= 63
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '.' || c == '-' || c == '_')
	}
	if !ok {
		return Errorf(KindBadInput, "standby name %q: use letters, digits, '.', '-' and '_' (a host name of the inventory), starting with a letter or digit", s)
	}
	return nil
}

func (o CleanupOptions) validate() error {
	if o.As != "" {
		if err := ValidStandbyName(o.As); err != nil {
			return err
		}
	}
	for _, lists := range [][]string{o.Standbys, o.Retired} {
		for _, s := range lists {
			if err := ValidStandbyName(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// Cleanup implements Archive: record the caller's restart point, then
// remove what segname.CleanupSet selects for the oldest restart point of
// every standby.
func (l *Local) Cleanup(ctx context.Context, oldest segname.Name, opt CleanupOptions) (CleanupResult, error) {
	res := CleanupResult{Removed: []string{}}
	if err := opt.validate(); err != nil {
		return res, err
	}
	if oldest.Kind != segname.Segment {
		return res, Errorf(KindBadInput, "cleanup needs a segment name (%%r), not a %s file", oldest.Kind)
	}
	ls, err := l.List(ctx)
	if err != nil {
		return res, err
	}
	names := ls.Names()
	point := oldest
	switch c := segname.CheckRestartPoint(names, oldest); {
	case !c.Beyond:
	case !opt.Streaming && c.HasNewest:
		return res, Errorf(KindBadInput, "restart point %s is beyond %s, the newest segment archived on timeline %d: cleaning up to it would remove WAL that no standby can have replayed from this archive; nothing removed (a standby that streams ahead of the archive passes --streaming, which cleans up only to the newest archived segment)",
			oldest, c.Newest, oldest.TLI)
	case !opt.Streaming:
		return res, Errorf(KindBadInput, "restart point %s is on timeline %d, of which nothing is archived in %s; nothing removed (a standby that streams ahead of the archive passes --streaming)",
			oldest, oldest.TLI, l.Root)
	case c.HasNewest:
		point, res.Clamped = c.Newest, true
	default:
		// Streaming on a timeline the archive has not seen a segment of
		// yet: nothing on it to delete, and no point worth recording (the
		// old record, on an earlier timeline, is the safe one to keep).
		res.Note = fmt.Sprintf("timeline %d has nothing archived yet (%s streams ahead of the archive): nothing removed, no restart point recorded", oldest.TLI, whoOr(opt.As, "the standby"))
		return res, nil
	}
	if opt.As != "" {
		res.As, res.Recorded = opt.As, point.String()
		if !opt.DryRun {
			if err := l.writeRestartPoint(opt.As, point); err != nil {
				return res, err
			}
		}
	}
	records, err := l.readRestartPoints(opt.As)
	if err != nil {
		return res, err
	}
	d := decideCleanup(point, opt, records)
	res.Points, res.Waiting = d.points, d.waiting
	if len(d.waiting) > 0 {
		return res, nil
	}
	res.Bound, res.BoundOf = d.bound.String(), d.boundOf
	victims := segname.CleanupSet(names, d.bound)
	for _, n := range victims {
		res.Removed = append(res.Removed, n.String())
	}
	if opt.DryRun {
		return res, nil
	}
	for i, n := range victims {
		if err := os.Remove(l.path(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			res.Removed = res.Removed[:i]
			return res, classify(err, "removing "+l.path(n))
		}
	}
	removeStaleTemps(l.walDir(), time.Hour)
	removeStaleTemps(l.restartPointsDir(), time.Hour)
	return res, classify(syncDir(l.walDir()), "syncing "+l.walDir())
}

func whoOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type cleanupDecision struct {
	bound   segname.Name
	boundOf string
	waiting []string
	points  []RestartPoint
}

// decideCleanup picks the restart point to clean below: the oldest of the
// caller's and of every counted record; nothing while a standby that must
// report has not. Pure.
func decideCleanup(caller segname.Name, opt CleanupOptions, records map[string]recorded) cleanupDecision {
	retired := map[string]bool{}
	for _, s := range opt.Retired {
		retired[s] = true
	}
	listed := map[string]bool{}
	for _, s := range opt.Standbys {
		listed[s] = true
	}
	d := cleanupDecision{bound: caller, boundOf: whoOr(opt.As, "the OLDEST given")}
	if opt.As != "" {
		d.boundOf = opt.As + "'s"
	}
	names := make([]string, 0, len(records))
	for s := range records {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		if s == opt.As {
			continue // the caller's point is this report
		}
		r := records[s]
		counted := !retired[s] && (!opt.OnlyStandbys || listed[s])
		d.points = append(d.points, RestartPoint{Standby: s, Point: r.point.String(), Reported: r.at, Counted: counted})
		if counted && segname.Before(r.point, d.bound) {
			d.bound, d.boundOf = r.point, s+"'s"
		}
	}
	for _, s := range opt.Standbys {
		if _, ok := records[s]; !ok && s != opt.As && !retired[s] && !hasString(d.waiting, s) {
			d.waiting = append(d.waiting, s)
		}
	}
	sort.Strings(d.waiting)
	return d
}

func hasString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

type recorded struct {
	point segname.Name
	at    time.Time
}

func (l *Local) restartPointsDir() string { return filepath.Join(l.Root, RestartPointsDir) }

// writeRestartPoint records standby's restart point durably (temp file,
// fsync, rename over the old record, fsync of the directory).
func (l *Local) writeRestartPoint(standby string, p segname.Name) error {
	dir := l.restartPointsDir()
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return classify(err, "creating "+dir)
	}
	return classify(writeDurable(dir, standby, []byte(p.String()+"\n"), true), "recording the restart point of "+standby+" in "+dir)
}

// maxRecord bounds what is read of a record: a valid one is 25 bytes.
const maxRecord = 64

// readRestartPoints reads every record. A damaged record stops cleanup
// (its standby's needs are unknown) unless it is skip's own, which the
// caller has just replaced or is about to.
func (l *Local) readRestartPoints(skip string) (map[string]recorded, error) {
	dir := l.restartPointsDir()
	out := map[string]recorded{}
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, classify(err, "listing "+dir)
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) || ValidStandbyName(name) != nil {
			continue // an interrupted write, or no standby's record
		}
		p, at, err := readRecord(filepath.Join(dir, name))
		if err != nil {
			if name == skip {
				continue
			}
			return nil, Errorf(KindCorrupt, "restart point record %s is damaged (%v): nothing is removed while %s's restart point is unknown; delete the record, and %s writes it again at its next restart point",
				filepath.Join(dir, name), err, name, name)
		}
		out[name] = recorded{p, at}
	}
	return out, nil
}

// readRecord parses one record strictly: a regular file (never through a
// symlink) holding exactly one segment name and a newline.
func readRecord(path string) (segname.Name, time.Time, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return segname.Name{}, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return segname.Name{}, time.Time{}, err
	}
	if !st.Mode().IsRegular() {
		return segname.Name{}, time.Time{}, fmt.Errorf("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return segname.Name{}, time.Time{}, err
	}
	s, ok := strings.CutSuffix(string(b), "\n")
	if !ok || len(b) > maxRecord {
		return segname.Name{}, time.Time{}, fmt.Errorf("want one segment name and a newline, found %d bytes", len(b))
	}
	n, err := segname.Parse(s)
	if err != nil {
		return segname.Name{}, time.Time{}, err
	}
	if n.Kind != segname.Segment {
		return segname.Name{}, time.Time{}, fmt.Errorf("%s is a %s name, not a segment's", s, n.Kind)
	}
	return n, st.ModTime(), nil
}
