package plan_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/internal/labtest"
	"github.com/pgwarm/pgwarm/plan"
)

// hostState prints, for one lab host, a sha256 of every regular file
// under /etc, the postgres home (minus the data directory), pgwarm's
// directories and the archive, plus a listing of the data directory's top
// level with hashes of the files pgwarm could touch there, and a listing
// of /tmp and /var/tmp (plan must not even leave a temp file). Live
// PostgreSQL files that change on their own (pg_wal, pg_stat, global, ...)
// are left out.
const hostState = `
set -u
for d in /etc /var/lib/postgresql /var/lib/pgwarm /srv /usr/local/bin /usr/local/lib/pgwarm; do
  [ -d "$d" ] || continue
  find "$d" -xdev -path '/var/lib/postgresql/*/main' -prune -o -type f -print0 | sort -z | xargs -0r sha256sum
done
for dd in /var/lib/postgresql/*/main; do
  [ -d "$dd" ] || continue
  echo "listing $dd: $(ls -A "$dd" | tr '\n' ' ')"
  for f in PG_VERSION standby.signal recovery.signal recovery.conf postgresql.auto.conf postgresql.conf pg_hba.conf; do
    [ -f "$dd/$f" ] && sha256sum "$dd/$f"
  done
done
echo "listing /tmp: $(ls -A /tmp | tr '\n' ' ')"
echo "listing /var/tmp: $(ls -A /var/tmp | tr '\n' ' ')"
`

func snapshot(t *testing.T, lab labtest.Lab) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, container := range lab.Containers {
		b, err := exec.Command("docker", "exec", container, "sh", "-c", hostState).Output()
		if err != nil {
			t.Fatalf("%s: hashing the host: %v", name, err)
		}
		out[name] = string(b)
	}
	return out
}

// TestLabPlanChangesNothing runs the real CLI against the lab and checks
// that it lists changes (the lab is not applied), exits 2 with
// --detailed-exitcode, and leaves every host byte for byte as it was.
func TestLabPlanChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test; make test-lab runs it")
	}
	// Its own fresh lab: the default one may have been applied (make demo),
	// and then there is nothing pending to plan.
	lab := labtest.Fresh(t, "plan")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/pgwarm", "./cmd/pgwarm-wal")
	build.Dir = labtest.Root()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	before := snapshot(t, lab)

	pw, err := os.ReadFile(filepath.Join(filepath.Dir(lab.Inventory), "replication_password"))
	if err != nil {
		pw = []byte("lab-test-password")
	}
	for _, args := range [][]string{
		{"plan", "-i", lab.Inventory, "--detailed-exitcode"},
		{"plan", "-i", lab.Inventory, "--detailed-exitcode", "--json", "--out", filepath.Join(bin, "lab.plan")},
	} {
		cmd := exec.Command(filepath.Join(bin, "pgwarm"), args...)
		cmd.Env = append(os.Environ(), "PGWARM_REPLICATION_PASSWORD="+strings.TrimSpace(string(pw)), "NO_COLOR=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("pgwarm %s: want exit 2 (changes pending on a fresh lab), got %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		if bytes.Contains(stdout.Bytes(), []byte(strings.TrimSpace(string(pw)))) {
			t.Errorf("pgwarm %s: the replication password appears in the output", strings.Join(args, " "))
		}
	}
	saved, err := plan.Load(filepath.Join(bin, "lab.plan"))
	if err != nil {
		t.Fatal(err)
	}
	if saved.Empty() {
		t.Error("the plan of a fresh lab is empty")
	}
	for _, h := range saved.Hosts {
		if len(h.Observed) == 0 {
			t.Errorf("%s: the saved plan observed nothing", h.Name)
		}
	}

	after := snapshot(t, lab)
	for name := range before {
		if before[name] != after[name] {
			t.Errorf("%s changed during plan:\n%s", name, plan.UnifiedDiff(before[name], after[name]))
		}
	}
}
