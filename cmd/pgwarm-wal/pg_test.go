package main

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/wal/walfile"
)

// pgEnv is a throwaway PostgreSQL installation run as the postgres OS user
// (PostgreSQL refuses to run as root).
type pgEnv struct {
	bin  string
	base string // 0755 directory owned by postgres
	cred *syscall.Credential
}

// findPG locates PostgreSQL: $PG_BIN, else the newest /usr/lib/postgresql/*/bin.
// Missing PostgreSQL skips the test unless PGWARM_REQUIRE_PG=1 (CI).
func findPG(t *testing.T) string {
	t.Helper()
	dirs := []string{}
	if d := os.Getenv("PG_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(found[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(found[j])))
		return vi > vj
	})
	dirs = append(dirs, found...)
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if os.Getenv("PGWARM_REQUIRE_PG") == "1" {
		t.Fatal("PostgreSQL binaries not found (PG_BIN or /usr/lib/postgresql/*/bin) and PGWARM_REQUIRE_PG=1")
	}
	t.Skip("PostgreSQL not installed; set PG_BIN (CI sets PGWARM_REQUIRE_PG=1 so this cannot skip there)")
	return ""
}

func newPG(t *testing.T) *pgEnv {
	t.Helper()
	bin := findPG(t)
	if os.Geteuid() != 0 {
		// Not root: run PostgreSQL as ourselves.
		return &pgEnv{bin: bin, base: t.TempDir()}
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if os.Getenv("PGWARM_REQUIRE_PG") == "1" {
			t.Fatalf("running as root needs a postgres OS user: %v", err)
		}
		t.Skip("running as root without a postgres OS user")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	base, err := os.MkdirTemp("", "pgwarm-wal-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	os.Chown(base, uid, gid)
	return &pgEnv{bin: bin, base: base, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
}

func (e *pgEnv) mkdir(t *testing.T, name string) string {
	p := filepath.Join(e.base, name)
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if e.cred != nil {
		os.Chown(p, int(e.cred.Uid), int(e.cred.Gid))
	}
	return p
}

// cmd builds a command run as the postgres user.
func (e *pgEnv) cmd(prog string, args ...string) *exec.Cmd {
	if !strings.Contains(prog, "/") {
		prog = filepath.Join(e.bin, prog)
	}
	c := exec.Command(prog, args...)
	c.Dir = e.base
	c.Env = append(os.Environ(), "LC_ALL=C", "PGUSER=postgres", "PGDATABASE=postgres")
	if e.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	return c
}

func (e *pgEnv) run(t *testing.T, prog string, args ...string) string {
	t.Helper()
	out, err := e.cmd(prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type pgServer struct {
	env  *pgEnv
	data string
	sock string
	port int
}

func (s *pgServer) psql(t *testing.T, sql string) string {
	t.Helper()
	return strings.TrimSpace(s.env.run(t, "psql", "-X", "-h", s.sock, "-p", strconv.Itoa(s.port), "-v", "ON_ERROR_STOP=1", "-Atc", sql))
}

func (s *pgServer) tryPsql(sql string) (string, error) {
	out, err := s.env.cmd("psql", "-X", "-h", s.sock, "-p", strconv.Itoa(s.port), "-Atc", sql).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (s *pgServer) stop(t *testing.T) {
	_ = s.env.cmd("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop").Run()
}

func (s *pgServer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.data, "log.txt"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func appendConf(t *testing.T, data string, lines ...string) {
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, strings.Join(lines, "\n"))
}

// TestPostgresArchiveStandbyPromote is the end-to-end contract: a primary
// whose archive_command is pgwarm-wal ship, a warm standby built with
// pg_basebackup whose restore_command is pgwarm-wal restore --wait, rows
// written on the primary visible after promotion by the trigger file.
// It runs in the -short unit run on purpose (CI's unit step).
func TestPostgresArchiveStandbyPromote(t *testing.T) {
	env := newPG(t)
	arch := env.mkdir(t, "archive")
	sock := env.mkdir(t, "sock")
	port := 20000 + rand.Intn(20000)
	prim := &pgServer{env: env, data: filepath.Join(env.base, "primary"), sock: sock, port: port}
	env.run(t, "initdb", "-D", prim.data, "-U", "postgres", "--auth=trust", "--no-sync")
	shipCmd := fmt.Sprintf("%s ship --require-marker mounted --archive file://%s %%p %%f", binPath, arch)
	writeFile(t, arch, "mounted", nil)
	appendConf(t, prim.data,
		fmt.Sprintf("port = %d", port), "listen_addresses = ''", fmt.Sprintf("unix_socket_directories = '%s'", sock),
		"wal_level = replica", "archive_mode = on", fmt.Sprintf("archive_command = '%s'", shipCmd),
		"fsync = off", "logging_collector = off", "max_wal_senders = 4", "hot_standby = off")
	env.run(t, "pg_ctl", "-D", prim.data, "-l", filepath.Join(prim.data, "log.txt"), "-w", "start")
	defer prim.stop(t)

	prim.psql(t, "CREATE TABLE canary(id int PRIMARY KEY, note text); INSERT INTO canary SELECT g, 'before backup' FROM generate_series(1,1000) g")
	standby := &pgServer{env: env, data: filepath.Join(env.base, "standby"), sock: sock, port: port + 1}
	// -X none: the standby must get every byte of WAL through the archive.
	env.run(t, "pg_basebackup", "-h", sock, "-p", strconv.Itoa(port), "-D", standby.data, "-X", "none", "-c", "fast", "--no-sync")
	prim.psql(t, "INSERT INTO canary SELECT g, 'after backup' FROM generate_series(1001,2500) g")
	lastSeg := prim.psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	prim.psql(t, "SELECT pg_switch_wal()")

	trigger := filepath.Join(env.mkdir(t, "run"), "promote.trigger")
	restoreCmd := fmt.Sprintf("%s restore --archive %s --wait --trigger %s %%f %%p", binPath, arch, trigger)
	os.Remove(filepath.Join(standby.data, "log.txt")) // copied from the primary by pg_basebackup
	appendConf(t, standby.data, fmt.Sprintf("port = %d", standby.port), fmt.Sprintf("restore_command = '%s'", restoreCmd),
		fmt.Sprintf("archive_cleanup_command = '%s cleanup --archive %s %%r'", binPath, arch))
	// recovery.signal + a waiting restore_command is the pg_standby warm standby.
	writeFile(t, standby.data, "recovery.signal", nil)
	if env.cred != nil {
		os.Chown(filepath.Join(standby.data, "recovery.signal"), int(env.cred.Uid), int(env.cred.Gid))
	}
	env.run(t, "pg_ctl", "-D", standby.data, "-l", filepath.Join(standby.data, "log.txt"), "-W", "start")
	defer standby.stop(t)

	// Wait until the primary has archived the segment with the last rows.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(arch, "wal", lastSeg)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never archived; primary log:\n%s", lastSeg, prim.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The standby is in recovery and refuses connections.
	if out, err := standby.tryPsql("SELECT 1"); err == nil {
		t.Fatalf("warm standby accepted a query before promotion: %s", out)
	}
	// Smart trigger: replay everything archived, then promote.
	if err := os.WriteFile(trigger, []byte("smart\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		out, err := standby.tryPsql("SELECT pg_is_in_recovery()")
		if err == nil && out == "f" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby never promoted (%s); log:\n%s", out, standby.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := standby.psql(t, "SELECT count(*) FROM canary"); got != "2500" {
		t.Fatalf("promoted standby has %s rows, want 2500; log:\n%s", got, standby.logTail())
	}
	if tli := standby.psql(t, "SELECT timeline_id FROM pg_control_checkpoint()"); tli != "2" {
		t.Fatalf("timeline %s after promotion, want 2", tli)
	}
	// The new primary archives to the same archive (same cluster): its
	// timeline history must arrive, and the archive must verify clean.
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(arch, "wal", "00000002.history")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("00000002.history not archived by the promoted standby")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The backup history file pg_basebackup left and the history file of
	// the promotion were stored: what PostgreSQL writes passes the checks
	// of their kinds (CheckContentKind), on ship and on verify.
	if backups, _ := filepath.Glob(filepath.Join(arch, "wal", "*.backup")); len(backups) == 0 {
		t.Fatalf("no backup history file archived after pg_basebackup")
	}
	r := runBin(t, nil, nil, "verify", "--archive", arch)
	if r.code != 0 {
		t.Fatalf("verify after failover: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The archive is bound to this cluster: its id is the primary's.
	sysid := strings.TrimSpace(prim.psql(t, "SELECT system_identifier FROM pg_control_system()"))
	meta, _ := os.ReadFile(filepath.Join(arch, "pgwarm-archive.json"))
	if !strings.Contains(string(meta), sysid) {
		t.Fatalf("archive metadata %s lacks system identifier %s", meta, sysid)
	}

	// A second cluster pointed at the same archive is refused (exit 5) and
	// PostgreSQL keeps its WAL (archiver retries).
	other := &pgServer{env: env, data: filepath.Join(env.base, "other"), sock: sock, port: port + 2}
	env.run(t, "initdb", "-D", other.data, "-U", "postgres", "--auth=trust", "--no-sync")
	walDir := filepath.Join(other.data, "pg_wal")
	des, _ := os.ReadDir(walDir)
	for _, de := range des {
		if len(de.Name()) == 24 {
			r := runBin(t, nil, nil, "ship", "--archive", arch, filepath.Join(walDir, de.Name()), de.Name())
			r.want(t, 5, "belongs to database cluster")
			break
		}
	}
}

// TestPostgresStandbyIgnoresBrokenHistory: a history file that is not one
// in the archive (stored before the checks by kind, or planted on the
// archive host) stops a standby with recovery_target_timeline = latest
// with FATAL ("syntax error in history file") when restore hands it over.
// restore refuses it (exit 4, which PostgreSQL takes for "not archived"),
// so the standby starts and follows timeline 1.
func TestPostgresStandbyIgnoresBrokenHistory(t *testing.T) {
	env := newPG(t)
	arch := env.mkdir(t, "archive")
	sock := env.mkdir(t, "sock")
	port := 20000 + rand.Intn(20000)
	prim := &pgServer{env: env, data: filepath.Join(env.base, "primary"), sock: sock, port: port}
	env.run(t, "initdb", "-D", prim.data, "-U", "postgres", "--auth=trust", "--no-sync")
	appendConf(t, prim.data,
		fmt.Sprintf("port = %d", port), "listen_addresses = ''", fmt.Sprintf("unix_socket_directories = '%s'", sock),
		"wal_level = replica", "archive_mode = on", fmt.Sprintf("archive_command = '%s ship --archive %s %%p %%f'", binPath, arch),
		"fsync = off", "logging_collector = off", "max_wal_senders = 4")
	env.run(t, "pg_ctl", "-D", prim.data, "-l", filepath.Join(prim.data, "log.txt"), "-w", "start")
	defer prim.stop(t)
	standby := &pgServer{env: env, data: filepath.Join(env.base, "standby"), sock: sock, port: port + 1}
	env.run(t, "pg_basebackup", "-h", sock, "-p", strconv.Itoa(port), "-D", standby.data, "-X", "none", "-c", "fast", "--no-sync")
	prim.psql(t, "SELECT pg_switch_wal()")

	bad, _, err := walfile.Encode([]byte("garbage\n"), walfile.Zstd, walfile.PageInfo{})
	if err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(env.mkdir(t, "archive/wal"), "00000002.history")
	writeFile(t, filepath.Dir(planted), filepath.Base(planted), bad)
	if env.cred != nil {
		os.Chown(planted, int(env.cred.Uid), int(env.cred.Gid))
	}

	os.Remove(filepath.Join(standby.data, "log.txt"))
	appendConf(t, standby.data, fmt.Sprintf("port = %d", standby.port), "hot_standby = on",
		fmt.Sprintf("restore_command = '%s restore --archive %s %%f %%p'", binPath, arch))
	writeFile(t, standby.data, "standby.signal", nil)
	if env.cred != nil {
		os.Chown(filepath.Join(standby.data, "standby.signal"), int(env.cred.Uid), int(env.cred.Gid))
	}
	// -W: a standby that stops with FATAL must not hang the start.
	env.run(t, "pg_ctl", "-D", standby.data, "-l", filepath.Join(standby.data, "log.txt"), "-W", "start")
	defer standby.stop(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := standby.tryPsql("SELECT pg_is_in_recovery()")
		if err == nil && out == "t" {
			break
		}
		if l := standby.logTail(); time.Now().After(deadline) || strings.Contains(l, "history file") && strings.Contains(l, "FATAL") || strings.Contains(l, "startup process") {
			t.Fatalf("standby is not running in recovery (%s); log:\n%s", out, standby.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	log := standby.logTail()
	if strings.Contains(log, "syntax error in history file") || !strings.Contains(log, "00000002.history is not a timeline history file: line 1") {
		t.Fatalf("the broken history file was not refused by restore; log:\n%s", log)
	}
}
