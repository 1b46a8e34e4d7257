package apply

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

// The seed's own base backup (replication.seed: stream-tar), for sites that
// allow no replication connection: one psql session on the primary runs the
// low-level non-exclusive backup API around a tar of the data directory,
// which pgwarm relays from the primary to the standby (they need no SSH
// trust between them); the backup_label pg_backup_stop returns is written
// into the copy, and the WAL the copy needs comes from the archive.

// Markers in the backup session's output.
const (
	tarStartedMarker = "pgwarm-backup-started"
	tarStopMarker    = "pgwarm-backup-stop "
)

// tarBackupWait bounds how long the backup session waits for the copy; a
// session left behind by a killed run ends its backup after it at the latest
// (the next run ends it at once, see seedStreamTar).
const tarBackupWait = 24 * time.Hour

// BackupSQL returns the statements that start and stop a non-exclusive
// low-level backup on PostgreSQL v: pg_backup_start/pg_backup_stop from 15,
// pg_start_backup/pg_stop_backup (non-exclusive form) for 9.6 to 14 (9.6's
// pg_stop_backup takes no wait_for_archive and always waits). The
// stop statement prints one line: the marker, the stop LSN, and backup_label
// and tablespace_map in base64 (empty for no tablespace map). Pure.
func BackupSQL(v inventory.Version, label string) (start, stop string) {
	b64 := func(col string) string {
		return "translate(encode(convert_to(coalesce(" + col + ", ''), 'UTF8'), 'base64'), E'\\n', '')"
	}
	sel := "SELECT " + sqlString(tarStopMarker) + " || lsn::text || ' ' || " + b64("labelfile") + " || ' ' || " + b64("spcmapfile")
	if v.AtLeast(15) {
		return "SELECT pg_backup_start(" + sqlString(label) + ", fast => true);\n",
			sel + " FROM pg_backup_stop(wait_for_archive => true);\n"
	}
	stop = sel + " FROM pg_stop_backup(false, true);\n"
	if !v.AtLeast(10) {
		// 9.6 has no wait_for_archive argument: it always waits.
		stop = sel + " FROM pg_stop_backup(false);\n"
	}
	return "SELECT pg_start_backup(" + sqlString(label) + ", true, false);\n", stop
}

// BackupScript is the psql script of the backup session: start the backup,
// say so (the marker line on stdout), wait until the file done appears (or
// wait passes), stop the backup and print its label. Pure.
func BackupScript(v inventory.Version, label, done string, wait time.Duration) string {
	start, stop := BackupSQL(v, label)
	loop := fmt.Sprintf(`echo %s; i=0; while [ ! -e %s ]; do sleep 1; i=$((i+1)); if [ $i -ge %d ]; then echo 'pgwarm: copy not finished in time, stopping the backup' >&2; break; fi; done`,
		tarStartedMarker, host.Quote(done), int(wait.Seconds()))
	return "SET statement_timeout = 0;\n" +
		"\\o /dev/null\n" + start + "\\o\n" +
		"\\! " + loop + "\n" +
		stop
}

// BackupResult is what pg_backup_stop returned.
type BackupResult struct {
	StopLSN       string
	Label         []byte // backup_label
	TablespaceMap []byte // tablespace_map; empty when there are no tablespaces
}

// ParseBackupOutput finds the stop line in the backup session's output. Pure.
func ParseBackupOutput(out string) (BackupResult, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), tarStopMarker)
		if !ok {
			continue
		}
		f := strings.Split(rest, " ")
		if len(f) != 3 || f[0] == "" {
			return BackupResult{}, fmt.Errorf("malformed pg_backup_stop line %q", line)
		}
		label, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil {
			return BackupResult{}, fmt.Errorf("backup_label: %w", err)
		}
		spc, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil {
			return BackupResult{}, fmt.Errorf("tablespace_map: %w", err)
		}
		if !bytes.HasPrefix(label, []byte("START WAL LOCATION:")) {
			return BackupResult{}, fmt.Errorf("backup_label does not start with START WAL LOCATION: %q", firstLineOf(label))
		}
		return BackupResult{StopLSN: f[0], Label: label, TablespaceMap: spc}, nil
	}
	return BackupResult{}, errors.New("no pg_backup_stop line in the backup session's output")
}

func firstLineOf(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\n"))
	return string(l)
}

