package ssh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pgwarm/pgwarm/host"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
)

// The file operations are shell scripts over the session (not SFTP), so
// that they run through sudo like everything else. They use only POSIX sh
// and coreutils, which every Debian (even minbase) and RHEL host has.

// exitNotExist is the status the scripts use for "no such file"; no tool
// they call exits 66 by itself.
const exitNotExist = 66

// fileErr maps a failed script to an error: fs.ErrNotExist for
// exitNotExist, fs.ErrPermission when the tool said so.
func fileErr(p string, res host.Result) error {
	msg := strings.TrimSpace(host.FirstLine(res.Stderr))
	switch {
	case res.ExitCode == exitNotExist && msg != "":
		return fmt.Errorf("%s: %s: %w", p, msg, fs.ErrNotExist)
	case res.ExitCode == exitNotExist:
		return fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	case strings.Contains(msg, "Permission denied") || strings.Contains(msg, "Operation not permitted"):
		return fmt.Errorf("%s: %w (%s)", p, fs.ErrPermission, msg)
	case msg == "":
		return fmt.Errorf("%s: exit status %d", p, res.ExitCode)
	default:
		return fmt.Errorf("%s: %s", p, msg)
	}
}

// fileScript runs an internal script and turns any failure into a *Error.
func (h *sshHost) fileScript(ctx context.Context, op, p, script string, stdin io.Reader) (host.Result, error) {
	res, err := h.run(ctx, script, stdin, 0)
	if err != nil {
		return res, &host.Error{Host: h.name, Op: op, Err: fmt.Errorf("%s: %w", p, err)}
	}
	if !res.OK() {
		return res, &host.Error{Host: h.name, Op: op, Err: fileErr(p, res)}
	}
	return res, nil
}

func (h *sshHost) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := host.CheckPath(p); err != nil {
		return nil, &host.Error{Host: h.name, Op: "read", Err: err}
	}
	q := host.Quote(p)
	res, err := h.fileScript(ctx, "read", p, fmt.Sprintf("LC_ALL=C; export LC_ALL; [ -e %s ] || exit %d; exec cat -- %s", q, exitNotExist, q), nil)
	if err != nil {
		return nil, err
	}
	return res.Stdout, nil
}

func (h *sshHost) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner string) error {
	return h.write(ctx, "write", p, bytes.NewReader(data), "", mode, owner)
}

func (h *sshHost) Upload(ctx context.Context, localPath, p string, mode fs.FileMode, owner string) error {
	f, err := os.Open(localPath)
	if err != nil {
		return &host.Error{Host: h.name, Op: "upload", Err: err}
	}
	defer f.Close()
	// Hash first, then stream: the far side refuses to install a file
	// whose bytes differ from these (a truncated or corrupted transfer).
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return &host.Error{Host: h.name, Op: "upload", Err: fmt.Errorf("%s: %w", localPath, err)}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return &host.Error{Host: h.name, Op: "upload", Err: fmt.Errorf("%s: %w", localPath, err)}
	}
	return h.write(ctx, "upload", p, f, hex.EncodeToString(sum.Sum(nil)), mode, owner)
}

// writeScript replaces p atomically: a temp file in the same directory,
// content from stdin, sha256 check (when wantSum is set), fsync, chown
// before chmod (chown clears set-id bits), rename, fsync of the directory.
func writeScript(p string, wantSum string, mode fs.FileMode, owner string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "set -e; LC_ALL=C; export LC_ALL; p=%s; d=%s\n", host.Quote(p), host.Quote(path.Dir(p)))
	fmt.Fprintf(&b, "[ -d \"$d\" ] || { echo \"directory $d does not exist\" >&2; exit %d; }\n", exitNotExist)
	b.WriteString("t=$(mktemp \"$d/.pgwarm.XXXXXXXX\")\n")
	b.WriteString("trap 'rm -f -- \"$t\"' EXIT\n")
	b.WriteString("cat > \"$t\"\n")
	if wantSum != "" {
		fmt.Fprintf(&b, "s=$(sha256sum < \"$t\"); s=${s%%%% *}; [ \"$s\" = %s ] || { echo \"sha256 mismatch after transfer: got $s, want %s\" >&2; exit 1; }\n", wantSum, wantSum)
	}
	b.WriteString("sync -- \"$t\"\n")
	if owner != "" {
		fmt.Fprintf(&b, "chown %s \"$t\"\n", host.Quote(owner))
	}
	fmt.Fprintf(&b, "chmod %s \"$t\"\n", octalMode(mode))
	b.WriteString("mv -fT -- \"$t\" \"$p\"\n")
	b.WriteString("trap - EXIT\n")
	b.WriteString("sync -- \"$d\"\n")
	return b.String()
}

