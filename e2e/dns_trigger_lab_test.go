package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/internal/labtest"
)

// dnsName is the name the lab's clients would use; the lab has no DNS
// server, so pg2 resolves it through its /etc/hosts.
const dnsName = "db.pgwarm.lab"

// TestDNSTriggerLab runs the seed's automatic trigger for real: the hot pair
// of the lab inventory plus failover.dns {name: db.pgwarm.lab, target: pg2}
// at the default period, applied by `pgwarm apply` (the lab has no systemd,
// so the watcher is the cron entry). (a) The name moves to pg2 while pg1 is
// a live primary: pg2 must stay a standby. (b) pg1 is killed and the name
// moves again: pg2 must promote by itself and accept writes; the time from
// the name change to the first accepted write is logged, not asserted.
func TestDNSTriggerLab(t *testing.T) {
	lab := labtest.Fresh(t, "dns")
	pw, err := os.ReadFile(filepath.Join(filepath.Dir(lab.Inventory), "replication_password"))
	if err != nil {
		t.Fatal(err)
	}
	p := &opsPair{lab: lab, password: strings.TrimSpace(string(pw))}
	inv, err := os.ReadFile(lab.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	pg1, pg2 := lab.Hosts["pg1"], lab.Hosts["pg2"]
	withDNS := strings.Replace(string(inv), "\nssh:\n", "\nfailover:\n  dns: {name: "+dnsName+", target: "+pg2+"}\nssh:\n", 1)
	if withDNS == string(inv) || !strings.Contains(withDNS, "mode: hot") {
		t.Fatalf("%s: expected the lab's hot inventory with an ssh: section", lab.Inventory)
	}
	p.inv = filepath.Join(filepath.Dir(lab.Inventory), "dns.yaml")
	if err := os.WriteFile(p.inv, []byte(withDNS), 0o600); err != nil {
		t.Fatal(err)
	}
	// The name points at the primary before the watcher exists.
	pointName(t, p, pg1)
	if out, code := p.pgwarm(t, "apply", "--auto-approve"); code != 0 {
		t.Fatalf("apply exited %d:\n%s", code, out)
	}
	const script = "/usr/local/lib/pgwarm/main-dns-trigger"
	cron := p.exec(t, "pg2", "cat /etc/cron.d/pgwarm-main-dns-trigger")
	if !strings.Contains(cron, "* * * * * postgres flock -n "+script+" "+script+" 12 5") {
		t.Fatalf("pg2: cron entry of the default 5s period:\n%s", cron)
	}
	// cron reads /etc/cron.d once a minute: wait for the first run so the
	// measurement below is the watcher's, not cron's pickup.
	waitFor(t, 3*time.Minute, "cron runs the DNS watcher on pg2", func() bool {
		return strings.Contains(p.exec(t, "pg2", "ps -eo args | grep -F '"+script+"' | grep -v grep || true"), script+" 12 5")
	})
	p.sql(t, "pg1", "CREATE TABLE dns_trigger (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	p.sql(t, "pg1", "INSERT INTO dns_trigger DEFAULT VALUES")
	p.sql(t, "pg1", "SELECT pg_switch_wal()")
	waitFor(t, 2*time.Minute, "pg2 replays the test table", func() bool {
		out, _ := runAs(t, p, "pg2", `cd / && runuser -u postgres -- psql -XAtq -c 'SELECT count(*) FROM dns_trigger'`)
		return strings.TrimSpace(out) == "1"
	})
	if got := p.sql(t, "pg2", "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("pg2: in recovery = %q before the test, want t", got)
	}

	// (a) The name moves while pg1 still answers as a primary.
	pointName(t, p, pg2)
	time.Sleep(3*5*time.Second + time.Second) // three periods of the watcher
	if got := p.sql(t, "pg2", "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("pg2 left recovery while pg1 was a live primary (split brain): pg_is_in_recovery = %q", got)
	}
	// The same check by hand says why it does not promote.
	out, code := runAs(t, p, "pg2", "cd / && runuser -u postgres -- "+script)
	if code != 1 || !strings.Contains(out, "pg1 still answers as a primary; not promoting pg2") {
		t.Fatalf("pg2: %s by hand with pg1 alive: exit %d, want 1 and the refusal:\n%s", script, code, out)
	}
	t.Logf("(a) %s -> pg2 with pg1 alive: pg2 still in recovery after three periods; the watcher says: %s", dnsName, strings.TrimSpace(out))
	if got := p.sql(t, "pg1", "SELECT pg_is_in_recovery()"); got != "f" {
		t.Fatalf("pg1: in recovery = %q, want a primary", got)
	}

	// (b) pg1 dies, then the name moves: pg2 promotes by itself.
	pointName(t, p, pg1)
	p.lab.Docker(t, "kill", lab.Containers["pg1"])
	time.Sleep(2 * time.Second)
	// One exec: change the name, then try a write every 100 ms; the time
	// is measured inside the container from the change to the first
	// acknowledged write.
	measure := `set -u
sed "s/^.*[[:space:]]` + dnsName + `\$/$ADDR ` + dnsName + `/" /etc/hosts > /tmp/hosts.new && cat /tmp/hosts.new > /etc/hosts
t0=$(date +%s%N)
until runuser -u postgres -- psql -XAtq -c 'INSERT INTO dns_trigger DEFAULT VALUES' 2>/dev/null; do
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 120000 ] || { echo timeout; exit 1; }
	sleep 0.1
done
echo $(( ($(date +%s%N) - t0) / 1000000 )) $(date -u -d @$((t0 / 1000000000)) +%T)`
	out, code = runAs(t, p, "pg2", "cd / && "+measure, "ADDR="+pg2)
	if code != 0 {
		t.Fatalf("pg2 did not accept a write within 2 minutes of %s moving to it with pg1 dead (exit %d):\n%s\npg2's log:\n%s", dnsName, code, out,
			p.exec(t, "pg2", "tail -20 /var/log/postgresql/postgresql-*-main.log || true"))
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("measurement %q", out)
	}
	ms, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("measurement %q: %v", out, err)
	}
	if got := p.sql(t, "pg2", "SELECT pg_is_in_recovery()"); got != "f" {
		t.Fatalf("pg2 accepted a write but is in recovery: %q", got)
	}
	t.Logf("(b) pg1 killed, %s -> pg2: pg2 promoted itself and accepted a write %d ms after the name changed (default period 5s)", dnsName, ms)
	t.Logf("DNS trigger: name change (%s UTC) -> first write on pg2: %s; pg2's log:\n%s", f[1], time.Duration(ms)*time.Millisecond,
		p.exec(t, "pg2", `grep -h "promote trigger file found\|selected new timeline\|archive recovery complete\|ready to accept connections" /var/log/postgresql/postgresql-*-main.log | tail -4`))
	// The trigger file is consumed, the watcher's next run finds no standby.
	if out := p.exec(t, "pg2", "ls /var/lib/pgwarm/main/promote.trigger 2>&1 || true"); !strings.Contains(out, "No such file") {
		t.Errorf("pg2: trigger file left behind: %s", out)
	}

	// The new primary must archive its timeline: a rebuilt pg1 can only
	// follow it through the archive.
	seg := p.sql(t, "pg2", "SELECT pg_walfile_name(pg_switch_wal())")
	archived := func() bool {
		return p.sql(t, "pg2", "SELECT coalesce(last_archived_wal, '') >= '"+seg+"' FROM pg_stat_archiver") == "t"
	}
	for deadline := time.Now().Add(time.Minute); !archived(); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pg2, promoted by the DNS watcher, did not archive %s within a minute: pg_stat_archiver %s", seg,
				p.sql(t, "pg2", "SELECT concat_ws(' ', 'archived', archived_count, last_archived_wal, 'failed', failed_count, last_failed_wal) FROM pg_stat_archiver"))
		}
	}
	t.Logf("pg2 archives its new timeline after the automatic promotion (%s archived)", seg)
}

// pointName makes dnsName resolve to addr on pg2 (its /etc/hosts, which
// Docker bind-mounts: rewritten in place, not replaced).
func pointName(t *testing.T, p *opsPair, addr string) {
	t.Helper()
	p.exec(t, "pg2", `grep -v "[[:space:]]`+dnsName+`\$" /etc/hosts > /tmp/hosts.new && echo "$ADDR `+dnsName+`" >> /tmp/hosts.new && cat /tmp/hosts.new > /etc/hosts
getent ahosts `+dnsName+` | grep -qF "$ADDR"`, "ADDR="+addr)
}

// runAs runs a script as root in h's container and returns its combined
// output and exit status (p.exec fails the test on a non-zero status).
func runAs(t *testing.T, p *opsPair, h, script string, env ...string) (string, int) {
	t.Helper()
	args := []string{"exec", "-i"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, p.lab.Containers[h], "bash", "-c", script)
	cmd := exec.Command("docker", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: docker exec: %v", h, err)
	}
	return out.String(), 0
}
