package apply

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
)

func TestBackupSQLPerVersion(t *testing.T) {
	for _, c := range []struct {
		v                 inventory.Version
		start, stopFrom   string
		notStart, notStop string
	}{
		{90600, "SELECT pg_start_backup('pgwarm seed pg2', true, false);", "FROM pg_stop_backup(false);", "pg_backup_start", "pg_backup_stop"},
		{100000, "SELECT pg_start_backup('pgwarm seed pg2', true, false);", "FROM pg_stop_backup(false, true);", "pg_backup_start", "pg_backup_stop"},
		{140000, "SELECT pg_start_backup('pgwarm seed pg2', true, false);", "FROM pg_stop_backup(false, true);", "pg_backup_start", "pg_backup_stop"},
		{150000, "SELECT pg_backup_start('pgwarm seed pg2', fast => true);", "FROM pg_backup_stop(wait_for_archive => true);", "pg_start_backup", "pg_stop_backup"},
		{180000, "SELECT pg_backup_start('pgwarm seed pg2', fast => true);", "FROM pg_backup_stop(wait_for_archive => true);", "pg_start_backup", "pg_stop_backup"},
	} {
		start, stop := BackupSQL(c.v, "pgwarm seed pg2")
		if strings.TrimSpace(start) != c.start || strings.Contains(start, c.notStart) {
			t.Errorf("%s start = %q, want %q", c.v, start, c.start)
		}
		if !strings.HasSuffix(strings.TrimSpace(stop), c.stopFrom) || strings.Contains(stop, c.notStop) {
			t.Errorf("%s stop = %q, want it to end with %q", c.v, stop, c.stopFrom)
		}
		for _, col := range []string{"lsn::text", "labelfile", "spcmapfile", "'base64'", "E'\\n'"} {
			if !strings.Contains(stop, col) {
				t.Errorf("%s stop %q lacks %s", c.v, stop, col)
			}
		}
	}
	start, _ := BackupSQL(150000, "it's")
	if !strings.Contains(start, "'it''s'") {
		t.Errorf("label not quoted: %q", start)
	}
}

func TestBackupScriptOrder(t *testing.T) {
	sc := BackupScript(170000, "l", "/var/lib/pgwarm/main/seed-tar/x/done", 90*time.Second)
	iStart := strings.Index(sc, "pg_backup_start")
	iWait := strings.Index(sc, `\! echo `+tarStartedMarker)
	iStop := strings.Index(sc, "pg_backup_stop")
	if iStart < 0 || iWait < iStart || iStop < iWait {
		t.Fatalf("script is not start, wait, stop:\n%s", sc)
	}
	if !strings.Contains(sc, "while [ ! -e /var/lib/pgwarm/main/seed-tar/x/done ]") || !strings.Contains(sc, "-ge 90 ]") {
		t.Errorf("wait loop missing the done file or the timeout:\n%s", sc)
	}
	if strings.Count(sc, "\\o") != 2 {
		t.Errorf("pg_backup_start's output should go to /dev/null:\n%s", sc)
	}
}

