// Package serve is the far end of ssh:// archives: `pgwarm-wal serve` runs
// as an authorized_keys forced command, reads the requested operation from
// SSH_ORIGINAL_COMMAND, checks it against the rights of that key, and runs
// it on the local directory backend.
//
// A key's rights come either from the forced command (--allow) or from a
// rights file (--rights FILE --as NAME) read afresh for every request:
// clients keep one shared ssh connection open, and sshd fixes a forced
// command when that connection logs in, so only a file can change the
// rights of connections that are already open (pgwarm promote does).
package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
)

// Rights is what one key may run: its operations, and for push the
// timeline it may write.
type Rights struct {
	Ops map[string]bool
	// Timeline is T of push@T: the key may add segments and backup
	// history files of timeline T, the history file of T, and the
	// .partial its parent timeline ends with (what a just-promoted primary
	// archives). 0 for a bare push, as rights files written before
	// timelines were named: every timeline's segments, no history file.
	Timeline uint32
}

// Allows reports whether op is among the rights.
func (r Rights) Allows(op string) bool { return r.Ops[op] }

// ParseRights reads --allow, e.g. "push@1" or "get,cleanup". Reading
// (get) implies list and verify: whoever can fetch every file learns
// nothing more from their names and checksums. push alone does not.
func ParseRights(s string) (Rights, error) {
	r := Rights{Ops: map[string]bool{}}
	for _, op := range strings.Split(s, ",") {
		op = strings.TrimSpace(op)
		if op == "" {
			continue
		}
		if t, ok := strings.CutPrefix(op, "push@"); ok {
			tl, err := strconv.ParseUint(t, 10, 32)
			if err != nil || tl == 0 || t[0] == '0' {
				return Rights{}, fmt.Errorf("--allow: %q: push@T needs a timeline T of 1 or more in decimal, e.g. push@1", op)
			}
			op, r.Timeline = "push", uint32(tl)
		} else if !slices.Contains(archive.Ops, op) {
			return Rights{}, fmt.Errorf("--allow: unknown operation %q (known: %s, push@TIMELINE)", op, strings.Join(archive.Ops, ","))
		}
		if op == "push" && r.Ops["push"] {
			return Rights{}, fmt.Errorf("--allow: push is named twice: a key writes one timeline")
		}
		r.Ops[op] = true
	}
	if len(r.Ops) == 0 {
		return Rights{}, fmt.Errorf("--allow must name at least one of %s", strings.Join(archive.Ops, ","))
	}
	if r.Ops["get"] {
		r.Ops["list"], r.Ops["verify"] = true, true
	}
	return r, nil
}

// PushAllowed decides whether rights r may push n. parent is the parent
// timeline of r.Timeline from its archived history file, 0 when that is
// not archived (yet). Pure: the refusal says why, the caller who and how
// to fix it.
//
// A primary on timeline T writes the history file of T and no other, and
// no file of a later timeline: storing the history file (or segments) of
// the next timeline ahead of the real promotion would make the real one
// conflict forever, so that is what push@T prevents. Of earlier
// timelines it writes the .partial that ends its parent's, once, at its
// promotion, and whatever its pg_wal still has marked .ready: a primary
// rewound from another and then promoted (pgwarm's drill) archives its
// old timeline's unarchived segments first, and PostgreSQL's archiver
// goes no further until they are stored. Segments never replace others,
// and a timeline that branched off is only read up to its switch point,
// so an earlier timeline's segment can take no WAL from anyone.
func PushAllowed(r Rights, n segname.Name, parent uint32) error {
	t := r.Timeline
	switch {
	case t == 0 && n.Kind == segname.History:
		return fmt.Errorf("its push names no timeline (push@T), so it may not add timeline history files")
	case t == 0:
		return nil
	case n.Kind == segname.Partial && n.TLI >= t:
		return fmt.Errorf("it writes timeline %d, whose primary archives .partial files only of the timeline it branched from", t)
	case n.Kind == segname.Partial && parent != 0 && n.TLI != parent:
		return fmt.Errorf("it writes timeline %d, which branched from timeline %d (its archived history file), not %d", t, parent, n.TLI)
	case n.Kind == segname.History && n.TLI != t:
		return fmt.Errorf("it may write only timeline %d, and %s is of timeline %d", t, n, n.TLI)
	case n.TLI > t:
		return fmt.Errorf("it may write only timeline %d (and files left over from earlier ones), and %s is of timeline %d", t, n, n.TLI)
	}
	return nil
}

