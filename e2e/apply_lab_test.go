package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLabApplyModes: every mode and both transports, from a fresh lab, by
// the same test: apply, a row written on pg1 reaches pg2, and the next
// plan is empty.
func TestLabApplyModes(t *testing.T) {
	for _, sc := range []scenario{
		{mode: "hot", transport: "ssh"},
		{mode: "warm", transport: "ssh"},
		{mode: "streaming", transport: "ssh", slot: true},
		{mode: "hot", transport: "nfs"},
		{mode: "warm", transport: "nfs"},
		// The seed's own base backup: no replication connection, a tar
		// relayed through pgwarm, the WAL from the archive.
		{mode: "hot", transport: "ssh", seed: "stream-tar"},
	} {
		t.Run(sc.name(), func(t *testing.T) {
			e := newEnv(t, sc)
			r := e.pgwarm("apply", "-i", e.inv, "--auto-approve")
			if r.code != 0 {
				t.Fatalf("apply exited %d:\n%s", r.code, r.out)
			}
			for _, want := range []string{"pg1: archiving works", "pg2: in recovery", "Apply complete"} {
				if !strings.Contains(r.out, want) {
					t.Errorf("apply output lacks %q:\n%s", want, r.out)
				}
			}
			if sc.seed == "stream-tar" {
				for _, want := range []string{"pg1: starting a non-exclusive backup", "relayed through pgwarm", "pg1: backup stopped at", "base backup done: "} {
					if !strings.Contains(r.out, want) {
						t.Errorf("apply output lacks %q:\n%s", want, r.out)
					}
				}
				if strings.Contains(r.out, "with pg_basebackup") {
					t.Errorf("seed stream-tar ran pg_basebackup:\n%s", r.out)
				}
			}
			// apply bound the archive to pg1's cluster before pg1 shipped.
			ah := "arch"
			if sc.transport == "nfs" {
				ah = "pg2"
			}
			sysid := e.mustSQL("pg1", "SELECT system_identifier FROM pg_control_system()")
			if want := ah + ": bound the archive /srv/pgwarm/main to cluster " + sysid + " (16777216-byte WAL segments)"; !strings.Contains(r.out, want) {
				t.Errorf("apply output lacks %q:\n%s", want, r.out)
			}
			meta := e.docker("exec", e.lab.Containers[ah], "cat", "/srv/pgwarm/main/pgwarm-archive.json")
			if !strings.Contains(meta, `"system_identifier": "`+sysid+`"`) || !strings.Contains(meta, `"wal_segment_size": 16777216`) {
				t.Errorf("%s: pgwarm-archive.json does not bind pg1's cluster %s:\n%s", ah, sysid, meta)
			}
			e.replicates("after-apply-" + sc.name())
			e.planClean()
			if sc.slot {
				if got := e.mustSQL("pg1", "SELECT active FROM pg_replication_slots WHERE slot_name = 'pgwarm_pg2'"); got != "t" {
					t.Errorf("replication slot pgwarm_pg2 active = %q, want t", got)
				}
			}
			// The secret is on the hosts only in 0600 files.
			for _, h := range []string{"pg1", "pg2"} {
				mode := strings.TrimSpace(e.docker("exec", e.lab.Containers[h], "stat", "-c", "%a %U", "/var/lib/postgresql/.pgpass"))
				if mode != "600 postgres" {
					t.Errorf("%s: .pgpass is %s, want 600 postgres", h, mode)
				}
			}
		})
	}
}

