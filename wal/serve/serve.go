// Package serve is the far end of ssh:// archives: `pgwarm-wal serve` runs
// as an authorized_keys forced command, reads the requested operation from
// SSH_ORIGINAL_COMMAND, checks it against the rights given to that key, and
// runs it on the local directory backend.
package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// Config is one serve invocation.
type Config struct {
	Root          string
	Allow         Rights
	RequireMarker string // enforced in addition to the client's own
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
	if !cfg.Allow[req.Op] {
		return nil, archive.Errorf(archive.KindDenied, "operation %q is not allowed for this ssh key (serve --allow grants only %s)", req.Op, keys(cfg.Allow))
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
		typ, file, err := archive.ReadFrame(in)
		if err != nil || typ != archive.FrameData {
			return nil, archive.Errorf(archive.KindBadInput, "push of %s: no complete data frame from the client (%v); nothing stored", req.Name, err)
		}
		// The bytes crossed a network and a client we do not trust: check
		// them completely before they can become the archived copy.
		if v := archive.CheckFile(req.Name, file); v.Err != nil {
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
