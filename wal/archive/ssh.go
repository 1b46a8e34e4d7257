package archive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pgwarm/pgwarm/wal/segname"
)

// SSHEnv overrides the ssh command (split on spaces), e.g.
// "ssh -i /etc/pgwarm/id_ed25519"; tests point it at a shim.
const SSHEnv = "PGWARM_WAL_SSH"

// SSH is the client side of ssh://user@host[:port]/path. Each operation is
// one ssh run of the system ssh binary, so the PostgreSQL user's own
// ~/.ssh/config, keys and known_hosts apply.
type SSH struct {
	argv   []string // ssh command and options up to and including the destination
	root   string
	marker string
	target string // for messages
	// cluster bounds every file a get accepts (Options.Cluster): the
	// archive host is not trusted for its segment size.
	cluster Cluster
}

func newSSH(u *url.URL, opt Options) (*SSH, error) {
	if u.Hostname() == "" || !strings.HasPrefix(u.Path, "/") {
		return nil, Errorf(KindBadInput, "archive URL %q: want ssh://user@host[:port]/absolute/path", u.String())
	}
	root := path.Clean(u.Path)
	if strings.ContainsAny(root, " \t\n;&|`$<>'\"\\*?") {
		return nil, Errorf(KindBadInput, "archive path %q contains characters pgwarm-wal does not accept", root)
	}
	argv := strings.Fields(os.Getenv(SSHEnv))
	if len(argv) == 0 {
		argv = []string{sshBinary()}
	}
	// BatchMode: never prompt; archive_command has no terminal. A hung
	// connection must not stall archiving forever either.
	argv = append(argv, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")
	if p := u.Port(); p != "" {
		argv = append(argv, "-p", p)
	}
	dest := u.Hostname()
	if u.User != nil && u.User.Username() != "" {
		dest = u.User.Username() + "@" + dest
	}
	argv = append(argv, dest)
	return &SSH{argv: argv, root: root, marker: opt.RequireMarker, target: u.Host, cluster: opt.Cluster}, nil
}

// sshBinary is ssh from PATH, or from the standard directories when PATH is
// unset: Debian's pg_ctlcluster starts the postmaster with only the
// variables of the cluster's environment file, so archive_command and
// restore_command run without any PATH.
func sshBinary() string {
	if p, err := exec.LookPath("ssh"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/ssh", "/bin/ssh", "/usr/local/bin/ssh"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return "ssh"
}

func (s *SSH) Close() error { return nil }

// maxTrailing is how much may follow an answer's frame before the ssh
// process is killed: ssh's own messages go to stderr, so honestly nothing.
const maxTrailing = 64 << 10

// drainTrailing reads what follows a frame until EOF, and reports whether
// there was more than maxTrailing of it.
func drainTrailing(r io.Reader) bool {
	n, _ := io.CopyN(io.Discard, r, maxTrailing+1)
	return n > maxTrailing
}

// A hostile or hung archive host must not hold a call forever: PostgreSQL
// waits for restore_command (a promotion too), and for archive_command.
// silentFor is how long a call may go without a byte either way (beyond
// the wait a get asks for): the far end of a get or push answers within
// seconds; listing or verifying a large archive reads every file first.
// An answer is followed at once by the end of the stream and of ssh:
// answerGrace after it, the ssh process is killed.
var (
	silentFor = map[string]time.Duration{"get": 30 * time.Second, "push": 30 * time.Second,
		"cleanup": 2 * time.Minute, "list": 10 * time.Minute, "verify": time.Hour}
	answerGrace = 5 * time.Second
)

// answerLimit bounds an answer that carries no archived file: a listing
// (about 200 bytes a file: 32 MiB is some 160,000 files), a verify report,
// an error or a cleanup result.
var answerLimit = map[string]uint32{"list": 32 << 20, "verify": 16 << 20}

const defaultAnswerLimit = 1 << 20

// errSilent and errAnswered end a call's context: the far end said nothing
// for too long, or it has answered and must go.
var (
	errSilent   = errors.New("the archive host sent nothing")
	errAnswered = errors.New("answered")
)

// watchdog cancels a call that is silent for longer than limit, or that
// goes on after its answer's grace.
type watchdog struct {
	mu     sync.Mutex
	last   time.Time
	until  time.Time // zero: no deadline yet
	limit  time.Duration
	cancel context.CancelCauseFunc
	done   chan struct{}
}

func startWatchdog(limit time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{last: time.Now(), limit: limit, cancel: cancel, done: make(chan struct{})}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case now := <-t.C:
				w.mu.Lock()
				silent, over := now.Sub(w.last) > w.limit, !w.until.IsZero() && now.After(w.until)
				w.mu.Unlock()
				switch {
				case over:
					cancel(errAnswered)
					return
				case silent:
					cancel(errSilent)
					return
				}
			}
		}
	}()
	return w
}