// TestLabApplyInterrupted: a stale saved plan is refused, a second apply
// during the first is refused naming the holder, and an apply killed with
// SIGKILL during the base backup converges when run again.
func TestLabApplyInterrupted(t *testing.T) {
	e := newEnv(t, scenario{mode: "hot", transport: "ssh"})
	// Enough data that the base backup takes a while.
	e.docker("exec", "-u", "postgres", e.lab.Containers["pg1"], fmt.Sprintf("/usr/lib/postgresql/%d/bin/pgbench", e.lab.PGVersion), "-i", "-q", "-s", "20", "postgres")

	// A saved plan goes stale when a host changes.
	planFile := filepath.Join(t.TempDir(), "lab.plan")
	if r := e.pgwarm("plan", "-i", e.inv, "--out", planFile); r.code != 0 {
		t.Fatalf("plan --out exited %d:\n%s", r.code, r.out)
	}
	if b, err := os.ReadFile(planFile); err != nil {
		t.Fatal(err)
	} else {
		e.noSecret(string(b))
	}
	hba := fmt.Sprintf("/etc/postgresql/%d/main/pg_hba.conf", e.lab.PGVersion)
	e.docker("exec", e.lab.Containers["pg1"], "sh", "-c", "echo '# changed by hand' >> "+hba)
	r := e.pgwarm("apply", "-i", e.inv, planFile)
	if r.code != 1 || !strings.Contains(r.out, "stale") || !strings.Contains(r.out, planFile) || !strings.Contains(r.out, "pg1: "+hba) {
		t.Fatalf("stale plan: exit %d, want 1 naming the file and pg1's pg_hba.conf:\n%s", r.code, r.out)
	}
	if got := e.docker("exec", e.lab.Containers["arch"], "sh", "-c", "test -e /usr/local/bin/pgwarm-wal && echo installed || echo absent"); strings.TrimSpace(got) != "absent" {
		t.Fatalf("a refused plan changed arch: pgwarm-wal is %s", got)
	}

	// First apply: watch its output until the seed starts.
	first := e.startApply(func(l string) bool { return strings.HasPrefix(l, "pg2: seeding /") })
	first.waitReached(t, 5*time.Minute, "the seed")

	// A concurrent apply is refused at once, naming the holder.
	start := time.Now()
	second := e.pgwarm("apply", "-i", e.inv, "--auto-approve")
	if second.code != 1 || !strings.Contains(second.out, "another pgwarm apply holds the lock") || !strings.Contains(second.out, "pid ") {
		t.Fatalf("concurrent apply: exit %d, want 1 naming the lock holder:\n%s", second.code, second.out)
	}
	t.Logf("concurrent apply refused in %s", time.Since(start).Round(time.Millisecond))

	// SIGKILL during the base backup; the lock and a partial copy stay behind.
	e.noSecret(first.kill(t))

	r = e.pgwarm("apply", "-i", e.inv, "--auto-approve")
	if r.code != 0 {
		t.Fatalf("re-run after SIGKILL exited %d:\n%s", r.code, r.out)
	}
	if !strings.Contains(r.out, "its process is gone") {
		t.Errorf("re-run did not report taking over the dead run's lock:\n%s", r.out)
	}
	e.replicates("after-kill")
	if got := e.mustSQL("pg2", "SELECT count(*) FROM pgbench_accounts"); got != "2000000" {
		t.Errorf("pg2: pgbench_accounts has %s rows, want 2000000", got)
	}
	e.planClean()
	limitedPlanBinds(t, e)
}

