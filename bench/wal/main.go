// Command bench/wal compares WAL archivers on the same real segments:
// pgwarm-wal (zstd, gzip, none), cp+fsync+rename, the seed's rsync -a, and
// pgBackRest archive-push. Each segment is shipped by its own process, as
// PostgreSQL's archiver does. Run through bench/wal/run.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/pgwarm-wal", "pgwarm-wal binary")
	scale := flag.Int("scale", 10, "pgbench scale")
	secs := flag.Int("seconds", 5, "pgbench run time")
	idle := flag.Int("idle", 3, "forced idle switches")
	keep := flag.String("keep", "", "copy the captured segments to this directory")
	rounds := flag.Int("rounds", 5, "times every archiver ships the segments (the table gives the median)")
	flag.Parse()
	if *rounds < 1 {
		*rounds = 1
	}
	if err := run(*bin, *scale, *secs, *idle, *rounds, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench-wal:", err)
		os.Exit(1)
	}
}

type env struct {
	pgbin, base string
	cred        *syscall.Credential
	port        int
	sock, data  string
}

func (e *env) cmd(prog string, args ...string) *exec.Cmd {
	if !strings.Contains(prog, "/") {
		if _, err := os.Stat(filepath.Join(e.pgbin, prog)); err == nil {
			prog = filepath.Join(e.pgbin, prog)
		}
	}
	c := exec.Command(prog, args...)
	c.Dir = e.base
	c.Env = append(os.Environ(), "PGUSER=postgres", "PGDATABASE=postgres", "PGHOST="+e.sock, "PGPORT="+strconv.Itoa(e.port), "LC_ALL=C")
	if e.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	return c
}

func (e *env) run(prog string, args ...string) (string, error) {
	out, err := e.cmd(prog, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", prog, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (e *env) mkdir(name string) string {
	p := filepath.Join(e.base, name)
	os.MkdirAll(p, 0o700)
	if e.cred != nil {
		os.Chown(p, int(e.cred.Uid), int(e.cred.Gid))
	}
	return p
}

func findPG() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(found[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(found[j])))
		return vi > vj
	})
	if len(found) == 0 {
		return "", fmt.Errorf("no PostgreSQL under /usr/lib/postgresql (set PG_BIN)")
	}
	return found[0], nil
}