func TestParseBackupOutput(t *testing.T) {
	label := "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nLABEL: pgwarm seed pg2\n"
	spc := "16385 /srv/ts1\n"
	enc := base64.StdEncoding.EncodeToString
	out := tarStartedMarker + "\n" + tarStopMarker + "0/2000138 " + enc([]byte(label)) + " " + enc([]byte(spc)) + "\n"
	br, err := ParseBackupOutput(out)
	if err != nil || br.StopLSN != "0/2000138" || string(br.Label) != label || string(br.TablespaceMap) != spc {
		t.Fatalf("ParseBackupOutput = %+v, %v", br, err)
	}
	br, err = ParseBackupOutput(tarStopMarker + "0/3000000 " + enc([]byte(label)) + " \n")
	if err != nil || len(br.TablespaceMap) != 0 || string(br.Label) != label {
		t.Fatalf("no tablespace map: %+v, %v", br, err)
	}
	for name, bad := range map[string]string{
		"no stop line":  tarStartedMarker + "\n",
		"missing field": tarStopMarker + "0/3000000 " + enc([]byte(label)) + "\n",
		"bad base64":    tarStopMarker + "0/3000000 !!! \n",
		"not a label":   tarStopMarker + "0/3000000 " + enc([]byte("hello")) + " \n",
		"empty":         "",
		"lsn missing":   tarStopMarker + " " + enc([]byte(label)) + " \n",
	} {
		if _, err := ParseBackupOutput(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The exclusions, applied by a real GNU tar to a data directory's shape.
func TestTarExcludes(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	for _, c := range []struct {
		v   inventory.Version
		wal string
	}{{170000, "pg_wal"}, {90600, "pg_xlog"}} {
		dd := t.TempDir()
		files := []string{
			"PG_VERSION", "postgresql.auto.conf", "global/pg_control", "base/1/1259", "base/1/pg_internal.init",
			c.wal + "/000000010000000000000001", c.wal + "/archive_status/000000010000000000000001.done",
			"postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map",
			"pg_replslot/s1/state", "pg_dynshmem/x", "pg_notify/0000", "pg_serial/0000", "pg_snapshots/x",
			"pg_stat_tmp/global.stat", "pg_subtrans/0000", "base/pgsql_tmp/pgsql_tmp1.0", "pg_stat/pgstat.stat",
			"pg_xact/0000", "pg_multixact/offsets/0000",
		}
		for _, f := range files {
			p := filepath.Join(dd, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command("sh", "-c", TarCreateCommand(c.v, dd)+" | tar -t -f -").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.v, err, out)
		}
		got := strings.Fields(string(out))
		sort.Strings(got)
		want := []string{"./", "./PG_VERSION", "./base/", "./base/1/", "./base/1/1259", "./global/", "./global/pg_control",
			"./" + c.wal + "/", "./pg_dynshmem/", "./pg_multixact/", "./pg_multixact/offsets/", "./pg_multixact/offsets/0000",
			"./pg_notify/", "./pg_replslot/", "./pg_serial/", "./pg_snapshots/", "./pg_stat/", "./pg_stat/pgstat.stat",
			"./pg_stat_tmp/", "./pg_subtrans/", "./pg_xact/", "./pg_xact/0000", "./postgresql.auto.conf"}
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: tar holds\n%s\nwant\n%s", c.v, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// relayTar copies the primary's stdout into the standby's stdin, returns
// when both are done, and stops the producer when the consumer fails.
func TestRelayTar(t *testing.T) {
	const n = 5<<20 + 3
	newPair := func(consume func(ctx context.Context, stdin io.Reader) (host.Result, error)) (*host.Fake, *host.Fake, *atomic.Bool) {
		prim, sb := host.NewFake("pg1"), host.NewFake("pg2")
		stopped := &atomic.Bool{}
		prim.StreamHandler = func(ctx context.Context, cmd host.Cmd, _ io.Reader, stdout io.Writer) (host.Result, error) {
			if !strings.HasPrefix(cmd.Command, "tar -C /data -c ") {
				return host.Result{ExitCode: 2}, nil
			}
			buf := make([]byte, 64<<10)
			for left := n; left > 0; {
				m := min(left, len(buf))
				if _, err := stdout.Write(buf[:m]); err != nil {
					stopped.Store(true)
					return host.Result{ExitCode: 2}, nil
				}
				left -= m
				if ctx.Err() != nil {
					stopped.Store(true)
					return host.Result{ExitCode: -1}, ctx.Err()
				}
			}
			return host.Result{ExitCode: 1}, nil // "file changed as we read it" is accepted
		}
		sb.StreamHandler = func(ctx context.Context, cmd host.Cmd, stdin io.Reader, _ io.Writer) (host.Result, error) {
			return consume(ctx, stdin)
		}
		return prim, sb, stopped
	}
	var out bytes.Buffer
	s := &State{Out: NewPrinter(&out, false)}
	var got int64
	prim, sb, _ := newPair(func(ctx context.Context, stdin io.Reader) (host.Result, error) {
		c, err := io.Copy(io.Discard, stdin)
		got = c
		return host.Result{}, err
	})
	done := make(chan error, 1)
	go func() { done <- relayTar(context.Background(), s, prim, sb, "pg1", "pg2", 170000, "/data", n) }()
	select {
	case err := <-done:
		if err != nil || got != n {
			t.Fatalf("relayTar = %v, standby got %d bytes, want %d", err, got, n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("relayTar did not return after the copy")
	}
	if !strings.Contains(out.String(), "pg2: base backup done: 5.0 MiB") {
		t.Errorf("no final progress line:\n%s", out.String())
	}

	// The standby fails after a little: the error names it, the primary stops.
	prim, sb, stopped := newPair(func(ctx context.Context, stdin io.Reader) (host.Result, error) {
		io.CopyN(io.Discard, stdin, 1000)
		return host.Result{ExitCode: 2, Stderr: []byte("tar: disk full")}, nil
	})
	go func() { done <- relayTar(context.Background(), s, prim, sb, "pg1", "pg2", 170000, "/data", n) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "pg2: tar -x into /data exited 2: tar: disk full") {
			t.Fatalf("relayTar = %v, want the standby's failure", err)
		}
		if !stopped.Load() {
			t.Error("the primary's tar was not stopped")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("relayTar did not return after the standby failed")
	}
}
