// Command bench/ops measures the operations of a pair applied by pgwarm on
// its own lab instance: the delay from a segment being archived to the
// standby having replayed it (with pgwarm's restore retry and with
// PostgreSQL's default 5s, same run), promote with the old primary
// unreachable, and rebuild by pg_rewind against a fresh base backup. Run
// through bench/ops/run.sh, which resets the lab instance and applies the
// pair first.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	state := flag.String("state", "examples/lab/.state-bench", "the lab instance's state directory (lab.env, replication_password)")
	bin := flag.String("bin", "bin/pgwarm", "pgwarm binary")
	n := flag.Int("n", 20, "samples per replay row")
	scale := flag.Int("scale", 5, "pgbench scale of the database rebuild copies")
	flag.Parse()
	if err := run(*state, *bin, *n, *scale); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ops:", err)
		os.Exit(1)
	}
}

type lab struct {
	next     int // the id of the last replay row
	env      map[string]string
	inv      string
	bin      string
	password string
}

type row struct{ what, measured, anchor string }

func run(state, bin string, n, scale int) error {
	l := &lab{env: map[string]string{}, bin: bin}
	f, err := os.Open(filepath.Join(state, "lab.env"))
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			l.env[k] = v
		}
	}
	f.Close()
	pw, err := os.ReadFile(filepath.Join(state, "replication_password"))
	if err != nil {
		return err
	}
	l.password = strings.TrimSpace(string(pw))
	// A copy the promote may rewrite (--update-inventory), next to the
	// original: its key paths are relative to it.
	src, err := os.ReadFile(l.env["LAB_INVENTORY"])
	if err != nil {
		return err
	}
	l.inv = filepath.Join(state, "bench.yaml")
	if err := os.WriteFile(l.inv, src, 0o600); err != nil {
		return err
	}

	var rows []row
	l.sql("pg1", "CREATE TABLE IF NOT EXISTS bench_replay (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
	if err := l.settle(); err != nil {
		return fmt.Errorf("pg2: replaying the table: %w", err)
	}
	l.next, _ = strconv.Atoi(lastLine(l.sql("pg1", "SELECT coalesce(max(id), 0) FROM bench_replay")))
	for _, c := range []struct{ set, anchor string }{
		{"", "p50 < 200 ms (target); 1 s retry: 0.85 s"},
		{"5s", "4.4 s (issue, PostgreSQL 15)"},
	} {
		if c.set != "" {
			l.sql("pg2", "ALTER SYSTEM SET wal_retrieve_retry_interval = '"+c.set+"'")
			l.sql("pg2", "SELECT pg_reload_conf()")
		}
		cur := strings.TrimSpace(l.sql("pg2", "SHOW wal_retrieve_retry_interval"))
		iv, err := pgDuration(cur)
		if err != nil {
			return err
		}
		if _, err := l.replay(iv); err != nil { // warm-up: the startup process may sleep in the old interval
			return err
		}
		var ds []time.Duration
		for i := 0; i < n; i++ {
			d, err := l.replay(iv)
			if err != nil {
				return err
			}
			ds = append(ds, d)
			fmt.Fprintf(os.Stderr, "bench-ops: retry %s sample %d: %s\n", cur, i+1, d.Round(time.Millisecond))
		}
		label := "pgwarm (restore_retry " + cur + ", shared ssh)"
		if c.set != "" {
			label = "PostgreSQL default retry " + cur + " (ALTER SYSTEM on pg2)"
		}
		rows = append(rows, row{"archived → replayed, " + label, pct(ds), c.anchor})
		if c.set != "" {
			l.sql("pg2", "ALTER SYSTEM RESET wal_retrieve_retry_interval")
			l.sql("pg2", "SELECT pg_reload_conf()")
		}
	}
	rows = append(rows, row{"archived → replayed, pg_standby -s 60 (seed)", "not run", "up to 60 s (issue)"})

	// A database worth rebuilding, replayed on pg2 before pg1 goes away.
	l.exec("pg1", "cd / && runuser -u postgres -- pgbench -q -i -s "+strconv.Itoa(scale)+" postgres >/dev/null 2>&1")
	size := strings.TrimSpace(l.sql("pg1", "SELECT pg_size_pretty(pg_database_size('postgres'))"))
	if err := l.settle(); err != nil {
		return fmt.Errorf("pg2: replaying pgbench's tables: %w", err)
	}
	// The short divergence the target means: a checkpoint (as
	// checkpoint_timeout would have made one) and then a minute's worth of
	// pgbench writes that never reach pg2. Without the checkpoint pg_rewind's
	// standby replays the whole load again from the archive.
	l.sql("pg1", "CHECKPOINT")
	l.exec("pg1", "cd / && runuser -u postgres -- pgbench -n -T 5 -c 2 postgres >/dev/null 2>&1")

	// Promote with the old primary unreachable.
	if out, err := exec.Command("docker", "kill", l.env["LAB_PG1_CONTAINER"]).CombinedOutput(); err != nil {
		return fmt.Errorf("docker kill pg1: %v %s", err, out)
	}
	out, err := l.pgwarm("promote", "--update-inventory", "pg2")
	if err != nil {
		return fmt.Errorf("promote: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`, (\S+) after the command started \(([^)]*)\)`).FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("promote printed no time:\n%s", out)
	}
	rows = append(rows, row{"promote pg2, pg1 killed (command → first write)", m[1] + " (" + m[2] + ")", "< 1 s (target); pg_ctl promote 0.1–0.2 s; Patroni/repmgr 30–60 s"})

	// pg1 comes back as a stale primary after writes on pg2: rewind, then
	// the same host again from a fresh base backup.
	if out, err := exec.Command("docker", "start", l.env["LAB_PG1_CONTAINER"]).CombinedOutput(); err != nil {
		return fmt.Errorf("docker start pg1: %v %s", err, out)
	}
	l.waitSSH("pg1")
	// Its crash recovery first: rebuild refuses a server it cannot query.
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := l.sqlErr("pg1", "SELECT 1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pg1 did not accept connections within 5 minutes of its start")
		}
	}
	l.sql("pg2", "CREATE TABLE IF NOT EXISTS bench_diverge AS SELECT g FROM generate_series(1, 10000) g")
	for _, method := range []string{"rewind", "basebackup"} {
		out, lines, err := l.pgwarmTimed("rebuild", "--method", method, "pg1")
		if err != nil {
			return fmt.Errorf("rebuild --method %s: %v\n%s", method, err, out)
		}
		m := regexp.MustCompile(`rebuilt as a standby of \S+ with (\S+) in (\S+) \((?:pg_rewind|base backup) (\S+)\)`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("rebuild printed no time:\n%s", out)
		}
		measured := m[2] + " in all, copy " + m[3] + " (" + m[1] + ")"
		// What pg_rewind copied: every non-relation file whole, the
		// source's pg_wal included, plus the blocks the target changed.
		if c := regexp.MustCompile(`pg_rewind: need to copy (\d+ MB) \(total source directory size is (\d+ MB)\)`).FindStringSubmatch(out); c != nil {
			measured += ", " + c[1] + " of " + c[2] + " copied"
		}
		if ph := rebuildPhases(lines); ph != "" {
			measured += "; " + ph
		}
		rows = append(rows, row{"rebuild pg1 (" + size + " database) --method " + method, measured, "1 GiB: rewind ≥ 10× faster than base backup (target)"})
	}

	// The other promote target: pg2 answers, so it is fenced (WAL switched
	// so its last writes are archived, stopped fast) before pg1, just
	// rebuilt as its standby, is promoted.
	out, err = l.pgwarm("promote", "--update-inventory", "pg1")
	if err != nil {
		return fmt.Errorf("promote pg1 with pg2 reachable: %v\n%s", err, out)
	}
	m = regexp.MustCompile(`, (\S+) after the command started \(([^)]*)\)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "pg2: fenced: stopped fast") {
		return fmt.Errorf("promote pg1 printed no time or did not fence pg2:\n%s", out)
	}
	rows = append(rows, row{"promote pg1, pg2 reachable and fenced (command → first write)", m[1] + " (" + m[2] + ")", "< 2 s (target)"})

	w := 0
	for _, r := range rows {
		w = max(w, len([]rune(r.what)))
	}
	mw := 0
	for _, r := range rows {
		mw = max(mw, len([]rune(r.measured)))
	}
	fmt.Printf("%-*s  %-*s  %s\n", w, "measurement", mw, "measured (this run)", "anchor")
	for _, r := range rows {
		fmt.Printf("%s  %s  %s\n", pad(r.what, w), pad(r.measured, mw), r.anchor)
	}
	return nil
}

func pad(s string, w int) string { return s + strings.Repeat(" ", max(0, w-len([]rune(s)))) }

// replay inserts a row on pg1, switches WAL and returns the time from the
// segment being archived (pg_stat_archiver on pg1) to pg2 having replayed
// past the row (pg2's clock; the containers share the kernel's). Before the
// switch it waits a random part of the standby's restore cycle (linger and
// retry), so the segment arrives at a random point of it.
// restoreLinger is the rendered restore_command's --linger.
const restoreLinger = time.Second

func (l *lab) replay(interval time.Duration) (time.Duration, error) {
	l.next++
	id := strconv.Itoa(l.next)
	type got struct {
		at  float64
		err error
	}
	replayed := make(chan got, 1)
	go func() {
		// Spins inside the standby until the row is visible there, then
		// reads the standby's clock. Started before the write, so that
		// docker exec's own start-up is not counted.
		out, err := l.sqlErr("pg2", `SET statement_timeout = '120s';
DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM bench_replay WHERE id = `+id+`) LOOP PERFORM pg_sleep(0.002); END LOOP; END $$;
SELECT extract(epoch FROM clock_timestamp())`)
		if err != nil {
			replayed <- got{err: fmt.Errorf("%w: %s", err, out)}
			return
		}
		f, err := strconv.ParseFloat(lastLine(out), 64)
		replayed <- got{f, err}
	}()
	// The standby's cycle is a lingering restore (restoreLinger) and then
	// the retry interval: a write at a random point of the whole cycle, not
	// only of the retry, or the samples line up with the linger's end.
	time.Sleep(500*time.Millisecond + rand.N(interval+restoreLinger))
	// psql -c prints only the last result: one call per statement.
	l.sql("pg1", "INSERT INTO bench_replay (id) VALUES ("+id+")")
	seg := lastLine(l.sql("pg1", "SELECT pg_walfile_name(pg_current_wal_lsn())"))
	l.sql("pg1", "SELECT pg_switch_wal()")
	var archived float64
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := strings.TrimSpace(l.sql("pg1", "SELECT coalesce(last_archived_wal, '') || '|' || coalesce(extract(epoch FROM last_archived_time)::text, '') FROM pg_stat_archiver"))
		w, t, _ := strings.Cut(out, "|")
		if w >= seg && t != "" {
			f, err := strconv.ParseFloat(t, 64)
			if err != nil {
				return 0, err
			}
			archived = f
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("pg1: segment %s not archived within 2m (last %s)", seg, w)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := <-replayed
	if r.err != nil {
		return 0, fmt.Errorf("pg2: waiting for row %s: %w", id, r.err)
	}
	return time.Duration((r.at - archived) * float64(time.Second)), nil
}

// settle waits until pg2 has replayed everything pg1 wrote so far.
func (l *lab) settle() error {
	lsn := strings.TrimSpace(l.sql("pg1", "SELECT pg_current_wal_lsn()"))
	l.sql("pg1", "SELECT pg_switch_wal()")
	_, err := l.sqlErr("pg2", `SET statement_timeout = '120s';
