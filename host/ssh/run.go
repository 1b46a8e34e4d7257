package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/pgwarm/pgwarm/host"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"
)

// pidMarker prefixes the line on stderr in which the remote wrapper reports
// the process group it runs the command in, so a timeout can kill it all.
const pidMarker = "pgwarm-pid:"

// runWrapper starts the command in a new session (setsid, util-linux) so
// that it and all its children form one process group, reports that
// group's id, then runs the command with /bin/sh. Killing only the sshd
// session (or sudo) would leave children such as pg_basebackup running.
const runWrapper = `echo ` + pidMarker + `$$ >&2; exec sh -c "$1"`

// wrap turns shell text into the remote command line, through sudo -n
// when becoming root. Every layer receives the text as one quoted word.
func (h *sshHost) wrap(command string) string {
	args := []string{"setsid", "-w", "sh", "-c", runWrapper, "pgwarm", command}
	if h.sudo {
		args = append([]string{"sudo", "-n", "--"}, args...)
	}
	return host.Join(args...)
}

// Run executes cmd.Command with /bin/sh on the host.
func (h *sshHost) Run(ctx context.Context, cmd host.Cmd) (host.Result, error) {
	var stdin io.Reader
	if cmd.Stdin != nil {
		stdin = bytes.NewReader(cmd.Stdin)
	}
	res, err := h.run(ctx, cmd.Command, stdin, cmd.Timeout)
	if err != nil {
		return res, &host.Error{Host: h.name, Op: "run", Err: err}
	}
	return res, nil
}

// RunStream is Run with stdin and stdout as streams: stdin is copied to
// the command as it is read, the command's stdout is written to stdout as
// it arrives; Result.Stdout stays empty.
func (h *sshHost) RunStream(ctx context.Context, cmd host.Cmd, stdin io.Reader, stdout io.Writer) (host.Result, error) {
	if stdin == nil && cmd.Stdin != nil {
		stdin = bytes.NewReader(cmd.Stdin)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	res, err := h.runTo(ctx, cmd.Command, stdin, stdout, cmd.Timeout)
	if err != nil {
		return res, &host.Error{Host: h.name, Op: "run", Err: err}
	}
	return res, nil
}

// run is Run without the host prefix on errors, for the file operations.
func (h *sshHost) run(ctx context.Context, command string, stdin io.Reader, timeout time.Duration) (host.Result, error) {
	var stdout lockedBuffer
	res, err := h.runTo(ctx, command, stdin, &stdout, timeout)
	res.Stdout = stdout.Bytes()
	return res, err
}

// runTo runs command with its stdout written to stdout.
func (h *sshHost) runTo(ctx context.Context, command string, stdin io.Reader, stdout io.Writer, timeout time.Duration) (host.Result, error) {
	res, err := h.exec(ctx, h.wrap(command), command, stdin, stdout, newPidStripper(), timeout)
	if err != nil {
		return res, err
	}
	if h.sudo && res.ExitCode == 1 && sudoRefused(res.Stderr) {
		return res, fmt.Errorf("%w: %s", host.ErrSudo, host.FirstLine(res.Stderr))
	}
	return res, nil
}

// exec runs the remote command line (command wrapped by wrap) in a new
// session, with stderr as the session's stderr.
func (h *sshHost) exec(ctx context.Context, line, command string, stdin io.Reader, stdout io.Writer, stderr *pidStripper, timeout time.Duration) (host.Result, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	select {
	case h.sessions <- struct{}{}:
		defer func() { <-h.sessions }()
	case <-ctx.Done():
		return host.Result{}, host.CmdError(command, ctx.Err(), timeout)
	}
	sess, err := h.newSession(ctx)
	if err != nil {
		return host.Result{}, err
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if err := sess.Start(line); err != nil {
		return host.Result{}, fmt.Errorf("start %s: %w", host.ShortCmd(command), err)
	}
	waitc := make(chan error, 1)
	go func() { waitc <- sess.Wait() }()

	var werr error
	select {
	case werr = <-waitc:
	case <-ctx.Done():
		h.kill(stderr)
		sess.Signal(xssh.SIGKILL) // in case the wrapper never reported its group
		sess.Close()
		// sshd may hold the channel open until the process is gone;
		// don't wait for that beyond a moment (Wait ends on its own).
		select {
		case <-waitc:
		case <-time.After(time.Second):
		}
		res := host.Result{Stderr: stderr.Bytes(), ExitCode: -1}
		return res, host.CmdError(command, ctx.Err(), timeout)
	}
	res := host.Result{Stderr: stderr.Bytes()}
	var ee *xssh.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &ee):
		res.ExitCode = ee.ExitStatus()
		if sig := ee.Signal(); sig != "" {
			res.ExitCode = 128 + signalNumber(sig)
		}
	default:
		return res, fmt.Errorf("%s: %w", host.ShortCmd(command), werr)
	}
	return res, nil
}