func (w *watchdog) touch() {
	w.mu.Lock()
	w.last = time.Now()
	w.mu.Unlock()
}

// answered starts the grace after the answer.
func (w *watchdog) answered() {
	w.mu.Lock()
	w.until = time.Now().Add(answerGrace)
	w.mu.Unlock()
}

func (w *watchdog) stop() { close(w.done) }

// touching counts every read or write as a sign of life.
type touching struct {
	r io.Reader
	w io.Writer
	d *watchdog
}

func (t touching) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.d.touch()
	}
	return n, err
}

func (t touching) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if n > 0 {
		t.d.touch()
	}
	return n, err
}

// call runs one operation and returns the Ok payload.
func (s *SSH) call(ctx context.Context, req Request, data []byte) ([]byte, error) {
	req.Root = s.root
	args := append(append([]string{}, s.argv[1:]...), req.String())
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cmd := exec.CommandContext(ctx, s.argv[0], args...)
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 8192}
	if err := cmd.Start(); err != nil {
		return nil, Errorf(KindUnreachable, "cannot run %s: %w", s.argv[0], err)
	}
	silent := silentFor[req.Op]
	if silent == 0 {
		silent = 30 * time.Second
	}
	wd := startWatchdog(req.Wait+silent, cancel)
	defer wd.stop()
	writeErr := make(chan error, 1)
	go func() {
		var err error
		if data != nil {
			err = WriteFrame(touching{w: stdin, d: wd}, FrameData, data)
		}
		stdin.Close()
		writeErr <- err
	}()
	// With a shared connection (ControlMaster) the ssh process started here
	// hands its stdin and stdout to the master and killing it does not
	// close them: the answer would still come only when the far end is
	// done (a lingering get, up to its wait). So a cancelled call returns
	// at once and leaves the reader behind; the process exits right after.
	type answer struct {
		typ     byte
		payload []byte
		err     error
	}
	got := make(chan answer, 1)
	go func() {
		var typ byte
		var payload []byte
		var err error
		r := bufio.NewReader(touching{r: stdout, d: wd})
		if req.Op == "get" {
			// An archived file: bounded by its name, and by our cluster's
			// segment size when we know it, before it is read.
			typ, payload, err = readFileFrame(r, req.Name, s.cluster.SegSize, s.cluster)
		} else {
			limit := answerLimit[req.Op]
			if limit == 0 {
				limit = defaultAnswerLimit
			}
			typ, payload, err = readFrameLimit(r, limit)
		}
		got <- answer{typ, payload, err}
		// The far end says nothing after its one frame. A refused frame's
		// body, or anything else that follows, is not read to its end: a
		// hostile archive host could send without end, and restore would
		// never return. The ssh process is killed instead.
		if err != nil || drainTrailing(r) {
			cancel(errAnswered)
		}
	}()
	var a answer
	select {
	case a = <-got:
		wd.answered()
	case <-ctx.Done():
		go cmd.Wait() // reaps ssh (killed by the context); closes the pipes after WaitDelay
		if errors.Is(context.Cause(ctx), errSilent) && parent.Err() == nil {
			return nil, Errorf(KindUnreachable, "the archive host %s sent nothing for %s; gave up (is it hung, or overloaded?)", s.target, req.Wait+silent)
		}
		return nil, parent.Err()
	}
	typ, payload, rerr := a.typ, a.payload, a.err
	werr := cmd.Wait() // killed by the watchdog if ssh lingers past answerGrace
	<-writeErr
	if rerr != nil {
		if parent.Err() != nil {
			return nil, parent.Err()
		}
		if k := KindOf(rerr); k == KindCorrupt || k == KindForeign {
			return nil, Errorf(k, "%w (from the archive host %s)", rerr, s.target)
		}
		why := lastLine(stderr.String())
		if why == "" && werr != nil {
			why = werr.Error()
		}
		return nil, Errorf(KindUnreachable, "no answer from the archive host %s over ssh (%s); check the key, known_hosts and the forced command", s.target, why)
	}
	switch typ {
	case FrameOK:
		return payload, nil
	case FrameErr:
		var we WireError
		if err := json.Unmarshal(payload, &we); err != nil {
			return nil, Errorf(KindUnreachable, "garbled error from %s: %v", s.target, err)
		}
		return nil, &Error{Kind: we.Kind, Msg: we.Msg + " (on " + s.target + ")"}
	}
	return nil, Errorf(KindUnreachable, "unexpected frame %q from %s", typ, s.target)
}