// TarExcludes are the tar --exclude patterns for a copy of the data
// directory taken with `tar -C datadir -c .`: what the documentation of the
// low-level backup API says to leave out (WAL content, postmaster files,
// directories reset at startup, temporary files, relcache init files), and
// the files apply writes from pg_backup_stop's answer. Pure.
func TarExcludes(v inventory.Version) []string {
	wal := "pg_wal"
	if !v.AtLeast(10) {
		wal = "pg_xlog"
	}
	ex := []string{"./" + wal + "/*"}
	for _, f := range []string{"postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "backup_label.old", "tablespace_map.old", "standby.signal", "recovery.signal", "recovery.conf"} {
		ex = append(ex, "./"+f)
	}
	for _, d := range []string{"pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans"} {
		ex = append(ex, "./"+d+"/*")
	}
	// Unanchored: anywhere in the tree.
	return append(ex, "pgsql_tmp*", "pg_internal.init")
}

// TarCreateCommand streams a tar of dir to stdout. GNU tar exits 1 when a
// file changed while it was read, which a live cluster does and the WAL
// replay repairs; the caller accepts exit 1. Pure.
func TarCreateCommand(v inventory.Version, dir string) string {
	args := []string{"tar", "-C", dir, "-c", "-f", "-", "--warning=no-file-changed", "--warning=no-file-removed", "--warning=no-file-shrank", "--ignore-failed-read"}
	for _, e := range TarExcludes(v) {
		args = append(args, "--exclude="+e)
	}
	return host.Join(append(args, ".")...)
}

// tarDir is the directory of the backup session's files on the primary.
func tarDir(s *State) string { return path.Join(s.Paths.StateDir, "seed-tar") }