func run(bin string, scale, secs, idle, rounds int, keep string) error {
	pgbin, err := findPG()
	if err != nil {
		return err
	}
	base, err := os.MkdirTemp("", "pgwarm-bench-wal-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	e := &env{pgbin: pgbin, base: base, port: 45432}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		e.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		os.Chown(base, uid, gid)
	}
	absBin, _ := filepath.Abs(bin)
	// Copy the binary where the postgres user can execute it.
	mybin := filepath.Join(base, "pgwarm-wal")
	if b, err := os.ReadFile(absBin); err != nil {
		return err
	} else if err := os.WriteFile(mybin, b, 0o755); err != nil {
		return err
	}

	// 1. Real WAL: capture every segment the archiver is given.
	capture := e.mkdir("capture")
	e.sock = e.mkdir("sock")
	e.data = filepath.Join(base, "data")
	if _, err := e.run("initdb", "-D", e.data, "-U", "postgres", "--auth=trust", "--no-sync"); err != nil {
		return err
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\nwal_level = replica\narchive_mode = on\narchive_command = 'cp %%p %s/%%f'\nmax_wal_size = 1GB\n", e.port, e.sock, capture)
	f, _ := os.OpenFile(filepath.Join(e.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(conf)
	f.Close()
	if _, err := e.run("pg_ctl", "-D", e.data, "-l", filepath.Join(base, "pg.log"), "-w", "start"); err != nil {
		return err
	}
	defer e.run("pg_ctl", "-D", e.data, "-m", "fast", "-w", "stop")
	if _, err := e.run("pgbench", "-i", "-q", "-s", strconv.Itoa(scale)); err != nil {
		return err
	}
	if _, err := e.run("pgbench", "-c", "2", "-T", strconv.Itoa(secs)); err != nil {
		return err
	}
	var idleSeg string
	for i := 0; i < idle; i++ {
		// What archive_timeout does on a quiet server: a tiny write, then a
		// forced switch leaving the rest of the segment unused.
		if _, err := e.run("psql", "-Atc", "CREATE TABLE IF NOT EXISTS heartbeat(t timestamptz); INSERT INTO heartbeat VALUES (now())"); err != nil {
			return err
		}
		name, err := e.run("psql", "-Atc", "SELECT pg_walfile_name(pg_current_wal_lsn())")
		if err != nil {
			return err
		}
		if _, err := e.run("psql", "-Atc", "SELECT pg_switch_wal()"); err != nil {
			return err
		}
		idleSeg = name
	}
	// Wait until the last idle segment has been captured.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(capture, idleSeg)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("segment %s never archived", idleSeg)
		}
	}
	time.Sleep(300 * time.Millisecond)
	var segs []string
	var total int64
	des, _ := os.ReadDir(capture)
	for _, de := range des {
		if len(de.Name()) == 24 {
			segs = append(segs, de.Name())
			info, _ := de.Info()
			total += info.Size()
		}
	}
	sort.Strings(segs)
	if keep != "" {
		if out, err := exec.Command("cp", "-a", capture+"/.", keep).CombinedOutput(); err != nil {
			return fmt.Errorf("keeping segments: %v %s", err, out)
		}
	}

	// Each round ships every segment with every method into a fresh
	// archive; the order of the methods rotates so that a slow spell of a
	// shared machine does not land on one method only. The table gives the
	// median round.
	methods := []method{
		shipper(e, mybin, "zstd"), shipper(e, mybin, "gzip"), shipper(e, mybin, "none"),
		{name: "cp + fsync + rename", prepare: func(dir string) (func(src, name string) []string, string, error) {
			return func(src, name string) []string {
				return []string{"/bin/sh", "-c", `cp "$1" "$2/.$3.tmp" && sync "$2/.$3.tmp" && mv "$2/.$3.tmp" "$2/$3" && sync "$2"`, "sh", src, dir, name}
			}, dir, nil
		}},
		{name: "rsync -a (the seed)", prepare: func(dir string) (func(src, name string) []string, string, error) {
			return func(src, name string) []string {
				return []string{"/bin/sh", "-c", `test ! -f "$2/$3" && rsync -a "$1" "$2/$3"`, "sh", src, dir, name}
			}, dir, nil
		}},
		{name: "pgBackRest archive-push (zst)", prepare: func(dir string) (func(src, name string) []string, string, error) {
			// pgBackRest needs a stanza bound to this cluster, in a fresh repository each round.
			pbconf := filepath.Join(dir, "pgbackrest.conf")
			os.WriteFile(pbconf, []byte(fmt.Sprintf("[global]\nrepo1-path=%s\ncompress-type=zst\nlog-level-console=warn\nlog-level-file=off\nlock-path=%s\nspool-path=%s\n\n[bench]\npg1-path=%s\npg1-socket-path=%s\npg1-port=%d\n",
				filepath.Join(dir, "repo"), filepath.Join(dir, "lock"), filepath.Join(dir, "spool"), e.data, e.sock, e.port)), 0o644)
			if _, err := e.run("pgbackrest", "--config="+pbconf, "--stanza=bench", "stanza-create"); err != nil {
				return nil, "", err
			}
			return func(src, name string) []string {
				return []string{"pgbackrest", "--config=" + pbconf, "--stanza=bench", "archive-push", src}
			}, filepath.Join(dir, "repo", "archive"), nil
		}},
	}
	walls := make([][]time.Duration, len(methods))
	stored := make([]int64, len(methods))
	idleBytes := make([]int64, len(methods))
	for r := 0; r < rounds; r++ {
		for k := range methods {
			i := (k + r) % len(methods)
			m := methods[i]
			dir := e.mkdir(fmt.Sprintf("arch-%d-%d", i, r))
			argv, storeDir, err := m.prepare(dir)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			exec.Command("sync").Run()
			start := time.Now()
			for _, s := range segs {
				a := argv(filepath.Join(capture, s), s)
				if out, err := e.run(a[0], a[1:]...); err != nil {
					return fmt.Errorf("%s: %w %s", m.name, err, out)
				}
			}
			walls[i] = append(walls[i], time.Since(start))
			stored[i], idleBytes[i] = sizes(storeDir, idleSeg)
			os.RemoveAll(dir)
		}
	}
	fmt.Printf("%d segments (%d MiB) of real PostgreSQL WAL from %s: pgbench -s %d for %d s, then %d forced idle switches; idle segment %s; %d rounds, methods in rotating order\n\n",
		len(segs), total>>20, filepath.Dir(pgbin), scale, secs, idle, idleSeg, rounds)
	fmt.Println("| archiver | wall time (median) | min–max | MB/s | bytes stored | bytes for one idle forced switch |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for i, m := range methods {
		w := walls[i]
		slices.Sort(w)
		med := w[len(w)/2]
		fmt.Printf("| %s | %.2f s | %.2f–%.2f s | %.0f | %s | %s |\n", m.name, med.Seconds(), w[0].Seconds(), w[len(w)-1].Seconds(),
			float64(total)/1e6/med.Seconds(), human(stored[i]), human(idleBytes[i]))
	}
	return nil
}

// method is one archiver: prepare sets it up in a fresh directory and
// returns the command for one segment and where its files end up.
type method struct {
	name    string
	prepare func(dir string) (argv func(src, name string) []string, storeDir string, err error)
}

func shipper(e *env, bin, comp string) method {
	return method{name: "pgwarm-wal ship (" + comp + ")", prepare: func(dir string) (func(src, name string) []string, string, error) {
		return func(src, name string) []string {
			return []string{bin, "ship", "--compression", comp, "--archive", dir, src, name}
		}, dir, nil
	}}
}

// sizes sums regular files under dir and finds the one for the idle segment
// (pgBackRest appends "-<sha1>.zst" to the name).
func sizes(dir, idleSeg string) (total, idle int64) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		if strings.HasSuffix(p, ".json") || strings.Contains(p, "archive.info") {
			return nil // metadata, not WAL
		}
		total += info.Size()
		if strings.HasPrefix(filepath.Base(p), idleSeg) {
			idle = info.Size()
		}
		return nil
	})
	return total, idle
}

func human(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 10<<10:
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
