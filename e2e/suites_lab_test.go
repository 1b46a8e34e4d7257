package e2e

// Version reach: the same real hosts on the other Debian suites, so pgwarm is
// proven live on PostgreSQL 13 (bullseye) and 17 (trixie) as well as 15
// (bookworm, where every other e2e test runs). Each suite goes through
// apply → an empty second plan → verify → promote → a write on the new
// primary. `LAB_SUITE=trixie make test-e2e` runs the whole e2e package on
// one suite instead.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/internal/labtest"
)

// otherSuites are the suites `make test` adds to the default one, with the
// PostgreSQL major each must bring.
var otherSuites = []struct {
	suite string
	major int
}{
	{"bullseye", 13},
	{"trixie", 17},
}

func TestLabOtherSuites(t *testing.T) {
	if s := os.Getenv("LAB_SUITE"); s != "" && s != "bookworm" {
		t.Skipf("LAB_SUITE=%s: the whole e2e package runs on that suite already", s)
	}
	for _, sc := range otherSuites {
		t.Run(sc.suite, func(t *testing.T) {
			lab := labtest.FreshSuite(t, "suite-"+sc.suite, sc.suite)
			if lab.PGVersion != sc.major {
				t.Fatalf("lab on %s brings PostgreSQL %d, want %d", sc.suite, lab.PGVersion, sc.major)
			}
			s := suiteRun{t: t, lab: lab}
			pw, err := os.ReadFile(filepath.Join(filepath.Dir(lab.Inventory), "replication_password"))
			if err != nil {
				t.Fatal(err)
			}
			s.password = strings.TrimSpace(string(pw))

			s.ok("apply", "--auto-approve")
			s.expect(0, "plan", "--detailed-exitcode") // nothing left after apply
			out := s.ok("verify", "--timeout", "3m")
			t.Logf("%s verify: %s", sc.suite, lastLine(out))

			s.ok("promote", "pg2")
			got := s.sql("pg2", "CREATE TABLE suite_reach(v int); INSERT INTO suite_reach VALUES (1); SELECT count(*) FROM suite_reach")
			if got != "1" {
				t.Fatalf("PostgreSQL %d: pg2 after promote: write gave %q", sc.major, got)
			}
			if v := s.sql("pg2", "SHOW server_version_num"); !strings.HasPrefix(v, itoa(sc.major)) {
				t.Fatalf("pg2 runs server_version_num %s, want %d", v, sc.major)
			}
		})
	}
}

type suiteRun struct {
	t        *testing.T
	lab      labtest.Lab
	password string
}

// pgwarm runs the real CLI against the suite's lab inventory and returns
// its combined output and exit status.
func (s suiteRun) pgwarm(args ...string) (string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	full := append([]string{args[0], "-i", s.lab.Inventory}, args[1:]...)
	cmd := exec.CommandContext(ctx, filepath.Join(labtest.Root(), "bin", "pgwarm"), full...)
	cmd.Env = append(os.Environ(), "PGWARM_REPLICATION_PASSWORD="+s.password, "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if strings.Contains(out.String(), s.password) {
		s.t.Errorf("pgwarm %s printed the replication password", args[0])
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		s.t.Fatalf("pgwarm %s: %v\n%s", strings.Join(args, " "), err, out.String())
		return "", -1
	}
}

func (s suiteRun) expect(code int, args ...string) string {
	s.t.Helper()
	out, got := s.pgwarm(args...)
	if got != code {
		s.t.Fatalf("pgwarm %s on %s: exit %d, want %d\n%s", strings.Join(args, " "), s.lab.Suite, got, code, out)
	}
	return out
}

func (s suiteRun) ok(args ...string) string { s.t.Helper(); return s.expect(0, args...) }

// sql runs a query as postgres on a lab host through docker exec, a channel
// independent of pgwarm's own.
func (s suiteRun) sql(h, q string) string {
	s.t.Helper()
	out, err := exec.Command("docker", "exec", s.lab.Containers[h], "runuser", "-u", "postgres", "--",
		"psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", q).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s: psql %q: %v\n%s", h, q, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
