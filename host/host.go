// Package host is pgwarm's one narrow way to act on a machine: run a command,
// read, write, stat and hash files, upload a binary, and dial a TCP address
// from the host's side (so pgx reaches PostgreSQL as a local client there).
//
// Two implementations satisfy it: SSH (the real one, over goph) and Fake (an
// in-memory machine for unit tests of pure logic). One conformance suite in
// host/hosttest runs against both.
package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"time"
)

// Host is a machine pgwarm acts on. Every method is safe for concurrent use.
// Paths are absolute paths on the host. When the connection's user is not
// root and the inventory says `become: sudo`, every operation runs through
// `sudo -n`.
type Host interface {
	// Name is the inventory name of the host; every error and log line about
	// the host starts with it.
	Name() string

	// Run executes a shell command (interpreted by /bin/sh on the host).
	// A non-zero exit status is not an error: it is reported in Result.
	// err is non-nil only when the command could not be run at all
	// (connection lost, sudo refused, context cancelled).
	Run(ctx context.Context, cmd Cmd) (Result, error)

	// ReadFile returns the content of path. A missing file gives an error
	// for which errors.Is(err, fs.ErrNotExist) holds.
	ReadFile(ctx context.Context, path string) ([]byte, error)

	// WriteFile replaces path atomically: temp file in the same directory,
	// fsync, chown/chmod, rename, fsync of the directory. Owner is
	// "user" or "user:group"; empty leaves the file to the effective user
	// (root under `become: sudo`). A missing directory is fs.ErrNotExist.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode, owner string) error

	// Stat describes path. A missing path gives an error for which
	// errors.Is(err, fs.ErrNotExist) holds.
	Stat(ctx context.Context, path string) (FileInfo, error)

	// SHA256 returns the lower-case hex sha256 of path's content, or an
	// fs.ErrNotExist error.
	SHA256(ctx context.Context, path string) (string, error)

	// Upload copies a local file (a binary, say) to path atomically with the
	// given mode and owner, and checks the sha256 on the far side.
	Upload(ctx context.Context, localPath, path string, mode fs.FileMode, owner string) error

	// DialContext opens a TCP or unix-socket connection from the host's side,
	// for pgx's Config.DialFunc.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)

	Close() error
}

// Streamer is a Host that can run a command with its stdin and stdout as
// streams, for copies too large to hold in memory (a base backup relayed
// from one host to another through pgwarm). Both the SSH host and Fake
// implement it.
type Streamer interface {
	// RunStream is Run, except that stdin (when not nil; else cmd.Stdin)
	// is copied to the command as it is read and the command's stdout is
	// written to stdout as it arrives; Result.Stdout stays empty. The
	// command runs as Run's would (sudo, its own process group, killed
	// when ctx or cmd.Timeout ends). A caller that abandons stdin or
	// stdout early should close the pipe behind it so that no copy stays
	// blocked.
	RunStream(ctx context.Context, cmd Cmd, stdin io.Reader, stdout io.Writer) (Result, error)
}

// Cmd is a command to run. Command is shell text; use Quote for every
// argument that comes from outside.
type Cmd struct {
	Command string
	Stdin   []byte        // optional
	Timeout time.Duration // 0: no timeout beyond ctx
}

// Result is what a command left behind.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// OK reports a zero exit status.
func (r Result) OK() bool { return r.ExitCode == 0 }

// FileInfo is the part of stat(2) pgwarm needs.
type FileInfo struct {
	Path  string
	Size  int64
	Mode  fs.FileMode // permission bits plus fs.ModeDir / fs.ModeSymlink
	Owner string
	Group string
	IsDir bool
}

// Error is an error about one host; its message starts with the host name
// so that the operator sees at once where it happened.
type Error struct {
	Host string
	Op   string // "connect", "run", "read", "write", "stat", "sha256", "upload", "dial", "close", or "" (see Parallel)
	Err  error
}

func (e *Error) Error() string {
	if e.Op == "" { // e.g. an error from a Parallel callback, already self-explanatory
		return fmt.Sprintf("%s: %v", e.Host, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Host, e.Op, e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

// ErrHostKeyUnknown and ErrHostKeyChanged are the two host-key refusals.
var (
	ErrHostKeyUnknown = errors.New("host key not in known_hosts")
	ErrHostKeyChanged = errors.New("host key CHANGED from the one in known_hosts (possible man-in-the-middle)")
	ErrSudo           = errors.New("sudo -n refused")
)

// CheckRun runs cmd and turns a non-zero exit into an error that carries the
// command's stderr; for steps where any failure is fatal.
func CheckRun(ctx context.Context, h Host, cmd Cmd) (Result, error) {
	res, err := h.Run(ctx, cmd)
	if err != nil {
		return res, err
	}
	if !res.OK() {
		return res, &Error{Host: h.Name(), Op: "run", Err: fmt.Errorf("%q exited %d: %s", cmd.Command, res.ExitCode, FirstLine(res.Stderr))}
	}
	return res, nil
}

// FirstLine is the first line of b, for a one-line message.
func FirstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}
