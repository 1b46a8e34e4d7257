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
	"strings"

	"github.com/pgwarm/pgwarm/wal/archive"
)

// Rights is the set of operations one key may run.
type Rights map[string]bool

// ParseRights reads --allow, e.g. "push" or "get,cleanup". Reading
// (get) implies list and verify: whoever can fetch every file learns
// nothing more from their names and checksums. push alone does not.
func ParseRights(s string) (Rights, error) {
	r := Rights{}
	for _, op := range strings.Split(s, ",") {
		op = strings.TrimSpace(op)
		if op == "" {
			continue
		}
		if !slices.Contains(archive.Ops, op) {
			return nil, fmt.Errorf("--allow: unknown operation %q (known: %s)", op, strings.Join(archive.Ops, ","))
		}
		r[op] = true
	}
	if len(r) == 0 {
		return nil, fmt.Errorf("--allow must name at least one of %s", strings.Join(archive.Ops, ","))
	}
	if r["get"] {
		r["list"], r["verify"] = true, true
	}
	return r, nil
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
		return nil, "", archive.Errorf(archive.KindDenied, "the archive host cannot read its rights file: %w; nothing is allowed until it can (pgwarm apply writes it)", err)
	}
	all, err := ParseRightsFile(string(b))
	if err != nil {
		return nil, "", archive.Errorf(archive.KindDenied, "rights file %s on the archive host: %v; nothing is allowed until it is fixed (pgwarm apply rewrites it)", cfg.RightsFile, err)
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
	if !allow[req.Op] {
		who, grants := "this ssh key", keys(allow)
		if cfg.As != "" {
			who = cfg.As + "'s ssh key"
		}
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
		names, err := store.Cleanup(ctx, req.Name, req.DryRun)
		if err != nil {
			return nil, err
		}
		ss := make([]string, 0, len(names))
		for _, n := range names {
			ss = append(ss, n.String())
		}
		return json.Marshal(ss)
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
		if r[op] {
			out = append(out, op)
		}
	}
	return strings.Join(out, ",")
}