// limitedPlanBinds: a plan of pg2 alone, applied from its file (no -i),
// changes pg2 only, though pg1 and the archive host have drifted too; a
// saved plan edited by hand, or applied with another inventory, is refused
// with nothing changed.
func limitedPlanBinds(t *testing.T, e *env) {
	conf := fmt.Sprintf("/etc/postgresql/%d/main/pgwarm.conf", e.lab.PGVersion)
	cron := "/etc/cron.d/pgwarm-main-archive-verify"
	drift := map[string]string{"pg1": conf, "pg2": conf, "arch": cron}
	for h, f := range drift {
		e.docker("exec", e.lab.Containers[h], "sh", "-c", "echo '# drifted by hand' >> "+f)
	}
	drifted := func(h string) bool {
		out := e.docker("exec", e.lab.Containers[h], "sh", "-c", "grep -c 'drifted by hand' "+drift[h]+" || true")
		return strings.TrimSpace(out) != "0"
	}
	dir := t.TempDir()
	limited := filepath.Join(dir, "pg2.plan")
	if r := e.pgwarm("plan", "-i", e.inv, "--limit", "pg2", "--out", limited); r.code != 0 || !strings.Contains(r.out, "pg2") || strings.Contains(r.out, "pg1 (primary") {
		t.Fatalf("plan --limit pg2: exit %d:\n%s", r.code, r.out)
	}
	// The plan names its inventory: apply needs no -i, and refuses another.
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte(e.inventory()), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.pgwarm("apply", "-i", other, limited); r.code != 1 || !strings.Contains(r.out, "was made from the inventory") {
		t.Fatalf("apply with another -i: exit %d:\n%s", r.code, r.out)
	}
	r := e.pgwarm("apply", limited)
	if r.code != 0 || !strings.Contains(r.out, "applying it to pg2 only") {
		t.Fatalf("apply of the limited plan: exit %d:\n%s", r.code, r.out)
	}
	for _, line := range strings.Split(r.out, "\n") {
		if strings.HasPrefix(line, "pg1: ") && !strings.HasPrefix(line, "pg1: lock ") || strings.HasPrefix(line, "arch: ") {
			t.Errorf("the limited apply acted on another host: %q", line)
		}
	}
	if drifted("pg2") {
		t.Error("pg2's drift is still there after apply of its plan")
	}
	if !drifted("pg1") || !drifted("arch") {
		t.Error("the limited apply changed pg1 or arch")
	}

	// Edited by hand: a host removed from a plan of every host.
	full := filepath.Join(dir, "full.plan")
	if r := e.pgwarm("plan", "-i", e.inv, "--out", full); r.code != 0 {
		t.Fatalf("plan --out: exit %d:\n%s", r.code, r.out)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	hosts := p["hosts"].([]any)
	p["hosts"] = hosts[1:] // pg1 gone
	b, _ = json.Marshal(p)
	if err := os.WriteFile(full, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.pgwarm("apply", full); r.code != 1 || !strings.Contains(r.out, "pg1: missing from the saved plan") {
		t.Fatalf("an edited plan: exit %d:\n%s", r.code, r.out)
	}
	if !drifted("pg1") || !drifted("arch") {
		t.Error("a refused plan changed pg1 or arch")
	}
	if r := e.pgwarm("apply", "-i", e.inv, "--auto-approve"); r.code != 0 {
		t.Fatalf("apply: exit %d:\n%s", r.code, r.out)
	}
	e.planClean()
}

// TestLabApplyInterruptedStreamTar: an apply killed with SIGKILL while the
// seed stream-tar relays the tar converges when run again: the re-run sees
// the partial copy, ends the backup session the killed run left on the
// primary, and seeds again.
func TestLabApplyInterruptedStreamTar(t *testing.T) {
	e := newEnv(t, scenario{mode: "hot", transport: "ssh", seed: "stream-tar"})
	// Enough data that the copy takes a while: on an idle machine scale 20
	// (~300 MB) was relayed within the 2 s below, the killed run had already
	// ended its backup session, and the check after the kill failed.
	e.docker("exec", "-u", "postgres", e.lab.Containers["pg1"], fmt.Sprintf("/usr/lib/postgresql/%d/bin/pgbench", e.lab.PGVersion), "-i", "-q", "-s", "60", "postgres")
	const rows = "6000000" // pgbench scale 60

	first := e.startApply(func(l string) bool {
		return strings.HasPrefix(l, "pg2: seeding /") && strings.Contains(l, "relayed through pgwarm")
	})
	first.waitReached(t, 5*time.Minute, "the copy")
	time.Sleep(time.Second) // in the middle of the copy
	firstOut := first.kill(t)
	if strings.Contains(firstOut, "pg1: backup stopped at") {
		t.Fatalf("the copy finished before the kill; the test proves nothing:\n%s", firstOut)
	}
	// The killed run's backup session still waits on pg1.
	if got := e.docker("exec", e.lab.Containers["pg1"], "sh", "-c", "pgrep -f [p]gwarm-backup-started | wc -l"); strings.TrimSpace(got) == "0" {
		t.Errorf("no backup session of the killed run on pg1; expected one to be left for the re-run to end")
	}

	r := e.pgwarm("apply", "-i", e.inv, "--auto-approve")
	if r.code != 0 {
		t.Fatalf("re-run after SIGKILL exited %d:\n%s", r.code, r.out)
	}
	for _, want := range []string{"pg2: seeding: an earlier seed did not finish", "pg1: backup stopped at", "pg2: in recovery"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("re-run output lacks %q:\n%s", want, r.out)
		}
	}
	if got := e.docker("exec", e.lab.Containers["pg1"], "sh", "-c", "pgrep -f [p]gwarm-backup-started | wc -l"); strings.TrimSpace(got) != "0" {
		t.Errorf("pg1: %s backup session(s) still waiting after the re-run", strings.TrimSpace(got))
	}
	e.replicates("after-kill-stream-tar")
	if got := e.mustSQL("pg2", "SELECT count(*) FROM pgbench_accounts"); got != rows {
		t.Errorf("pg2: pgbench_accounts has %s rows, want %s", got, rows)
	}
	e.planClean()
}
