// Package hosttest is the conformance suite every host.Host must pass:
// the in-memory host.Fake and the real SSH host alike.
package hosttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/host"
)

// Run runs the suite. newHost must return a host that acts as root
// (directly or through `become: sudo`), has /bin/sh, /tmp and the users
// root, nobody and daemon (group daemon). The suite works under /tmp with
// names unique to the run and removes them afterwards.
func Run(t *testing.T, newHost func(t *testing.T) host.Host) {
	h := newHost(t)
	base := "/tmp/pgwarm-hosttest-" + randHex(6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Run(ctx, host.Cmd{Command: "rm -rf " + host.Quote(base) + "*"})
	})
	t.Run("Run", func(t *testing.T) { testRun(t, h, base) })
	t.Run("Quoting", func(t *testing.T) { testQuoting(t, h) })
	t.Run("Timeout", func(t *testing.T) { testTimeout(t, h, base) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("Files", func(t *testing.T) { testFiles(t, h, base) })
	t.Run("NotExist", func(t *testing.T) { testNotExist(t, h, base) })
	t.Run("Upload", func(t *testing.T) { testUpload(t, h, base) })
	t.Run("Stream", func(t *testing.T) { testStream(t, h) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // loaded CI machines are slow
	t.Cleanup(cancel)
	return ctx
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func mustRun(t *testing.T, h host.Host, cmd host.Cmd) host.Result {
	t.Helper()
	res, err := h.Run(ctxT(t), cmd)
	if err != nil {
		t.Fatalf("Run(%q): %v", cmd.Command, err)
	}
	return res
}

func testRun(t *testing.T, h host.Host, base string) {
	t.Run("separates stdout, stderr and exit status", func(t *testing.T) {
		res := mustRun(t, h, host.Cmd{Command: "printf out; printf err >&2; exit 3"})
		if string(res.Stdout) != "out" || string(res.Stderr) != "err" || res.ExitCode != 3 || res.OK() {
			t.Fatalf("got stdout %q stderr %q exit %d, want out, err, 3", res.Stdout, res.Stderr, res.ExitCode)
		}
	})
	t.Run("success", func(t *testing.T) {
		res := mustRun(t, h, host.Cmd{Command: "true"})
		if !res.OK() || len(res.Stdout) != 0 || len(res.Stderr) != 0 {
			t.Fatalf("got %+v, want exit 0 and no output", res)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		in := make([]byte, 300_000)
		rand.Read(in)
		res := mustRun(t, h, host.Cmd{Command: "cat", Stdin: in})
		if !bytes.Equal(res.Stdout, in) || !res.OK() {
			t.Fatalf("cat echoed %d bytes (exit %d), want the %d given", len(res.Stdout), res.ExitCode, len(in))
		}
	})
	t.Run("no stdin is EOF", func(t *testing.T) {
		res := mustRun(t, h, host.Cmd{Command: "wc -c", Timeout: 20 * time.Second})
		if strings.TrimSpace(string(res.Stdout)) != "0" {
			t.Fatalf("wc -c without stdin printed %q, want 0", res.Stdout)
		}
	})
	t.Run("multi-line script", func(t *testing.T) {
		res := mustRun(t, h, host.Cmd{Command: "x=1\nif [ \"$x\" = 1 ]; then\n  echo one\nfi\necho \"two\"'s'"})
		if string(res.Stdout) != "one\ntwos\n" {
			t.Fatalf("got %q", res.Stdout)
		}
	})
	t.Run("CheckRun", func(t *testing.T) {
		_, err := host.CheckRun(ctxT(t), h, host.Cmd{Command: "echo broken pipe >&2; exit 4"})
		var he *host.Error
		if !errors.As(err, &he) || he.Host != h.Name() || !strings.Contains(err.Error(), "exited 4: broken pipe") {
			t.Fatalf("CheckRun error = %v, want a *host.Error for %s with exit 4 and stderr", err, h.Name())
		}
	})
}

// hostile are strings that break naive quoting at some layer (login
// shell, sudo, sh -c).
var hostile = []string{
	"",
	"plain",
	"it's",
	`double "quoted"`,
	"$(echo INJECTED)",
	"`echo INJECTED`",
	"; echo INJECTED",
	"a && echo INJECTED || echo INJECTED",
	"line1\nline2\n",
	"tab\there",
	`back\slash\\`,
	"$HOME ${PATH} $0 $1 $@ $$",
	"* ? [a-z] ~",
	"-n",
	"--",
	"'\"'\"'",
	"é ∑ 日本",
	"> /tmp/pgwarm-INJECTED <",
	"| cat",
	"\\'",
}

func testQuoting(t *testing.T, h host.Host) {
	for i, s := range hostile {
		t.Run(fmt.Sprintf("%02d", i), func(t *testing.T) {
			res := mustRun(t, h, host.Cmd{Command: "printf '%s' " + host.Quote(s)})
			if string(res.Stdout) != s || !res.OK() {
				t.Fatalf("printf of %q gave %q (exit %d, stderr %q)", s, res.Stdout, res.ExitCode, res.Stderr)
			}
		})
	}
	t.Run("Join", func(t *testing.T) {
		res := mustRun(t, h, host.Cmd{Command: host.Join(append([]string{"printf", "[%s]"}, hostile...)...)})
		var want strings.Builder
		for _, s := range hostile {
			want.WriteString("[" + s + "]")
		}
		if string(res.Stdout) != want.String() {
			t.Fatalf("Join: got %q, want %q", res.Stdout, want.String())
		}
	})
	t.Run("command text is passed verbatim", func(t *testing.T) {
		// The command itself (not an argument) has every kind of quote.
		res := mustRun(t, h, host.Cmd{Command: `a='s q'; b="d $a"; printf '%s|%s|%s' "$a" "$b" "$(echo sub)"; echo ' ` + "`x`" + `'`})
		if want := "s q|d s q|sub `x`\n"; string(res.Stdout) != want {
			t.Fatalf("got %q, want %q", res.Stdout, want)
		}
	})
}

func testTimeout(t *testing.T, h host.Host, base string) {
	// The commands outlive their timeout by far; "[p]gwarm" finds them in
	// /proc without finding the search itself.
	tag := "[p]" + strings.TrimPrefix(base, "/tmp/p") + "-late"
	slow := func(n int) string {
		// The inner sh carries the tag as its $0, so a child left behind
		// by killing only the outer shell is found too.
		name := fmt.Sprintf("%s-late%d", base, n)
		return fmt.Sprintf("sh -c 'sleep 30; :' %s; echo late > %s", host.Quote(name), host.Quote(name))
	}
	t.Run("Cmd.Timeout", func(t *testing.T) {
		start := time.Now()
		_, err := h.Run(context.Background(), host.Cmd{Command: slow(1), Timeout: 300 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if !strings.HasPrefix(err.Error(), h.Name()+": ") {
			t.Errorf("error %q does not start with the host name", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Run returned after %s, want soon after the 300ms timeout", d)
		}
	})
	t.Run("ctx cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		_, err := h.Run(ctx, host.Cmd{Command: slow(2)})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("the commands are killed", func(t *testing.T) {
		var left []byte
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			res := mustRun(t, h, host.Cmd{Command: "grep -l -s -a -e " + host.Quote(tag) + " /proc/[0-9]*/cmdline; true"})
			if left = res.Stdout; len(left) == 0 {
				return
			}
		}
		t.Fatalf("timed-out commands still run: %s", left)
	})
}

func testConcurrent(t *testing.T, h host.Host) {
	const n = 20 // more than sshd's default MaxSessions
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.Run(ctxT(t), host.Cmd{Command: fmt.Sprintf("sleep 0.2; echo %d", i)})
			if err == nil && strings.TrimSpace(string(res.Stdout)) != fmt.Sprint(i) {
				err = fmt.Errorf("command %d printed %q", i, res.Stdout)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func testFiles(t *testing.T, h host.Host, base string) {
	ctx := ctxT(t)
	check := func(t *testing.T, p string, data []byte, mode fs.FileMode, owner, group string) {
		t.Helper()
		got, err := h.ReadFile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("ReadFile(%q) = %d bytes, want %d", p, len(got), len(data))
		}
		fi, err := h.Stat(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode != mode || fi.IsDir || fi.Size != int64(len(data)) || fi.Path != p {
			t.Errorf("Stat(%q) = %+v, want mode %v size %d", p, fi, mode, len(data))
		}
		if fi.Owner != owner || (group != "" && fi.Group != group) {
			t.Errorf("Stat(%q) owner %s:%s, want %s:%s", p, fi.Owner, fi.Group, owner, group)
		}
		sum, err := h.SHA256(ctx, p)
		want := sha256.Sum256(data)
		if err != nil || sum != hex.EncodeToString(want[:]) {
			t.Errorf("SHA256(%q) = %q, %v; want %x", p, sum, err, want)
		}
	}
	t.Run("create with mode and owner", func(t *testing.T) {
		p := base + "-create"
		data := []byte("listen_addresses = '*'\n")
		if err := h.WriteFile(ctx, p, data, 0o640, "daemon:daemon"); err != nil {
			t.Fatal(err)
		}
		check(t, p, data, 0o640, "daemon", "daemon")
	})
	t.Run("empty owner is root", func(t *testing.T) {
		p := base + "-root"
		if err := h.WriteFile(ctx, p, []byte("x"), 0o600, ""); err != nil {
			t.Fatal(err)
		}
		check(t, p, []byte("x"), 0o600, "root", "")
	})
	t.Run("replace changes content, mode and owner", func(t *testing.T) {
		p := base + "-replace"
		if err := h.WriteFile(ctx, p, []byte("old content, longer"), 0o644, "daemon:daemon"); err != nil {
			t.Fatal(err)
		}
		if err := h.WriteFile(ctx, p, []byte("new"), 0o600, "nobody"); err != nil {
			t.Fatal(err)
		}
		check(t, p, []byte("new"), 0o600, "nobody", "")
	})
	t.Run("binary, empty and large", func(t *testing.T) {
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		big := make([]byte, 3<<20)
		rand.Read(big)
		for name, data := range map[string][]byte{"bin": all, "empty": {}, "big": big} {
			p := base + "-" + name
			if err := h.WriteFile(ctx, p, data, 0o644, ""); err != nil {
				t.Fatal(err)
			}
			check(t, p, data, 0o644, "root", "")
		}
	})
	t.Run("set-id and sticky bits", func(t *testing.T) {
		p := base + "-setid"
		mode := 0o755 | fs.ModeSetuid | fs.ModeSetgid
		if err := h.WriteFile(ctx, p, []byte("#!/bin/sh\n"), mode, "daemon:daemon"); err != nil {
			t.Fatal(err)
		}
		check(t, p, []byte("#!/bin/sh\n"), mode, "daemon", "daemon")
	})
	t.Run("hostile file name", func(t *testing.T) {
		p := base + "-it's $(echo x) `y`; z\nw"
		if err := h.WriteFile(ctx, p, []byte("ok"), 0o644, ""); err != nil {
			t.Fatal(err)
		}
		check(t, p, []byte("ok"), 0o644, "root", "")
	})
	t.Run("missing directory", func(t *testing.T) {
		err := h.WriteFile(ctx, base+"-nodir/file", []byte("x"), 0o644, "")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
		if !strings.HasPrefix(err.Error(), h.Name()+": write: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q is not one line starting with %q", err, h.Name()+": write: ")
		}
	})
	t.Run("target is a directory", func(t *testing.T) {
		if err := h.WriteFile(ctx, "/tmp", []byte("x"), 0o644, ""); err == nil {
			t.Fatal("writing over /tmp succeeded")
		}
		fi, err := h.Stat(ctx, "/tmp")
		if err != nil || !fi.IsDir || !fi.Mode.IsDir() || fi.Mode&fs.ModeSticky == 0 {
			t.Fatalf("Stat(/tmp) = %+v, %v; want a sticky directory", fi, err)
		}
	})
	t.Run("relative path", func(t *testing.T) {
		if err := h.WriteFile(ctx, "tmp/x", []byte("x"), 0o644, ""); err == nil {
			t.Fatal("relative path accepted")
		}
		if _, err := h.ReadFile(ctx, "etc/passwd"); err == nil {
			t.Fatal("relative path accepted")
		}
	})
	t.Run("bad owner", func(t *testing.T) {
		if err := h.WriteFile(ctx, base+"-badowner", []byte("x"), 0o644, "-R root"); err == nil {
			t.Fatal("owner with an option accepted")
		}
	})
}

func testNotExist(t *testing.T, h host.Host, base string) {
	ctx := ctxT(t)
	p := base + "-missing"
	_, errRead := h.ReadFile(ctx, p)
	_, errStat := h.Stat(ctx, p)
	_, errSum := h.SHA256(ctx, p)
	_, errSub := h.Stat(ctx, p+"/below")
	for name, err := range map[string]error{"ReadFile": errRead, "Stat": errStat, "SHA256": errSum, "Stat below": errSub} {
		var he *host.Error
		if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &he) || he.Host != h.Name() {
			t.Errorf("%s of a missing file: %v, want a *host.Error for %s wrapping fs.ErrNotExist", name, err, h.Name())
		}
	}
}

func testUpload(t *testing.T, h host.Host, base string) {
	ctx := ctxT(t)
	data := make([]byte, 1<<20+17)
	rand.Read(data)
	local := filepath.Join(t.TempDir(), "pgwarm-wal")
	if err := os.WriteFile(local, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := base + "-upload"
	if err := h.Upload(ctx, local, p, 0o755, "daemon:daemon"); err != nil {
		t.Fatal(err)
	}
	got, err := h.ReadFile(ctx, p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded file reads back as %d bytes (%v), want %d", len(got), err, len(data))
	}
	fi, err := h.Stat(ctx, p)
	if err != nil || fi.Mode != 0o755 || fi.Owner != "daemon" || fi.Group != "daemon" {
		t.Fatalf("Stat = %+v, %v; want 0755 daemon:daemon", fi, err)
	}
	sum := sha256.Sum256(data)
	if got, err := h.SHA256(ctx, p); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Fatalf("SHA256 = %q, %v", got, err)
	}
	if err := h.Upload(ctx, local+"-missing", p, 0o755, ""); err == nil {
		t.Fatal("upload of a missing local file succeeded")
	}
	if err := h.Upload(ctx, local, base+"-nodir/x", 0o755, ""); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("upload into a missing directory: %v, want fs.ErrNotExist", err)
	}
}

// streamSize is the large stream's size: far more than any buffer on the
// way, so that a copy held in memory or a stalled pipe shows.
const streamSize = 96<<20 + 12345

// genReader yields n deterministic pseudo-random bytes without holding them.
type genReader struct {
	rng  *mrand.ChaCha8
	left int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.rng.Read(p)
	g.left -= int64(n)
	return n, nil
}

// countHash is a writer that counts and hashes what it is given.
type countHash struct {
	n int64
	h hash.Hash
}

func (c *countHash) Write(p []byte) (int, error) { c.n += int64(len(p)); return c.h.Write(p) }

// signalWriter closes got on its first write.
type signalWriter struct {
	once sync.Once
	got  chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	w.once.Do(func() { close(w.got) })
	return len(p), nil
}

func testStream(t *testing.T, h host.Host) {
	s, ok := h.(host.Streamer)
	if !ok {
		t.Fatalf("%T does not implement host.Streamer", h)
	}
	t.Run("large stream both ways", func(t *testing.T) {
		seed := [32]byte{1, 2, 3}
		want := &countHash{h: sha256.New()}
		io.Copy(want, &genReader{rng: mrand.NewChaCha8(seed), left: streamSize})
		got := &countHash{h: sha256.New()}
		res, err := s.RunStream(ctxT(t), host.Cmd{Command: "cat"}, &genReader{rng: mrand.NewChaCha8(seed), left: streamSize}, got)
		if err != nil || !res.OK() {
			t.Fatalf("RunStream(cat): %+v, %v", res, err)
		}
		if got.n != want.n || !bytes.Equal(got.h.Sum(nil), want.h.Sum(nil)) {
			t.Fatalf("cat streamed back %d bytes (sha256 %x), want %d (%x)", got.n, got.h.Sum(nil), want.n, want.h.Sum(nil))
		}
		if len(res.Stdout) != 0 {
			t.Errorf("Result.Stdout holds %d bytes, want none (stdout went to the writer)", len(res.Stdout))
		}
	})
	t.Run("stdout arrives while stdin is open", func(t *testing.T) {
		pr, pw := io.Pipe()
		out := &signalWriter{got: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			_, err := s.RunStream(ctxT(t), host.Cmd{Command: "cat"}, pr, out)
			done <- err
		}()
		pw.Write([]byte("ping\n"))
		select {
		case <-out.got:
		case <-time.After(30 * time.Second):
			pw.Close()
			t.Fatal("no stdout within 30s of the first stdin line: the stream is not streamed")
		}
		pw.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if out.buf.String() != "ping\n" {
			t.Fatalf("got %q, want ping", out.buf.String())
		}
	})
	t.Run("relay from one command to another", func(t *testing.T) {
		const n = 40 << 20
		pr, pw := io.Pipe()
		var prodRes host.Result
		var prodErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			prodRes, prodErr = s.RunStream(ctxT(t), host.Cmd{Command: fmt.Sprintf("head -c %d /dev/zero", n)}, nil, pw)
			pw.CloseWithError(prodErr)
		}()
		var out bytes.Buffer
		res, err := s.RunStream(ctxT(t), host.Cmd{Command: "wc -c"}, pr, &out)
		pr.Close()
		wg.Wait()
		if prodErr != nil || !prodRes.OK() || err != nil || !res.OK() {
			t.Fatalf("producer %+v, %v; consumer %+v, %v", prodRes, prodErr, res, err)
		}
		if strings.TrimSpace(out.String()) != fmt.Sprint(n) {
			t.Fatalf("consumer counted %q bytes, want %d", out.String(), n)
		}
	})
	t.Run("exit status and stderr", func(t *testing.T) {
		var out bytes.Buffer
		res, err := s.RunStream(ctxT(t), host.Cmd{Command: "wc -c; echo err >&2; exit 5"}, strings.NewReader("abc"), &out)
		if err != nil || res.ExitCode != 5 || string(res.Stderr) != "err\n" || strings.TrimSpace(out.String()) != "3" {
			t.Fatalf("got %+v stdout %q, %v; want exit 5, stderr err, stdout 3", res, out.String(), err)
		}
	})
	t.Run("ctx cancel with stdin still open", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		_, err := s.RunStream(ctx, host.Cmd{Command: "cat"}, pr, io.Discard)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if !strings.HasPrefix(err.Error(), h.Name()+": ") {
			t.Errorf("error %q does not start with the host name", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("RunStream returned after %s, want soon after the cancel", d)
		}
	})
}

// LocalShellStream is LocalShell for host.Fake's StreamHandler: stdin and
// stdout are the command's own streams.
func LocalShellStream(ctx context.Context, cmd host.Cmd, stdin io.Reader, stdout io.Writer) (host.Result, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd.Command)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = time.Second
	var stderr bytes.Buffer
	c.Stdout, c.Stderr = stdout, &stderr
	// Feed stdin from a goroutine of our own: exec's would be waited for,
	// and a read from a pipe nobody writes to cannot be interrupted.
	var in io.WriteCloser
	if stdin != nil {
		var err error
		if in, err = c.StdinPipe(); err != nil {
			return host.Result{}, err
		}
	}
	if err := c.Start(); err != nil {
		return host.Result{}, err
	}
	if in != nil {
		go func() { io.Copy(in, stdin); in.Close() }()
	}
	err := c.Wait()
	res := host.Result{Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	case err != nil:
		return res, err
	}
	return res, nil
}

// LocalShell runs cmd with the local /bin/sh: a host.Fake HandlerContext
// that lets the suite's Run tests exercise the Fake's plumbing (stdin,
// exit status, timeouts) with a real shell. The whole process group is
// killed when ctx ends.
func LocalShell(ctx context.Context, cmd host.Cmd) (host.Result, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd.Command)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = bytes.NewReader(cmd.Stdin), &stdout, &stderr
	err := c.Run()
	res := host.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	case err != nil:
		return res, err
	}
	return res, nil
}