func (s *SSH) Put(ctx context.Context, name segname.Name, file []byte) error {
	_, err := s.call(ctx, Request{Op: "push", Name: name, Marker: s.marker}, file)
	return err
}

func (s *SSH) Get(ctx context.Context, name segname.Name, wait time.Duration) ([]byte, error) {
	return s.call(ctx, Request{Op: "get", Name: name, Wait: wait}, nil)
}

func (s *SSH) List(ctx context.Context) (Listing, error) {
	var ls Listing
	b, err := s.call(ctx, Request{Op: "list"}, nil)
	if err != nil {
		return ls, err
	}
	if err := json.Unmarshal(b, &ls); err != nil {
		return ls, Errorf(KindUnreachable, "garbled listing from %s: %v", s.target, err)
	}
	for i := range ls.Entries {
		n, err := segname.Parse(ls.Entries[i].Name)
		if err != nil {
			return ls, Errorf(KindUnreachable, "listing from %s has a bad name: %v", s.target, err)
		}
		ls.Entries[i].Parsed = n
	}
	return ls, nil
}

// Cleanup sends the caller's name, standbys and streaming mode; the
// archive host decides whose restart point this is (the key's name) and
// which standbys must have reported (its rights file, plus ours).
func (s *SSH) Cleanup(ctx context.Context, oldest segname.Name, opt CleanupOptions) (CleanupResult, error) {
	res := CleanupResult{Removed: []string{}}
	if err := opt.validate(); err != nil {
		return res, err
	}
	b, err := s.call(ctx, Request{Op: "cleanup", Name: oldest, DryRun: opt.DryRun, As: opt.As, Standbys: opt.Standbys, Streaming: opt.Streaming}, nil)
	if err != nil {
		return res, err
	}
	if bytes.HasPrefix(b, []byte("[")) {
		// An archive host of an earlier version answers the removed names only.
		err = json.Unmarshal(b, &res.Removed)
	} else {
		err = json.Unmarshal(b, &res)
	}
	if err != nil {
		return CleanupResult{Removed: []string{}}, Errorf(KindUnreachable, "garbled cleanup answer from %s: %v", s.target, err)
	}
	for _, n := range res.Removed {
		if _, err := segname.Parse(n); err != nil {
			return res, errors.Join(Errorf(KindUnreachable, "cleanup answer from %s has a bad name", s.target), err)
		}
	}
	return res, nil
}

func (s *SSH) Verify(ctx context.Context) (Report, error) {
	var r Report
	b, err := s.call(ctx, Request{Op: "verify"}, nil)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, Errorf(KindUnreachable, "garbled verify report from %s: %v", s.target, err)
	}
	return r, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
