package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
)

// Fake is an in-memory Host for unit tests of pure logic: a file tree
// with modes and owners, a scriptable command handler, and a record of
// every command run. It starts with the directories /, /tmp and /etc.
// Safe for concurrent use.
type Fake struct {
	// Handler answers Run; nil makes every Run fail. It may be set only
	// before the Fake is shared between goroutines.
	Handler func(cmd Cmd) (Result, error)
	// HandlerContext, when set, answers Run instead of Handler and also
	// gets Run's context (Cmd.Timeout included), for handlers that must
	// stop when it ends.
	HandlerContext func(ctx context.Context, cmd Cmd) (Result, error)
	// StreamHandler, when set, answers RunStream with the streams
	// themselves. When it is nil, RunStream reads stdin to its end, asks
	// Run's handler with it as cmd.Stdin and writes the Stdout it returns.
	StreamHandler func(ctx context.Context, cmd Cmd, stdin io.Reader, stdout io.Writer) (Result, error)
	// Dial answers DialContext; nil makes it fail.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// User owns files written with an empty owner ("root" if empty).
	User string

	name   string
	mu     sync.Mutex
	files  map[string]*fakeFile
	cmds   []Cmd
	closed bool
}

type fakeFile struct {
	data  []byte
	mode  fs.FileMode // includes fs.ModeDir for directories
	owner string
	group string
}

// NewFake returns an empty machine called name.
func NewFake(name string) *Fake {
	f := &Fake{name: name, files: map[string]*fakeFile{}}
	for _, d := range []string{"/", "/tmp", "/etc"} {
		f.files[d] = &fakeFile{mode: fs.ModeDir | 0o755, owner: "root", group: "root"}
	}
	f.files["/tmp"].mode = fs.ModeDir | fs.ModeSticky | 0o777
	return f
}

func (f *Fake) Name() string { return f.name }

// MkdirAll creates dir and its parents, like mkdir -p, owned by owner
// ("user[:group]", empty for root).
func (f *Fake) MkdirAll(dir string, mode fs.FileMode, owner string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, g := f.splitOwner(owner)
	for p := path.Clean(dir); ; p = path.Dir(p) {
		if _, ok := f.files[p]; !ok {
			f.files[p] = &fakeFile{mode: fs.ModeDir | mode.Perm(), owner: u, group: g}
		}
		if p == "/" {
			return
		}
	}
}

// SetFile puts a file in place (creating parent directories), bypassing
// the atomic-write rules: test setup.
func (f *Fake) SetFile(p string, data []byte, mode fs.FileMode, owner string) {
	f.MkdirAll(path.Dir(p), 0o755, "")
	f.mu.Lock()
	defer f.mu.Unlock()
	u, g := f.splitOwner(owner)
	f.files[path.Clean(p)] = &fakeFile{data: append([]byte(nil), data...), mode: mode, owner: u, group: g}
}

// Remove deletes p (and everything under it).
func (f *Fake) Remove(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p = path.Clean(p)
	for k := range f.files {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(f.files, k)
		}
	}
}

// Paths lists every file and directory, sorted.
func (f *Fake) Paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.files))
	for k := range f.files {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Commands returns the commands Run was given, in order.
func (f *Fake) Commands() []Cmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Cmd(nil), f.cmds...)
}

func (f *Fake) splitOwner(owner string) (string, string) {
	if owner == "" {
		owner = f.User
	}
	if owner == "" {
		owner = "root"
	}
	u, g, ok := strings.Cut(owner, ":")
	if !ok { // like chown: the group stays the creating user's
		g, _, _ = strings.Cut(f.User, ":")
		if g == "" {
			g = "root"
		}
	}
	return u, g
}

func (f *Fake) err(op string, err error) error { return &Error{Host: f.name, Op: op, Err: err} }

// Run records cmd and asks Handler. Cmd.Timeout and ctx are enforced here:
// a handler that is still busy when they end is abandoned.
func (f *Fake) Run(ctx context.Context, cmd Cmd) (Result, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	h, hc, closed := f.Handler, f.HandlerContext, f.closed
	f.mu.Unlock()
	if closed {
		return Result{}, f.err("run", errors.New("connection closed"))
	}
	if h == nil && hc == nil {
		return Result{}, f.err("run", fmt.Errorf("fake host has no handler for %s", ShortCmd(cmd.Command)))
	}
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return Result{}, f.err("run", CmdError(cmd.Command, err, cmd.Timeout))
	}
	type answer struct {
		res Result
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		var a answer
		if hc != nil {
			a.res, a.err = hc(ctx, cmd)
		} else {
			a.res, a.err = h(cmd)
		}
		ch <- a
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			var he *Error
			if !errors.As(a.err, &he) {
				a.err = f.err("run", a.err)
			}
		}
		return a.res, a.err
	case <-ctx.Done():
		return Result{ExitCode: -1}, f.err("run", CmdError(cmd.Command, ctx.Err(), cmd.Timeout))
	}
}