DO $$ BEGIN WHILE pg_last_wal_replay_lsn() < '`+lsn+`'::pg_lsn LOOP PERFORM pg_sleep(0.01); END LOOP; END $$`)
	return err
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(ls[len(ls)-1])
}

func pct(ds []time.Duration) string {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1)+0.5)] }
	ms := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + " s" }
	return fmt.Sprintf("p50 %s, p90 %s, max %s (n=%d)", ms(at(0.5)), ms(at(0.9)), ms(ds[len(ds)-1]), len(ds))
}

// pgDuration parses SHOW output like 200ms or 5s.
func pgDuration(s string) (time.Duration, error) {
	return time.ParseDuration(strings.Replace(s, "min", "m", 1))
}

func (l *lab) exec(h, script string) string {
	out, err := l.execErr(h, script)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-ops: %s: %v\n%s", h, err, out)
		os.Exit(1)
	}
	return out
}

func (l *lab) execErr(h, script string, env ...string) (string, error) {
	args := []string{"exec", "-i"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, l.env["LAB_"+strings.ToUpper(h)+"_CONTAINER"], "bash", "-c", script)
	out, err := exec.Command("docker", args...).CombinedOutput()
	return string(out), err
}

func (l *lab) sqlErr(h, q string) (string, error) {
	return l.execErr(h, `cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -c "$Q"`, "Q="+q)
}

func (l *lab) sql(h, q string) string {
	out, err := l.sqlErr(h, q)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-ops: %s: %s: %v\n%s", h, q, err, out)
		os.Exit(1)
	}
	return out
}

func (l *lab) waitSSH(h string) {
	for i := 0; i < 100; i++ {
		if _, err := l.execErr(h, "pgrep -x sshd >/dev/null"); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (l *lab) pgwarm(args ...string) (string, error) {
	out, _, err := l.pgwarmTimed(args...)
	return out, err
}

// pgwarmTimed runs pgwarm and also returns when each output line arrived,
// counted from the command's start: pgwarm prints a line as a step ends.
func (l *lab) pgwarmTimed(args ...string) (string, []timedLine, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	full := append([]string{args[0], "-i", l.inv}, args[1:]...)
	cmd := exec.CommandContext(ctx, l.bin, full...)
	cmd.Env = append(os.Environ(), "PGWARM_REPLICATION_PASSWORD="+l.password, "NO_COLOR=1")
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return "", nil, err
	}
	pw.Close()
	var b strings.Builder
	var lines []timedLine
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		lines = append(lines, timedLine{time.Since(start), sc.Text()})
		b.WriteString(sc.Text() + "\n")
	}
	pr.Close()
	err = cmd.Wait()
	fmt.Fprintf(os.Stderr, "$ pgwarm %s\n%s", strings.Join(full, " "), b.String())
	return b.String(), lines, err
}

type timedLine struct {
	at   time.Duration
	text string
}

// at is when the first line containing s arrived; false when none did.
func at(lines []timedLine, s string) (time.Duration, bool) {
	for _, l := range lines {
		if strings.Contains(l.text, s) {
			return l.at, true
		}
	}
	return 0, false
}

// rebuildPhases splits a rebuild's time by the lines that end its steps:
// observing the pair and stopping the target, pg_rewind alone (its own run, without the
// preparation the copy time includes), and from the start command to the
// canary's write (the start returns once the standby is consistent: its
// catch-up). Steps it did not print are left out.
func rebuildPhases(lines []timedLine) string {
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s" }
	var ph []string
	if t, ok := at(lines, ": stopped "); ok {
		ph = append(ph, "observe+stop "+secs(t))
	}
	if a, ok := at(lines, ": pg_rewind from "); ok {
		if b, ok := at(lines, ": pg_rewind: Done!"); ok {
			ph = append(ph, "pg_rewind alone "+secs(b-a))
		}
	}
	if a, ok := at(lines, ": start postgresql"); ok {
		if b, ok := at(lines, ": canary "); ok {
			ph = append(ph, "start → canary written "+secs(b-a))
		}
	}
	return strings.Join(ph, ", ")
}
