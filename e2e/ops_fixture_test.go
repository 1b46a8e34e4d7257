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

// opsPair is a streaming + archive pair on the test's own lab instance:
// pg1 primary archiving through pgwarm-wal over ssh to arch, pg2 a hot
// standby seeded with pg_basebackup, both able to trade places (same
// settings, replication role with the grants pg_rewind needs, .pgpass).
//
// It is set up by shell over docker exec rather than `pgwarm apply`,
// which is being built in parallel (issue 5); switch to apply once it lands.
type opsPair struct {
	lab      labtest.Lab
	inv      string // inventory with mode streaming
	password string
}

// opsFixtureScript runs as root on every PostgreSQL host; ROLE is primary or standby.
const opsFixtureScript = `set -eu
V=$PGV; C=/etc/postgresql/$V/main; D=/var/lib/postgresql/$V/main; H=/var/lib/postgresql
install -d -o postgres -g postgres -m 0700 $H/.ssh
[ -f $H/.ssh/id_ed25519 ] || runuser -u postgres -- ssh-keygen -q -t ed25519 -N '' -C "postgres@$(hostname)" -f $H/.ssh/id_ed25519
echo "$ARCH_HOSTKEY" > $H/.ssh/known_hosts; chown postgres:postgres $H/.ssh/known_hosts
printf '*:5432:*:replicator:%s\n' "$PW" > $H/.pgpass; chown postgres:postgres $H/.pgpass; chmod 0600 $H/.pgpass
URL=ssh://postgres@$ARCH/srv/pgwarm/main
cat > $C/conf.d/ops-fixture.conf <<CONF
listen_addresses = '*'
wal_level = replica
wal_log_hints = on
archive_mode = on
archive_command = '/usr/local/bin/pgwarm-wal ship --archive $URL --compression zstd %p %f'
archive_timeout = 60
restore_command = '/usr/local/bin/pgwarm-wal restore --archive $URL %f %p'
recovery_target_timeline = 'latest'
hot_standby = on
wal_keep_size = '1GB'
CONF
cat >> $C/pg_hba.conf <<HBA
host replication replicator $NET scram-sha-256
host postgres replicator $NET scram-sha-256
HBA
case $ROLE in
primary)
  pg_ctlcluster $V main restart
  runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE replicator REPLICATION LOGIN PASSWORD '$PW';
GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO replicator;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO replicator;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO replicator;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO replicator;
SQL
  ;;
standby)
  # Right after pg1's restart the first base backup has been seen to fail
  # with "pg_tblspc: File exists"; a second attempt into the emptied
  # directory succeeds.
  for i in 1 2 3; do
    if (cd / && runuser -u postgres -- pg_basebackup -h $PG1 -U replicator -D $D -X stream -R -c fast); then break; fi
    [ $i -lt 3 ] || exit 1
    find $D -mindepth 1 -delete; sleep 1
  done
  pg_ctlcluster $V main start
  ;;
esac
`

// opsArchiveScript prepares the archive host: directory and the keys of both
// PostgreSQL hosts limited to pgwarm-wal serve.
const opsArchiveScript = `set -eu
install -d -o postgres -g postgres -m 0700 /srv/pgwarm /srv/pgwarm/main /var/lib/postgresql/.ssh
: > /var/lib/postgresql/.ssh/authorized_keys
for k in "$KEY1" "$KEY2"; do
  echo "command=\"/usr/local/bin/pgwarm-wal serve --root /srv/pgwarm/main --allow push,get,cleanup,list,verify\",restrict $k" >> /var/lib/postgresql/.ssh/authorized_keys
done
chown postgres:postgres /var/lib/postgresql/.ssh/authorized_keys; chmod 0600 /var/lib/postgresql/.ssh/authorized_keys
`