// ParseRightsFile reads a rights file: one "NAME OPERATIONS" line per key
// (OPERATIONS as for --allow), blank lines and # comments ignored. Pure.
func ParseRightsFile(content string) (map[string]Rights, error) {
	out := map[string]Rights{}
	for i, line := range strings.Split(content, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want NAME OPERATIONS, got %q", i+1, strings.TrimSpace(line))
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("line %d: %s is listed twice", i+1, f[0])
		}
		r, err := ParseRights(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out[f[0]] = r
	}
	return out, nil
}

// Config is one serve invocation.
type Config struct {
	Root          string
	Allow         Rights // fixed rights; used when RightsFile is empty
	RightsFile    string // rights read per request, the line of As
	As            string
	RequireMarker string // enforced in addition to the client's own
	// ReadFile reads RightsFile; os.ReadFile when nil.
	ReadFile func(string) ([]byte, error)
}

// rights returns what this key may do now, and how to name where that
// was decided in a refusal.
func (cfg Config) rights() (Rights, string, error) {
	if cfg.RightsFile == "" {
		return cfg.Allow, "serve --allow", nil
	}
	read := cfg.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	b, err := read(cfg.RightsFile)
	if err != nil {
		return Rights{}, "", archive.Errorf(archive.KindDenied, "the archive host cannot read its rights file: %w; nothing is allowed until it can (pgwarm apply writes it)", err)
	}
	all, err := ParseRightsFile(string(b))
	if err != nil {
		return Rights{}, "", archive.Errorf(archive.KindDenied, "rights file %s on the archive host: %v; nothing is allowed until it is fixed (pgwarm apply rewrites it)", cfg.RightsFile, err)
	}
	return all[cfg.As], cfg.RightsFile, nil // no line: nothing allowed
}

// Serve handles exactly one request. Failures are reported to the client
// as an Err frame (so they keep their exit code on the far side) and also
// returned, for the server's own log.
func Serve(ctx context.Context, cfg Config, command string, in io.Reader, out io.Writer) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	payload, err := handle(ctx, cfg, command, bufio.NewReader(in))
	if err != nil {
		if werr := archive.WriteError(w, err); werr != nil {
			return fmt.Errorf("%w (and the client went away: %v)", err, werr)
		}
		return err
	}
	return archive.WriteFrame(w, archive.FrameOK, payload)
}