// RunStream records cmd and asks StreamHandler (see its comment for the
// fallback to Run's handler). ctx and Cmd.Timeout are enforced as in Run.
func (f *Fake) RunStream(ctx context.Context, cmd Cmd, stdin io.Reader, stdout io.Writer) (Result, error) {
	f.mu.Lock()
	sh := f.StreamHandler
	f.mu.Unlock()
	if stdin == nil && cmd.Stdin != nil {
		stdin = bytes.NewReader(cmd.Stdin)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if sh == nil {
		if stdin != nil {
			in, err := io.ReadAll(stdin)
			if err != nil {
				return Result{}, f.err("run", fmt.Errorf("%s: stdin: %w", ShortCmd(cmd.Command), err))
			}
			cmd.Stdin = in
		}
		res, err := f.Run(ctx, cmd)
		if len(res.Stdout) > 0 {
			if _, werr := stdout.Write(res.Stdout); werr != nil && err == nil {
				err = f.err("run", fmt.Errorf("%s: stdout: %w", ShortCmd(cmd.Command), werr))
			}
		}
		res.Stdout = nil
		return res, err
	}
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return Result{}, f.err("run", errors.New("connection closed"))
	}
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return Result{}, f.err("run", CmdError(cmd.Command, err, cmd.Timeout))
	}
	res, err := sh(ctx, cmd, stdin, stdout)
	res.Stdout = nil
	if ctx.Err() != nil {
		return Result{ExitCode: -1, Stderr: res.Stderr}, f.err("run", CmdError(cmd.Command, ctx.Err(), cmd.Timeout))
	}
	if err != nil {
		var he *Error
		if !errors.As(err, &he) {
			err = f.err("run", err)
		}
	}
	return res, err
}

func (f *Fake) lookup(op, p string) (*fakeFile, error) {
	if err := CheckPath(p); err != nil {
		return nil, f.err(op, err)
	}
	if f.closed {
		return nil, f.err(op, errors.New("connection closed"))
	}
	file, ok := f.files[path.Clean(p)]
	if !ok {
		return nil, f.err(op, fmt.Errorf("%s: %w", p, fs.ErrNotExist))
	}
	return file, nil
}

func (f *Fake) ReadFile(ctx context.Context, p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, err := f.lookup("read", p)
	if err != nil {
		return nil, err
	}
	if file.mode.IsDir() {
		return nil, f.err("read", fmt.Errorf("%s: is a directory", p))
	}
	return append([]byte(nil), file.data...), nil
}

func (f *Fake) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner string) error {
	return f.write("write", p, data, mode, owner)
}

func (f *Fake) write(op, p string, data []byte, mode fs.FileMode, owner string) error {
	if err := CheckPath(p); err != nil {
		return f.err(op, err)
	}
	if err := CheckOwner(owner); err != nil {
		return f.err(op, fmt.Errorf("%s: %w", p, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return f.err(op, errors.New("connection closed"))
	}
	dir, ok := f.files[path.Dir(path.Clean(p))]
	if !ok {
		return f.err(op, fmt.Errorf("%s: directory %s does not exist: %w", p, path.Dir(p), fs.ErrNotExist))
	}
	if !dir.mode.IsDir() {
		return f.err(op, fmt.Errorf("%s: not a directory", path.Dir(p)))
	}
	if old, ok := f.files[path.Clean(p)]; ok && old.mode.IsDir() {
		return f.err(op, fmt.Errorf("%s: is a directory", p))
	}
	u, g := f.splitOwner(owner)
	f.files[path.Clean(p)] = &fakeFile{data: append([]byte(nil), data...), mode: mode &^ fs.ModeType, owner: u, group: g}
	return nil
}

func (f *Fake) Stat(ctx context.Context, p string) (FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, err := f.lookup("stat", p)
	if err != nil {
		return FileInfo{}, err
	}
	size := int64(len(file.data))
	if file.mode.IsDir() {
		size = 4096
	}
	return FileInfo{Path: p, Size: size, Mode: file.mode, Owner: file.owner, Group: file.group, IsDir: file.mode.IsDir()}, nil
}

func (f *Fake) SHA256(ctx context.Context, p string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, err := f.lookup("sha256", p)
	if err != nil {
		return "", err
	}
	if file.mode.IsDir() {
		return "", f.err("sha256", fmt.Errorf("%s: is a directory", p))
	}
	sum := sha256.Sum256(file.data)
	return hex.EncodeToString(sum[:]), nil
}

func (f *Fake) Upload(ctx context.Context, localPath, p string, mode fs.FileMode, owner string) error {
	data, err := os.ReadFile(localPath)
	if err != nil {
		return f.err("upload", err)
	}
	return f.write("upload", p, data, mode, owner)
}

func (f *Fake) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	d := f.Dial
	f.mu.Unlock()
	if d == nil {
		return nil, f.err("dial", fmt.Errorf("%s %s: fake host has no Dial", network, addr))
	}
	c, err := d(ctx, network, addr)
	if err != nil {
		return nil, f.err("dial", fmt.Errorf("%s %s: %w", network, addr, err))
	}
	return c, nil
}

// Close makes every later call fail, like a closed connection.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

var _ Host = (*Fake)(nil)
var _ Streamer = (*Fake)(nil)