// errSudoCheckTimeout ends a first command still waiting for sudo when
// the connect timeout is up.
var errSudoCheckTimeout = errors.New("sudo check timed out")

// runFirst runs cmd as the connection's first command (DialRun). Under
// become: sudo the command's own `sudo -n` stands in for checkSudo: the
// wrapper reports its process group only once sudo has let it run, so
// until then the connect deadline applies, and a command that never got
// past sudo is explained exactly as checkSudo explains a refusal. sudo
// runs with LC_ALL=C so that its refusals are recognised; the command
// inherits it. sudoPhase reports that an error happened before sudo let
// the command run (a connect error, not a run error).
func (h *sshHost) runFirst(ctx context.Context, deadline time.Time, cmd host.Cmd) (res host.Result, sudoPhase bool, err error) {
	var stdin io.Reader
	if cmd.Stdin != nil {
		stdin = bytes.NewReader(cmd.Stdin)
	}
	if !h.sudo {
		res, err := h.run(ctx, cmd.Command, stdin, cmd.Timeout)
		return res, false, err
	}
	stderr := newPidStripper()
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := time.AfterFunc(time.Until(deadline), func() {
		if !stderr.reported() {
			cancel(errSudoCheckTimeout)
		}
	})
	defer t.Stop()
	var stdout lockedBuffer
	res, err = h.exec(cctx, "LC_ALL=C "+h.wrap(cmd.Command), cmd.Command, stdin, &stdout, stderr, cmd.Timeout)
	res.Stdout = stdout.Bytes()
	switch {
	case errors.Is(context.Cause(cctx), errSudoCheckTimeout):
		return res, true, fmt.Errorf("sudo check: %w", context.DeadlineExceeded)
	case stderr.reported():
		return res, false, err
	case err != nil:
		return res, true, fmt.Errorf("sudo check: %w", err)
	case res.ExitCode == 0: // cannot happen: the wrapper reports before anything else
		return res, false, nil
	}
	return res, true, h.sudoError(res.ExitCode, res.Stderr, "sudo -n")
}

// newSession opens a session, retrying while sshd refuses it for a
// moment: it counts a closed session against MaxSessions until the
// session's processes are gone, which lags on a loaded host.
func (h *sshHost) newSession(ctx context.Context) (*xssh.Session, error) {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		sess, err := h.client.NewSession()
		var oce *xssh.OpenChannelError
		if err == nil || !errors.As(err, &oce) || attempt == 8 {
			if err != nil {
				return nil, fmt.Errorf("open session: %w", err)
			}
			return sess, nil
		}
		select {
		case <-time.After(wait):
			wait *= 2
		case <-ctx.Done():
			return nil, fmt.Errorf("open session: %w (after %v)", err, ctx.Err())
		}
	}
}

