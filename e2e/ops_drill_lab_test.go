package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// writer inserts rows on a host in a loop, one transaction per row, and
// records every id whose commit was acknowledged (psql printed it).
type writer struct {
	mu    sync.Mutex
	acked []int64
	cmd   *exec.Cmd
	done  chan struct{}
}

func startWriter(t *testing.T, p *opsPair, h string) *writer {
	t.Helper()
	// One session, one autocommit INSERT per line; line-buffered output so
	// an id is read here as soon as its commit is acknowledged.
	loop := `cd / && yes 'INSERT INTO drill DEFAULT VALUES RETURNING id;' | runuser -u postgres -- stdbuf -oL psql -XAtq -v ON_ERROR_STOP=1`
	w := &writer{cmd: exec.Command("docker", "exec", p.lab.Containers[h], "bash", "-c", loop), done: make(chan struct{})}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if id, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64); err == nil {
				w.mu.Lock()
				w.acked = append(w.acked, id)
				w.mu.Unlock()
			}
		}
		_ = w.cmd.Wait()
	}()
	return w
}

// snapshot is every id acknowledged so far.
func (w *writer) snapshot() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...)
}

// waitArchived waits up to a minute until h's archiver has archived seg,
// naming pg_stat_archiver's counters when it does not.
func (p *opsPair) waitArchived(t *testing.T, h, seg string) {
	t.Helper()
	archived := func() bool {
		return p.sql(t, h, "SELECT coalesce(last_archived_wal, '') >= '"+seg+"' FROM pg_stat_archiver") == "t"
	}
	for deadline := time.Now().Add(time.Minute); !archived(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not archive %s within a minute: pg_stat_archiver %s", h, seg,
				p.sql(t, h, "SELECT concat_ws(' ', 'archived', archived_count, last_archived_wal, 'failed', failed_count, last_failed_wal) FROM pg_stat_archiver"))
		}
	}
}

func (p *opsPair) ids(t *testing.T, h string) map[int64]bool {
	t.Helper()
	set := map[int64]bool{}
	for _, l := range strings.Fields(p.sql(t, h, "SELECT id FROM drill")) {
		id, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatalf("%s: drill id %q", h, l)
		}
		set[id] = true
	}
	return set
}

