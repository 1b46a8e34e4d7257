package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/internal/labtest"
)

// opsPair is a hot standby pair on the test's own lab instance, made by
// the real `pgwarm apply --auto-approve` from the lab inventory: pg1
// primary archiving through pgwarm-wal over ssh to arch, pg2 a hot standby
// restoring from it.
type opsPair struct {
	lab      labtest.Lab
	inv      string // the pair's inventory (a copy the tests may rewrite)
	password string
}

func newOpsPair(t *testing.T) *opsPair {
	t.Helper()
	lab := labtest.Fresh(t, "ops")
	pw, err := os.ReadFile(filepath.Join(filepath.Dir(lab.Inventory), "replication_password"))
	if err != nil {
		t.Fatal(err)
	}
	p := &opsPair{lab: lab, password: strings.TrimSpace(string(pw))}
	inv, err := os.ReadFile(lab.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(inv), "mode: hot") || !strings.Contains(string(inv), "transport: ssh") {
		t.Fatalf("%s: expected the lab's hot mode over ssh", lab.Inventory)
	}
	// Next to the lab's inventory: its key paths are relative to it.
	p.inv = filepath.Join(filepath.Dir(lab.Inventory), "ops.yaml")
	if err := os.WriteFile(p.inv, inv, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, code := p.pgwarm(t, "apply", "--auto-approve"); code != 0 {
		t.Fatalf("apply exited %d:\n%s", code, out)
	}
	t.Logf("fixture: hot pair applied in %s", time.Since(start).Round(time.Millisecond))
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
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute) // a hang fails the test, not the package
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
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
