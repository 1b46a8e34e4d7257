// Package e2e runs the real pgwarm CLI against a private lab instance
// (labtest.Fresh) and checks the hosts over docker exec: apply provisions
// a working pair in every mode and transport, converges after a SIGKILL,
// refuses stale plans and concurrent runs, and never prints a secret.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/internal/labtest"
)

// labName is the private lab instance of these tests; the default lab is
// read-only for other packages' tests and never applied to.
const labName = "apply"

func TestMain(m *testing.M) {
	// The tests run the real binaries; build them so a stale bin/ is never tested.
	cmd := exec.Command("make", "build")
	cmd.Dir = labtest.Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: make build: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// scenario is one inventory variant of the lab.
type scenario struct {
	mode      string // warm | hot | streaming
	transport string // ssh | nfs
	slot      bool
	seed      string // replication.seed; empty: the default (basebackup)
}

func (sc scenario) name() string {
	n := sc.mode + "_" + sc.transport
	if sc.slot {
		n += "_slot"
	}
	if sc.seed != "" {
		n += "_" + sc.seed
	}
	return n
}

// env is one fresh lab with an inventory for a scenario.
type env struct {
	t        *testing.T
	lab      labtest.Lab
	sc       scenario
	inv      string
	password string
}

func newEnv(t *testing.T, sc scenario) *env {
	t.Helper()
	t0 := time.Now()
	lab := labtest.Fresh(t, labName)
	t.Logf("fresh lab: %s", time.Since(t0).Round(100*time.Millisecond))
	pw, err := os.ReadFile(filepath.Join(filepath.Dir(lab.Inventory), "replication_password"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, lab: lab, sc: sc, password: strings.TrimSpace(string(pw))}
	e.inv = filepath.Join(t.TempDir(), "pgwarm.yaml")
	if err := os.WriteFile(e.inv, []byte(e.inventory()), 0o600); err != nil {
		t.Fatal(err)
	}
	if sc.transport == "nfs" {
		e.standInNFS()
	}
	return e
}

// inventory derives the scenario's inventory from the lab's. With nfs the
// archive lives on the standby (the seed's layout) and the primary
// "mounts" it; see standInNFS.
func (e *env) inventory() string {
	l := e.lab
	archiveHost, hosts := "arch", fmt.Sprintf("  - {name: pg1, address: %s, role: primary}\n  - {name: pg2, address: %s, role: standby}\n  - {name: arch, address: %s, role: archive}\n",
		l.Hosts["pg1"], l.Hosts["pg2"], l.Hosts["arch"])
	if e.sc.transport == "nfs" {
		archiveHost = "pg2"
		hosts = fmt.Sprintf("  - {name: pg1, address: %s, role: primary}\n  - {name: pg2, address: %s, role: standby}\n", l.Hosts["pg1"], l.Hosts["pg2"])
	}
	slot := ""
	if e.sc.slot {
		slot = "  slot: true\n"
	}
	if e.sc.seed != "" {
		slot += "  seed: " + e.sc.seed + "\n"
	}
	return fmt.Sprintf(`cluster: main
postgres:
  version: %d
  layout: debian
  port: 5432
replication:
  mode: %s
  archive_timeout: 60s
  user: replicator
  password_env: PGWARM_REPLICATION_PASSWORD
%sarchive:
  host: %s
  transport: %s
  path: /srv/pgwarm/main
  compression: zstd
ssh:
  user: %s
  port: %d
  become: sudo
  identity_file: %s
  known_hosts: %s
hosts:
%s`, l.PGVersion, e.sc.mode, slot, archiveHost, e.sc.transport, l.User, l.SSHPort, l.KeyFile, l.KnownHosts, hosts)
}

// nfsMount is where the primary sees the archive with transport nfs (the
// inventory's default mount point).
const nfsMount = "/var/lib/pgwarm/main/archive"

// standInNFS stands in for the NFS mount the lab's kernel cannot do: the
// primary's mount point is a plain directory holding the marker (as a
// mounted export would), and a background copier moves every finished file
// from it into the archive on pg2, temp file then rename, like a shared
// filesystem would make it appear. apply's own NFS path (fstab, mount
// point, marker check, --require-marker) runs unchanged.
func (e *env) standInNFS() {
	e.docker("exec", e.lab.Containers["pg1"], "sh", "-c",
		"install -d -o postgres -g postgres -m 0700 "+nfsMount+" && install -o postgres -g postgres -m 0600 /dev/null "+nfsMount+"/mounted")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copied := map[string]bool{}
		for ctx.Err() == nil {
			e.syncOnce(copied)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

func (e *env) syncOnce(copied map[string]bool) {
	out, err := exec.Command("docker", "exec", e.lab.Containers["pg1"], "sh", "-c",
		"cd "+nfsMount+" 2>/dev/null && find . -type f ! -name '.tmp-*' ! -name mounted").Output()
	if err != nil {
		return
	}
	var fresh []string
	for _, f := range strings.Fields(string(out)) {
		if !copied[f] || f == "./pgwarm-archive.json" {
			fresh = append(fresh, f)
		}
	}
	if len(fresh) == 0 {
		return
	}
	// Only the meta file may change; segments are immutable once named.
	script := `set -e; r=/srv/pgwarm/main; [ -d "$r" ] || exit 0; t=$r/.sync; rm -rf "$t"; mkdir -p "$t"; tar -C "$t" -xpf -
cd "$t"; find . -type f | while read -r f; do mkdir -p "$r/$(dirname "$f")"; chown postgres:postgres "$r/$(dirname "$f")"; mv -f "$f" "$r/$f"; done; rm -rf "$t"`
	src := exec.Command("docker", append([]string{"exec", e.lab.Containers["pg1"], "tar", "-C", nfsMount, "--numeric-owner", "-cf", "-"}, fresh...)...)
	dst := exec.Command("docker", "exec", "-i", e.lab.Containers["pg2"], "sh", "-c", script)
	pipe, err := src.StdoutPipe()
	if err != nil {
		return
	}
	dst.Stdin = pipe
	if err := src.Start(); err != nil {
		return
	}
	if err := dst.Run(); err != nil {
		_ = src.Wait()
		return
	}
	if src.Wait() == nil {
		for _, f := range fresh {
			copied[f] = true
		}
	}
}

// result of one pgwarm run.
type result struct {
	code int
	out  string
}

// pgwarm runs bin/pgwarm with the lab's replication password set.
func (e *env) pgwarm(args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	t0 := time.Now()
	err := cmd.Run()
	// The CI budget is tight: every run's duration is in the -v log.
	e.t.Logf("pgwarm %s: %s", args[0], time.Since(t0).Round(100*time.Millisecond))
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("pgwarm %v: %v", args, err)
	}
	r := result{code: code, out: b.String()}
	e.noSecret(r.out)
	return r
}

// runTimeout bounds one pgwarm run, so a hang fails the test instead of
// eating the package's whole timeout.
const runTimeout = 8 * time.Minute

func (e *env) command(args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	e.t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, filepath.Join(labtest.Root(), "bin", "pgwarm"), args...)
	cmd.Env = append(os.Environ(), "PGWARM_REPLICATION_PASSWORD="+e.password, "NO_COLOR=1")
	cmd.Stdin = nil // no terminal: apply must not ask
	return cmd
}

// noSecret fails when the replication password shows up in s.
func (e *env) noSecret(s string) {
	e.t.Helper()
	if e.password != "" && strings.Contains(s, e.password) {
		e.t.Fatalf("the replication password appears in output")
	}
}

func (e *env) docker(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sql runs SQL as postgres on a lab host and returns the trimmed output.
func (e *env) sql(h, q string) (string, error) {
	out, err := exec.Command("docker", "exec", "-u", "postgres", e.lab.Containers[h], "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", q).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (e *env) mustSQL(h, q string) string {
	e.t.Helper()
	out, err := e.sql(h, q)
	if err != nil {
		e.t.Fatalf("%s: %s: %v: %s", h, q, err, out)
	}
	return out
}

var recovering = regexp.MustCompile(`startup (?:recovering|waiting for) ([0-9A-F]{24})`)

// replicates inserts a row on pg1 and waits until pg2 has it: readable on
// a hot or streaming standby; on a warm one (no queries) until its startup
// process has moved past the segment holding the insert, after a switch.
func (e *env) replicates(label string) {
	e.t.Helper()
	t0 := time.Now()
	done := false
	defer func() {
		if done {
			e.t.Logf("pg2 replayed %s in %s", label, time.Since(t0).Round(100*time.Millisecond))
		}
	}()
	e.mustSQL("pg1", "CREATE TABLE IF NOT EXISTS e2e_canary (label text PRIMARY KEY, at timestamptz DEFAULT now())")
	e.mustSQL("pg1", fmt.Sprintf("INSERT INTO e2e_canary (label) VALUES ('%s')", label))
	seg := e.mustSQL("pg1", "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
	e.mustSQL("pg1", "SELECT pg_switch_wal()")
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		if e.sc.mode == "warm" {
			ps, _ := exec.Command("docker", "exec", e.lab.Containers["pg2"], "ps", "-eo", "args").Output()
			if m := recovering.FindStringSubmatch(string(ps)); m != nil {
				last = "recovering " + m[1]
				if m[1] > seg {
					// And a warm standby must refuse queries.
					if out, err := e.sql("pg2", "SELECT 1"); err == nil {
						e.t.Fatalf("warm standby answered a query: %s", out)
					}
					done = true
					return
				}
			}
		} else {
			out, err := e.sql("pg2", fmt.Sprintf("SELECT pg_is_in_recovery()::text || ' ' || count(*) FROM e2e_canary WHERE label = '%s'", label))
			last = out
			if err == nil && out == "true 1" {
				done = true
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.t.Fatalf("row %q inserted on pg1 (segment %s) not replayed on pg2 within 2 minutes; last: %s", label, seg, last)
}

// planClean asserts a plan right after apply shows nothing to do.
func (e *env) planClean() {
	e.t.Helper()
	r := e.pgwarm("plan", "-i", e.inv, "--detailed-exitcode")
	if r.code != 0 {
		e.t.Fatalf("plan --detailed-exitcode after apply exited %d, want 0:\n%s", r.code, r.out)
	}
}

// backgroundApply is `apply --auto-approve` left running while a test acts
// on it (a second apply, SIGKILL), its output collected as it comes.
type backgroundApply struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	out     bytes.Buffer
	reached chan struct{}
}

// startApply starts apply; reached closes at the first output line for
// which at holds.
func (e *env) startApply(at func(line string) bool) *backgroundApply {
	e.t.Helper()
	b := &backgroundApply{cmd: e.command("apply", "-i", e.inv, "--auto-approve"), reached: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	b.cmd.Stdout, b.cmd.Stderr = pw, pw
	if err := b.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			b.mu.Lock()
			b.out.WriteString(sc.Text() + "\n")
			b.mu.Unlock()
			if at(sc.Text()) {
				once.Do(func() { close(b.reached) })
			}
		}
	}()
	return b
}

// waitReached waits up to d for the line; otherwise it kills apply and
// fails with "the first apply never reached <what>" and the output.
func (b *backgroundApply) waitReached(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-b.reached:
	case <-time.After(d):
		b.cmd.Process.Kill()
		t.Fatalf("the first apply never reached %s:\n%s", what, b.output())
	}
}

// kill sends SIGKILL, waits for the process and returns all it printed.
func (b *backgroundApply) kill(t *testing.T) string {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()
	return b.output()
}

func (b *backgroundApply) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}