// TestOpsDrillLab is the disaster drill of issue 7: writes on pg1, pg1
// killed, pg2 promoted, pg1 back and rebuilt as pg2's standby, then the
// switch back. No acknowledged transaction archived before the kill may be
// lost; those after the last archived segment are counted and reported
// (log shipping loses them by design).
func TestOpsDrillLab(t *testing.T) {
	p := newOpsPair(t)
	v := itoa(p.lab.PGVersion)
	p.sql(t, "pg1", "CREATE TABLE drill (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")

	w := startWriter(t, p, "pg1")
	waitFor(t, 2*time.Minute, "100 writes acknowledged on pg1", func() bool { return len(w.snapshot()) >= 100 })
	// Everything acknowledged before the switch is in the segment it closes.
	archivedAcked := w.snapshot()
	seg := p.sql(t, "pg1", "SELECT pg_walfile_name(pg_switch_wal())")
	p.waitArchived(t, "pg1", seg)
	time.Sleep(time.Second) // writes after the last archived segment
	p.lab.Docker(t, "kill", p.lab.Containers["pg1"])
	<-w.done
	acked := w.snapshot()
	t.Logf("drill: %d transactions acknowledged on pg1, %d of them before %s was archived", len(acked), len(archivedAcked), seg)

	out, code := p.pgwarm(t, "promote", "--update-inventory", "pg2")
	if code != 0 || !strings.Contains(out, "pg1: could not be fenced: unreachable") || !strings.Contains(out, "pg2: promoted: accepts writes on timeline 2") {
		t.Fatalf("promote pg2 with pg1 killed: exit %d", code)
	}
	inv, _ := os.ReadFile(p.inv)
	if !strings.Contains(string(inv), "{name: pg2, address: "+p.lab.Hosts["pg2"]+", role: primary}") {
		t.Errorf("inventory not updated:\n%s", inv)
	}
	present := p.ids(t, "pg2")
	var lostArchived, lostAfter []int64
	archivedSet := map[int64]bool{}
	for _, id := range archivedAcked {
		archivedSet[id] = true
	}
	for _, id := range acked {
		if !present[id] {
			if archivedSet[id] {
				lostArchived = append(lostArchived, id)
			} else {
				lostAfter = append(lostAfter, id)
			}
		}
	}
	t.Logf("drill: lost %d of %d acknowledged after the last archived segment (expected with log shipping); %d archived ones lost",
		len(lostAfter), len(acked)-len(archivedAcked), len(lostArchived))
	if len(lostArchived) > 0 {
		sort.Slice(lostArchived, func(i, j int) bool { return lostArchived[i] < lostArchived[j] })
		t.Fatalf("%d transactions acknowledged and archived before the kill are missing on pg2, e.g. id %d", len(lostArchived), lostArchived[0])
	}
	p.sql(t, "pg2", "INSERT INTO drill DEFAULT VALUES")
	// The new primary must archive its timeline (the .history file first):
	// a rebuilt pg1 can only follow it through the archive.
	p.waitArchived(t, "pg2", p.sql(t, "pg2", "SELECT pg_walfile_name(pg_switch_wal())"))

	// pg1 comes back: the lab starts it because promote could not fence it.
	p.lab.Docker(t, "start", p.lab.Containers["pg1"])
	waitFor(t, 2*time.Minute, "pg1 back, accepting writes after its crash recovery", func() bool {
		o, err := exec.Command("docker", "exec", "-u", "postgres", p.lab.Containers["pg1"], "psql", "-XAtqc", "SELECT pg_is_in_recovery()").CombinedOutput()
		return err == nil && strings.TrimSpace(string(o)) == "f"
	})
	out, code = p.pgwarm(t, "rebuild", "pg1")
	if code != 0 || !strings.Contains(out, "pg1: accepts writes on timeline 1 while pg2 is the primary on timeline 2") ||
		!strings.Contains(out, "pg1: rebuilt as a standby of pg2 with") {
		t.Fatalf("rebuild pg1: exit %d", code)
	}
	if got := p.sql(t, "pg1", "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("pg1 after rebuild: in recovery %q", got)
	}
	if out, code := p.pgwarm(t, "verify", "--timeout", "2m"); code != 0 || !strings.Contains(out, "pg1: replayed the canary") {
		t.Fatalf("verify after rebuild: exit %d", code)
	}
	if got := strings.TrimSpace(p.exec(t, "pg1", "cat /etc/postgresql/"+v+"/main/start.conf | grep -v '^#' | grep .")); got != "auto" {
		t.Errorf("pg1 start.conf after rebuild: %q, want auto", got)
	}

	// Switch back: pg2 answers, so it is fenced (stopped, autostart off)
	// while it takes writes. A fenced primary archives all it acknowledged
	// before it stops, and pg1 replays that before it is promoted: here not
	// one acknowledged write may be lost.
	w2 := startWriter(t, p, "pg2")
	waitFor(t, 2*time.Minute, "100 writes acknowledged on pg2", func() bool { return len(w2.snapshot()) >= 100 })
	out, code = p.pgwarm(t, "promote", "--update-inventory", "pg1")
	if code != 0 || !strings.Contains(out, "pg2: fenced: stopped fast") || !strings.Contains(out, "pg2: automatic start disabled") ||
		!strings.Contains(out, "pg1: promoted: accepts writes on timeline 3") {
		t.Fatalf("promote pg1 (switch back): exit %d", code)
	}
	<-w2.done
	onPg1 := p.ids(t, "pg1")
	var lostFenced []int64
	acked2 := w2.snapshot()
	for _, id := range acked2 {
		if !onPg1[id] {
			lostFenced = append(lostFenced, id)
		}
	}
	if len(lostFenced) > 0 {
		t.Fatalf("switch back: %d of %d writes acknowledged on the fenced pg2 are missing on pg1, e.g. id %d", len(lostFenced), len(acked2), lostFenced[0])
	}
	t.Logf("drill: switch back with fencing: all %d writes acknowledged on pg2 are on pg1", len(acked2))
	if got := strings.TrimSpace(p.exec(t, "pg2", "cat /etc/postgresql/"+v+"/main/start.conf | grep -v '^#' | grep .")); got != "manual" {
		t.Errorf("pg2 start.conf after fencing: %q, want manual", got)
	}
	// pg2's shared ssh connection to the archive, opened while it was the
	// primary, is still up (promote closes no session), yet from the moment
	// the rights file changed it may no longer add segments.
	refused := p.exec(t, "pg2", `cd / && conf=/etc/postgresql/`+v+`/main/pgwarm.conf
url=$(sed -n "s/^archive_command = .*--archive \([^ ]*\) .*/\1/p" "$conf")
wal=/var/lib/postgresql/`+v+`/main/pg_wal # the lab's Debian layout; pg2 is stopped
seg=$(ls "$wal/archive_status" | sed -n 's/^\([0-9A-F]\{24\}\)\.done$/\1/p' | sort | tail -1) # archived, so really that segment
# The shutdown checkpoint may have removed every .done with its segment
# (trixie run at 9b5107f): then the segment of pg2's last checkpoint, which
# is surely there and holds real WAL (a recycled one would not).
[ -n "$seg" ] || seg=$(/usr/lib/postgresql/`+v+`/bin/pg_controldata -D /var/lib/postgresql/`+v+`/main | sed -n "s/^Latest checkpoint's REDO WAL file: *//p")
echo "segment: $seg"
host=${url#ssh://postgres@}; host=${host%%/*}
runuser -u postgres -- ssh -O check "$host" 2>&1 | sed 's/^/master: /'
runuser -u postgres -- /usr/local/bin/pgwarm-wal ship --archive "$url" "$wal/$seg" "$seg" 2>&1; echo "exit=$?"`)
	if !strings.Contains(refused, "master: Master running") || !strings.Contains(refused, "exit=7") || !strings.Contains(refused, "not allowed for pg2's ssh key") {
		t.Errorf("the fenced pg2 may still push through its open connection:\n%s", refused)
	} else {
		t.Logf("drill: the fenced pg2's still open archive connection may no longer push:\n%s", refused)
	}
	// Refused: rebuilding the live primary.
	if out, code := p.pgwarm(t, "rebuild", "pg1"); code != 1 || !strings.Contains(out, "pg1: is the live primary") {
		t.Errorf("rebuild of the live primary: exit %d", code)
	}
	out, code = p.pgwarm(t, "rebuild", "pg2")
	if code != 0 || !strings.Contains(out, "pg2: rebuilt as a standby of pg1 with") {
		t.Fatalf("rebuild pg2: exit %d", code)
	}
	p.sql(t, "pg1", "INSERT INTO drill DEFAULT VALUES")
	if out, code := p.pgwarm(t, "verify", "--timeout", "2m"); code != 0 || !strings.Contains(out, "pg2: replayed the canary") {
		t.Fatalf("verify after the switch back: exit %d", code)
	}
	s, code := p.status(t)
	if code != 0 || s.Primary != "pg1" {
		t.Errorf("status after the drill: exit %d, primary %q", code, s.Primary)
	}
	fmt.Fprintf(os.Stderr, "drill: acknowledged %d, archived-before-kill %d lost 0, after-archive lost %d\n", len(acked), len(archivedAcked), len(lostAfter))
}