func newOpsPair(t *testing.T) *opsPair {
	t.Helper()
	lab := labtest.Fresh(t, "ops")
	helper := filepath.Join(labtest.Root(), "bin", "pgwarm-wal")
	if _, err := os.Stat(helper); err != nil {
		t.Fatalf("%s missing: run `make build` first", helper)
	}
	pw, err := os.ReadFile(filepath.Join(filepath.Dir(lab.Inventory), "replication_password"))
	if err != nil {
		t.Fatal(err)
	}
	p := &opsPair{lab: lab, password: strings.TrimSpace(string(pw))}
	for _, h := range []string{"pg1", "pg2", "arch"} {
		lab.Docker(t, "cp", helper, lab.Containers[h]+":/usr/local/bin/pgwarm-wal")
	}
	archKey := strings.TrimSpace(lab.Docker(t, "exec", lab.Containers["arch"], "cat", "/etc/ssh/ssh_host_ed25519_key.pub"))
	archKey = lab.Hosts["arch"] + " " + strings.Join(strings.Fields(archKey)[:2], " ")
	net := lab.Hosts["pg1"][:strings.LastIndex(lab.Hosts["pg1"], ".")] + ".0/24"
	env := []string{"PGV=" + itoa(lab.PGVersion), "ARCH=" + lab.Hosts["arch"], "PG1=" + lab.Hosts["pg1"],
		"NET=" + net, "PW=" + p.password, "ARCH_HOSTKEY=" + archKey}
	start := time.Now()
	p.exec(t, "pg1", opsFixtureScript, append(env, "ROLE=primary")...)
	keys := []string{}
	for _, h := range []string{"pg1", "pg2"} {
		if h == "pg2" {
			// pg2's key must exist before arch accepts it; the standby part
			// (base backup) comes after arch is ready, below.
			p.exec(t, h, "set -eu; H=/var/lib/postgresql; install -d -o postgres -g postgres -m 0700 $H/.ssh; "+
				"runuser -u postgres -- ssh-keygen -q -t ed25519 -N '' -C postgres@pg2 -f $H/.ssh/id_ed25519")
		}
		keys = append(keys, strings.TrimSpace(p.exec(t, h, "cat /var/lib/postgresql/.ssh/id_ed25519.pub")))
	}
	p.exec(t, "arch", opsArchiveScript, "KEY1="+keys[0], "KEY2="+keys[1])
	p.exec(t, "pg2", opsFixtureScript, append(env, "ROLE=standby")...)
	t.Logf("fixture: streaming pair with ssh archive ready in %s", time.Since(start).Round(time.Millisecond))

	inv, err := os.ReadFile(lab.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	p.inv = filepath.Join(filepath.Dir(lab.Inventory), "ops.yaml")
	s := strings.Replace(string(inv), "mode: hot", "mode: streaming", 1)
	if err := os.WriteFile(p.inv, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// exec runs a shell script as root in host h's container.
func (p *opsPair) exec(t *testing.T, h, script string, env ...string) string {
	t.Helper()
	args := []string{"exec", "-i"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, p.lab.Containers[h], "bash", "-c", script)
	cmd := exec.Command("docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: fixture script: %v\n%s%s", h, err, out.String(), errb.String())
	}
	return out.String()
}

// sql runs a query as postgres on h and returns its unaligned output.
func (p *opsPair) sql(t *testing.T, h, query string) string {
	t.Helper()
	return strings.TrimSpace(p.exec(t, h, `cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -c "$Q"`, "Q="+query))
}

// pgwarm runs the CLI against the pair's inventory and returns its output
// and exit status.
func (p *opsPair) pgwarm(t *testing.T, args ...string) (string, int) {
	t.Helper()
	bin := os.Getenv("PGWARM_BIN")
	if bin == "" {
		bin = filepath.Join(labtest.Root(), "bin", "pgwarm")
	}
	full := append([]string{args[0], "-i", p.inv}, args[1:]...)
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), "PGWARM_REPLICATION_PASSWORD="+p.password, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("pgwarm %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	t.Logf("$ pgwarm %s  (exit %d)\n%s", strings.Join(full, " "), code, out)
	return string(out), code
}

func itoa(n int) string { return strconv.Itoa(n) }