// kill ends the command's process group from a fresh session: TERM, then
// KILL after up to a second. Best effort and bounded: the connection may
// be what failed.
func (h *sshHost) kill(s *pidStripper) {
	var pid int
	select {
	case pid = <-s.pidc:
	case <-time.After(2 * time.Second):
	}
	if pid <= 1 {
		return
	}
	g := "-" + strconv.Itoa(pid)
	// "-s SIG --": dash's kill rejects "-TERM --".
	script := "kill -s TERM -- " + g + " 2>/dev/null || exit 0; i=0; while [ $i -lt 10 ] && kill -s 0 -- " + g +
		" 2>/dev/null; do sleep 0.1; i=$((i+1)); done; kill -s KILL -- " + g + " 2>/dev/null; exit 0"
	line := host.Join("sh", "-c", script)
	if h.sudo {
		line = host.Join("sudo", "-n", "--", "sh", "-c", script)
	}
	sess, err := h.client.NewSession() // outside the semaphore: the slot is still held by the command
	if err != nil {
		return
	}
	defer sess.Close()
	done := make(chan struct{})
	go func() { sess.Run(line); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// lockedBuffer is a bytes.Buffer that may be read while the session's
// copy goroutine still writes (after a cancelled Run).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// pidStripper is the session's stderr: it takes the wrapper's pid line out
// of the stream (lines before it, such as sudo's warnings, pass through)
// and hands the pid over on pidc.
type pidStripper struct {
	mu      sync.Mutex
	buf     bytes.Buffer // what the command wrote to stderr
	pending []byte       // a partial line while still looking for the marker
	looking bool
	marker  bool // the wrapper's line was seen: sudo let the command run
	lines   int
	pidc    chan int
}

func newPidStripper() *pidStripper {
	return &pidStripper{looking: true, pidc: make(chan int, 1)}
}

func (s *pidStripper) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.looking {
		return s.buf.Write(p)
	}
	s.pending = append(s.pending, p...)
	for s.looking {
		i := bytes.IndexByte(s.pending, '\n')
		if i < 0 {
			break
		}
		line := s.pending[:i]
		if pid, ok := strings.CutPrefix(string(line), pidMarker); ok {
			if n, err := strconv.Atoi(pid); err == nil {
				s.pidc <- n
			}
			s.looking, s.marker = false, true
		} else {
			s.buf.Write(s.pending[:i+1])
			// The marker is the wrapper's first output; sudo may
			// warn a line or two before it, nothing else does.
			if s.lines++; s.lines >= 8 {
				s.looking = false
			}
		}
		s.pending = s.pending[i+1:]
	}
	if !s.looking {
		s.buf.Write(s.pending)
		s.pending = nil
	}
	return len(p), nil
}

// reported says whether the wrapper's line has been seen.
func (s *pidStripper) reported() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marker
}

// Bytes is the command's stderr, marker removed.
func (s *pidStripper) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]byte(nil), s.buf.Bytes()...)
	return append(out, s.pending...)
}

// checkSudo runs `sudo -n true` and explains a refusal.
func (h *sshHost) checkSudo(ctx context.Context) error {
	sess, err := h.client.NewSession()
	if err != nil {
		return fmt.Errorf("sudo check: %w", err)
	}
	defer sess.Close()
	var out bytes.Buffer
	sess.Stdout = io.Discard
	sess.Stderr = &out // sudo's refusals go to stderr
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	err = sess.Run("LC_ALL=C sudo -n true")
	if ctx.Err() != nil {
		return fmt.Errorf("sudo check: %w", ctx.Err())
	}
	var ee *xssh.ExitError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ee):
		return fmt.Errorf("sudo check: %w", err)
	}
	return h.sudoError(ee.ExitStatus(), out.Bytes(), "sudo -n true")
}

// sudoError explains why sudo (run as what) exited with code, from its
// stderr.
func (h *sshHost) sudoError(code int, stderr []byte, what string) error {
	switch {
	case code == 127:
		return fmt.Errorf("%w: sudo is not installed (install it, or connect as root)", host.ErrSudo)
	case sudoRefused(stderr):
		return fmt.Errorf("%w: user %q may not run sudo without a password (check /etc/sudoers on %s)", host.ErrSudo, h.user, h.name)
	default:
		return fmt.Errorf("%w: `%s` as %q exited %d: %s", host.ErrSudo, what, h.user, code, strings.TrimSpace(host.FirstLine(stderr)))
	}
}

// sudoRefused recognises sudo's own refusals (run with LC_ALL=C or not,
// these are the messages of an untranslated sudo).
func sudoRefused(stderr []byte) bool {
	s := string(stderr)
	return strings.Contains(s, "sudo: a password is required") ||
		strings.Contains(s, "is not in the sudoers file") ||
		strings.Contains(s, "is not allowed to execute") ||
		strings.Contains(s, "may not run sudo")
}

// signalNumber maps the signal names SSH reports to Linux numbers, for
// the shell's 128+n exit status.
func signalNumber(name string) int {
	switch name {
	case "HUP":
		return 1
	case "INT":
		return 2
	case "QUIT":
		return 3
	case "ILL":
		return 4
	case "ABRT":
		return 6
	case "FPE":
		return 8
	case "KILL":
		return 9
	case "USR1":
		return 10
	case "SEGV":
		return 11
	case "USR2":
		return 12
	case "PIPE":
		return 13
	case "ALRM":
		return 14
	case "TERM":
		return 15
	}
	return 0
}