// TestOpsPromoteBehindLab promotes a standby whose replay an operator
// paused, behind by several archived segments, with the primary killed:
// the promotion ends the pause, and PostgreSQL replays all it can still
// get before it ends recovery, so every row committed in a segment
// archived before the kill must be there. (restore's own rule, that a
// requested promotion stops the waiting but not the handing over of
// archived segments, is tested on every backend in cmd/pgwarm-wal's
// suite: here PostgreSQL consumes the promote file in its pause loop
// before it restores again.)
func TestOpsPromoteBehindLab(t *testing.T) {
	p := newOpsPair(t)
	p.sql(t, "pg1", "CREATE TABLE behind (id int PRIMARY KEY)")
	// Closed now, not by archive_timeout (60 s in the lab, as long as the
	// wait below: CI at 9facfb7 timed out here once).
	p.waitArchived(t, "pg1", p.sql(t, "pg1", "SELECT pg_walfile_name(pg_switch_wal())"))
	waitFor(t, time.Minute, "pg2 replays the table", func() bool {
		return p.sql(t, "pg2", "SELECT to_regclass('behind') IS NOT NULL") == "t"
	})
	p.sql(t, "pg2", "SELECT pg_wal_replay_pause()")
	var seg string
	for i := 1; i <= 4; i++ {
		p.sql(t, "pg1", "INSERT INTO behind VALUES ("+itoa(i)+")")
		seg = p.sql(t, "pg1", "SELECT pg_walfile_name(pg_switch_wal())")
	}
	p.waitArchived(t, "pg1", seg)
	p.lab.Docker(t, "kill", p.lab.Containers["pg1"])
	if out, code := p.pgwarm(t, "promote", "pg2"); code != 0 || !strings.Contains(out, "pg2: promoted") {
		t.Fatalf("promote pg2 (paused, behind): exit %d", code)
	}
	if got := p.sql(t, "pg2", "SELECT count(*) FROM behind"); got != "4" {
		t.Fatalf("pg2 after its promotion has %s of the 4 rows committed in segments archived before the kill (up to %s)", got, seg)
	}
}