func handle(ctx context.Context, cfg Config, command string, in io.Reader) ([]byte, error) {
	req, err := archive.ParseRequest(strings.TrimSpace(command))
	if err != nil {
		return nil, err
	}
	allow, where, err := cfg.rights()
	if err != nil {
		return nil, err
	}
	who := "this ssh key"
	if cfg.As != "" {
		who = cfg.As + "'s ssh key"
	}
	if !allow.Allows(req.Op) {
		grants := keys(allow)
		if grants == "" {
			grants = "nothing"
		}
		return nil, archive.Errorf(archive.KindDenied, "operation %q is not allowed for %s (%s grants only %s)", req.Op, who, where, grants)
	}
	root := filepath.Clean(cfg.Root)
	if req.Root != "" && filepath.Clean(req.Root) != root {
		return nil, archive.Errorf(archive.KindBadInput, "client asked for archive %s but this key serves %s; fix the archive URL or the forced command", req.Root, root)
	}
	marker := cfg.RequireMarker
	if req.Marker != "" {
		if marker != "" && marker != req.Marker {
			// Both must exist: check the server's here, the client's in Local.
			if err := archive.NewLocal(root, archive.Options{RequireMarker: marker}).CheckRoot(); err != nil {
				return nil, err
			}
		}
		marker = req.Marker
	}
	store := archive.NewLocal(root, archive.Options{RequireMarker: marker})
	switch req.Op {
	case "push":
		if err := checkTimeline(ctx, store, allow, req.Name, who, where); err != nil {
			return nil, err
		}
		// The bytes cross a network from a client we do not trust: the
		// frame is bounded by what the name and the archive's segment size
		// allow before it is read, and checked completely before it can
		// become the archived copy.
		meta, err := store.ReadMeta()
		if err != nil {
			return nil, err
		}
		typ, file, err := archive.ReadFileFrame(in, req.Name, meta.SegSizeOrZero())
		if archive.KindOf(err) == archive.KindCorrupt {
			return nil, archive.Errorf(archive.KindCorrupt, "push of %s: %w; nothing stored", req.Name, err)
		}
		if err != nil || typ != archive.FrameData {
			return nil, archive.Errorf(archive.KindBadInput, "push of %s: no complete data frame from the client (%v); nothing stored", req.Name, err)
		}
		if v := archive.CheckFile(req.Name, file, meta.SegSizeOrZero()); v.Err != nil {
			return nil, archive.Errorf(archive.KindCorrupt, "push of %s: received file fails its checks, nothing stored: %w", req.Name, v.Err)
		}
		return nil, store.Put(ctx, req.Name, file)
	case "get":
		return store.Get(ctx, req.Name, req.Wait)
	case "cleanup":
		return cleanup(ctx, cfg, req, store)
	case "list":
		ls, err := store.List(ctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ls)
	case "verify":
		r, err := store.Verify(ctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(r)
	}
	return nil, archive.Errorf(archive.KindBadInput, "unknown operation %q", req.Op)
}

func keys(r Rights) string {
	var out []string
	for _, op := range archive.Ops {
		if r.Ops[op] {
			if op == "push" && r.Timeline != 0 {
				op += "@" + strconv.FormatUint(uint64(r.Timeline), 10)
			}
			out = append(out, op)
		}
	}
	return strings.Join(out, ",")
}

// checkTimeline refuses a push of n outside the key's timeline
// (PushAllowed), before the file is read. For a .partial it reads the
// history file of the key's timeline from the archive, when there, for
// the parent the .partial must end.
func checkTimeline(ctx context.Context, store *archive.Local, r Rights, n segname.Name, who, where string) error {
	var parent uint32
	if r.Timeline != 0 && n.Kind == segname.Partial && n.TLI < r.Timeline {
		h := segname.Name{Kind: segname.History, TLI: r.Timeline}
		file, err := store.Get(ctx, h, 0)
		switch {
		case archive.KindOf(err) == archive.KindNotFound:
		case err != nil:
			return err
		default:
			content, _, err := archive.DecodeFor(h, file, 0)
			var es []archive.HistoryEntry
			if err == nil {
				es, err = archive.ParseHistory(h.TLI, content)
			}
			if err != nil {
				return archive.Errorf(archive.KindCorrupt, "push of %s: the archived %s, which says where timeline %d branched, is damaged: %v", n, h, r.Timeline, err)
			}
			parent = es[len(es)-1].Parent
		}
	}
	if err := PushAllowed(r, n, parent); err != nil {
		return archive.Errorf(archive.KindDenied, "push of %s is not allowed for %s: %v (%s grants %s; `pgwarm promote` moves push to the promoted host and its new timeline, `pgwarm apply` writes the primary's current one)",
			n, who, err, where, keys(r))
	}
	return nil
}