// seedStreamTar fills h's (empty) data directory with the seed's own base
// backup of the primary. The marker of seed() is in place: a run killed
// in between leaves it, and the next run starts again from an empty
// directory.
func seedStreamTar(ctx context.Context, s *State, h host.Host) error {
	name := h.Name()
	primName := s.Inv.Primary().Name
	prim := s.host(primName)
	ps, ok1 := prim.(host.Streamer)
	hs, ok2 := h.(host.Streamer)
	if !ok1 || !ok2 {
		return fmt.Errorf("%s: seed stream-tar: the connection cannot stream", name)
	}
	v := s.Inv.Postgres.Version
	dd := s.Paths.DataDir
	if n, err := psql(ctx, s, prim, "SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global');\n"); err != nil {
		return err
	} else if n != "0" {
		return fmt.Errorf("%s: seed stream-tar copies the data directory only, and %s has %s tablespace(s) outside it; use seed: basebackup", name, primName, n)
	}
	total, _ := psql(ctx, s, prim, "SELECT sum(pg_database_size(oid)) FROM pg_database;\n")
	size, _ := strconv.ParseInt(total, 10, 64)

	// A fresh directory for this run's session; sessions of killed runs
	// are told to stop their backups first.
	token := make([]byte, 6)
	rand.Read(token)
	base := tarDir(s)
	dir := path.Join(base, hex.EncodeToString(token))
	done := path.Join(dir, "done")
	prep := script("seedtar-prep.sh", base, dir, "postgres:postgres")
	if _, err := host.CheckRun(ctx, prim, host.Cmd{Command: prep}); err != nil {
		return err
	}

	label := "pgwarm seed " + name
	script := BackupScript(v, label, done, tarBackupWait)
	psqlCmd := asPostgres(host.Join(path.Join(s.Paths.BinDir, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
		"-p", strconv.Itoa(s.Inv.Postgres.Port), "-d", "postgres", "-f", "-"))

	bctx, cancelBackup := context.WithCancel(ctx)
	defer cancelBackup()
	started := make(chan struct{})
	out := &markerWriter{marker: tarStartedMarker, seen: started}
	type answer struct {
		res host.Result
		err error
	}
	backupc := make(chan answer, 1)
	go func() {
		res, err := ps.RunStream(bctx, host.Cmd{Command: psqlCmd}, strings.NewReader(script), out)
		backupc <- answer{res, err}
	}()
	// finishBackup tells the session the copy is over and waits for it.
	var once sync.Once
	var final answer
	finishBackup := func() answer {
		once.Do(func() {
			touch := "touch " + host.Quote(done)
			if _, err := host.CheckRun(ctx, prim, host.Cmd{Command: touch}); err != nil {
				cancelBackup()
			}
			final = <-backupc
		})
		return final
	}
	defer finishBackup()

	s.Out.Hostf(primName, "starting a non-exclusive backup (%s) for %s", label, name)
	select {
	case <-started:
	case a := <-backupc:
		final = a
		once.Do(func() {})
		if a.err != nil {
			return a.err
		}
		return fmt.Errorf("%s: backup session ended before the copy (exit %d): %s", primName, a.res.ExitCode, strings.TrimSpace(string(a.res.Stderr)))
	case <-ctx.Done():
		return ctx.Err()
	}

	s.Out.Hostf(name, "seeding %s with a tar of %s:%s relayed through pgwarm, ~%s", dd, primName, dd, humanBytes(size))
	if err := relayTar(ctx, s, ps, hs, primName, name, v, dd, size); err != nil {
		return err
	}

	a := finishBackup()
	if a.err != nil {
		return a.err
	}
	if !a.res.OK() {
		return fmt.Errorf("%s: stopping the backup failed (exit %d): %s", primName, a.res.ExitCode, strings.TrimSpace(string(a.res.Stderr)))
	}
	br, err := ParseBackupOutput(out.String())
	if err != nil {
		return fmt.Errorf("%s: %w (stderr: %s)", primName, err, strings.TrimSpace(string(a.res.Stderr)))
	}
	s.Out.Hostf(primName, "backup stopped at %s; the WAL up to it is in the archive", br.StopLSN)
	if _, err := prim.Run(ctx, host.Cmd{Command: "rm -rf " + host.Quote(dir)}); err != nil {
		return err
	}

	if err := h.WriteFile(ctx, path.Join(dd, "backup_label"), br.Label, 0o600, "postgres:postgres"); err != nil {
		return err
	}
	if len(br.TablespaceMap) > 0 {
		if err := h.WriteFile(ctx, path.Join(dd, "tablespace_map"), br.TablespaceMap, 0o600, "postgres:postgres"); err != nil {
			return err
		}
	}
	wal := "pg_wal"
	if !v.AtLeast(10) {
		wal = "pg_xlog"
	}
	mk := fmt.Sprintf("set -e; cd %s; mkdir -p %s/archive_status; chown postgres:postgres %s %s/archive_status; chmod 0700 %s %s/archive_status",
		host.Quote(dd), wal, wal, wal, wal, wal)
	_, err = host.CheckRun(ctx, h, host.Cmd{Command: mk})
	return err
}

// relayTar streams the tar from the primary to the standby through an
// io.Pipe, reporting progress; either side failing stops the other.
func relayTar(ctx context.Context, s *State, ps, hs host.Streamer, primName, name string, v inventory.Version, dd string, size int64) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	cw := &countWriter{w: pw}
	bar := s.Out.Progress(name, "base backup", size, 5*time.Second)
	var wg sync.WaitGroup
	// The side that fails first is the cause; the other one fails because
	// it was stopped. Each records its failure before it stops the other.
	var first error
	var firstOnce sync.Once
	fail := func(err error) { firstOnce.Do(func() { first = err }) }
	wg.Add(2)
	go func() {
		defer wg.Done()
		res, err := ps.RunStream(rctx, host.Cmd{Command: TarCreateCommand(v, dd)}, nil, cw)
		if err == nil && res.ExitCode > 1 {
			err = fmt.Errorf("%s: tar of %s exited %d: %s", primName, dd, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
		}
		if err != nil {
			fail(err)
			cancel()
		}
		pw.CloseWithError(err)
	}()
	pctx, stopProgress := context.WithCancel(rctx)
	go func() {
		defer wg.Done()
		for pctx.Err() == nil {
			bar.Set(cw.n.Load())
			_ = sleepCtx(pctx, 500)
		}
	}()
	extract := asPostgres(host.Join("tar", "-C", dd, "-x", "-f", "-"))
	res, err := hs.RunStream(rctx, host.Cmd{Command: extract}, pr, io.Discard)
	if err == nil && !res.OK() {
		err = fmt.Errorf("%s: tar -x into %s exited %d: %s", name, dd, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	if err != nil {
		fail(err)
		cancel()
	}
	pr.CloseWithError(errors.Join(err, errors.New("extraction ended")))
	stopProgress()
	wg.Wait()
	cancel()
	if first != nil {
		return first
	}
	bar.Set(cw.n.Load())
	bar.Finish()
	return nil
}

// countWriter counts what passes through it.
type countWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// markerWriter keeps the backup session's output and closes seen when a
// line equal to marker has arrived.
type markerWriter struct {
	marker string
	seen   chan struct{}
	mu     sync.Mutex
	buf    bytes.Buffer
	closed bool
}

func (m *markerWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf.Write(p)
	if !m.closed {
		sc := bufio.NewScanner(bytes.NewReader(m.buf.Bytes()))
		for sc.Scan() {
			if sc.Text() == m.marker {
				m.closed = true
				close(m.seen)
				break
			}
		}
	}
	return len(p), nil
}

func (m *markerWriter) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.String()
}