func (h *sshHost) write(ctx context.Context, op, p string, data io.Reader, wantSum string, mode fs.FileMode, owner string) error {
	if err := host.CheckPath(p); err != nil {
		return &host.Error{Host: h.name, Op: op, Err: err}
	}
	if err := host.CheckOwner(owner); err != nil {
		return &host.Error{Host: h.name, Op: op, Err: fmt.Errorf("%s: %w", p, err)}
	}
	_, err := h.fileScript(ctx, op, p, writeScript(p, wantSum, mode, owner), data)
	return err
}

// octalMode is chmod's notation for mode, set-id and sticky bits included.
func octalMode(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}

func (h *sshHost) Stat(ctx context.Context, p string) (host.FileInfo, error) {
	if err := host.CheckPath(p); err != nil {
		return host.FileInfo{}, &host.Error{Host: h.name, Op: "stat", Err: err}
	}
	q := host.Quote(p)
	script := fmt.Sprintf("LC_ALL=C; export LC_ALL; [ -e %s ] || [ -L %s ] || exit %d; exec stat -c '%%s %%f %%U %%G' -- %s", q, q, exitNotExist, q)
	res, err := h.fileScript(ctx, "stat", p, script, nil)
	if err != nil {
		return host.FileInfo{}, err
	}
	fi, err := parseStat(p, string(res.Stdout))
	if err != nil {
		return host.FileInfo{}, &host.Error{Host: h.name, Op: "stat", Err: err}
	}
	return fi, nil
}

// parseStat reads `stat -c '%s %f %U %G'`: size, raw mode in hex, owner,
// group.
func parseStat(p, out string) (host.FileInfo, error) {
	f := strings.Fields(out)
	if len(f) != 4 {
		return host.FileInfo{}, fmt.Errorf("%s: unexpected stat output %q", p, out)
	}
	size, err1 := strconv.ParseInt(f[0], 10, 64)
	raw, err2 := strconv.ParseUint(f[1], 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return host.FileInfo{}, fmt.Errorf("%s: unexpected stat output %q: %w", p, out, err)
	}
	mode := fs.FileMode(raw & 0o777)
	if raw&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if raw&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if raw&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch raw & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	}
	return host.FileInfo{Path: p, Size: size, Mode: mode, Owner: f[2], Group: f[3], IsDir: mode.IsDir()}, nil
}

func (h *sshHost) SHA256(ctx context.Context, p string) (string, error) {
	if err := host.CheckPath(p); err != nil {
		return "", &host.Error{Host: h.name, Op: "sha256", Err: err}
	}
	q := host.Quote(p)
	script := fmt.Sprintf("LC_ALL=C; export LC_ALL; [ -e %s ] || exit %d; [ ! -d %s ] || { echo 'is a directory' >&2; exit 1; }; exec sha256sum < %s", q, exitNotExist, q, q)
	res, err := h.fileScript(ctx, "sha256", p, script, nil)
	if err != nil {
		return "", err
	}
	sum, _, _ := strings.Cut(strings.TrimSpace(string(res.Stdout)), " ")
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 64 {
		return "", &host.Error{Host: h.name, Op: "sha256", Err: fmt.Errorf("%s: unexpected sha256sum output %q", p, res.Stdout)}
	}
	return sum, nil
}
