// Package labtest connects integration tests to the lab started by
// `make lab-up` (examples/lab/lab.sh). When PGWARM_LAB_REQUIRED=1 (as in
// `make test` and CI) a lab that is not up fails the test instead of
// skipping it, so CI can never go green by running nothing.
package labtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Lab is what examples/lab/.state/lab.env says about the running lab.
type Lab struct {
	Dir        string // examples/lab
	Inventory  string // the lab inventory (key paths relative to it)
	Instance   string // "" for the default lab, else LAB_INSTANCE
	PGUser     string // a password-authenticated superuser on pg1, for tunnel tests
	PGPassword string
	KeyFile    string // private key accepted by every lab host for User, root and NoSudoUser
	KnownHosts string // known_hosts with every lab host's key
	User       string // non-root user with passwordless sudo
	NoSudoUser string // non-root user without sudo rights (for the bad-sudo path)
	SSHPort    int
	PGVersion  int
	Suite      string
	Hosts      map[string]string // pg1, pg2, arch -> address
	Containers map[string]string // pg1, pg2, arch -> docker container name
}

// Root is the repository root, found from this source file.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Require returns the lab, or skips the test when the lab is not up and not
// required, or fails it when PGWARM_LAB_REQUIRED=1.
func Require(t testing.TB) Lab {
	t.Helper()
	skipShort(t)
	lab, err := Load()
	if err == nil {
		err = lab.reachable()
	}
	if err != nil {
		if os.Getenv("PGWARM_LAB_REQUIRED") == "1" {
			t.Fatalf("lab required but not usable (run `make lab-up`): %v", err)
		}
		t.Skipf("lab not up (run `make lab-up`, or set PGWARM_LAB_REQUIRED=1 to fail): %v", err)
	}
	return lab
}

// Load reads examples/lab/.state/lab.env, or .state-NAME/lab.env when
// PGWARM_LAB_INSTANCE=NAME selects a separate lab (see lab.sh).
func Load() (Lab, error) {
	dir := filepath.Join(Root(), "examples", "lab")
	stateDir := ".state"
	if inst := os.Getenv("PGWARM_LAB_INSTANCE"); inst != "" {
		stateDir += "-" + inst
	}
	envFile := filepath.Join(dir, stateDir, "lab.env")
	f, err := os.Open(envFile)
	if err != nil {
		return Lab{}, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Lab{}, fmt.Errorf("%s: bad line %q", envFile, line)
		}
		kv[k] = strings.Trim(v, `"'`)
	}
	lab := Lab{
		Dir:        dir,
		Inventory:  kv["LAB_INVENTORY"],
		Instance:   kv["LAB_INSTANCE"],
		PGUser:     kv["LAB_PG_USER"],
		PGPassword: kv["LAB_PG_PASSWORD"],
		KeyFile:    kv["LAB_KEY"],
		KnownHosts: kv["LAB_KNOWN_HOSTS"],
		User:       kv["LAB_USER"],
		NoSudoUser: kv["LAB_NOSUDO_USER"],
		Suite:      kv["LAB_SUITE"],
		Hosts:      map[string]string{},
		Containers: map[string]string{},
	}
	fmt.Sscan(kv["LAB_SSH_PORT"], &lab.SSHPort)
	fmt.Sscan(kv["LAB_PG_VERSION"], &lab.PGVersion)
	for _, h := range []string{"pg1", "pg2", "arch"} {
		up := strings.ToUpper(h)
		lab.Hosts[h] = kv["LAB_"+up+"_ADDR"]
		lab.Containers[h] = kv["LAB_"+up+"_CONTAINER"]
	}
	return lab, nil
}

// Reset recreates the lab's hosts from the image (down + up, seconds), for
// tests that need fresh hosts, and returns the new lab description.
func (l Lab) Reset(t testing.TB) Lab {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(l.Dir, "lab.sh"), "reset")
	cmd.Env = append(os.Environ(), "LAB_INSTANCE="+l.Instance, "LAB_SUITE="+l.Suite)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lab reset: %v\n%s", err, out)
	}
	fresh, err := Load()
	if err != nil {
		t.Fatalf("lab reset: %v", err)
	}
	return fresh
}

// Docker runs `docker args...` (stop, kill, start, network disconnect ...)
// and fails the test on error.
func (l Lab) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l Lab) reachable() error {
	for name, addr := range l.Hosts {
		if addr == "" {
			return fmt.Errorf("lab.env has no address for %s", name)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, fmt.Sprint(l.SSHPort)), 3*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		c.Close()
	}
	return nil
}

// Fresh gives a test its own freshly created lab instance (LAB_INSTANCE=name:
// own network, containers and state) of the suite in $LAB_SUITE (default
// bookworm), for tests that change hosts. See FreshSuite.
func Fresh(t testing.TB, name string) Lab {
	t.Helper()
	return FreshSuite(t, name, os.Getenv("LAB_SUITE"))
}

// FreshSuite is Fresh for a given Debian suite (bullseye, bookworm, trixie:
// PostgreSQL 13, 15, 17; "" = bookworm). It skips when Docker is absent
// unless PGWARM_LAB_REQUIRED=1, where it fails. The instance is left
// running for inspection; `LAB_INSTANCE=name make lab-down` removes it.
func FreshSuite(t testing.TB, name, suite string) Lab {
	t.Helper()
	skipShort(t)
	if _, err := exec.LookPath("docker"); err != nil {
		if os.Getenv("PGWARM_LAB_REQUIRED") == "1" {
			t.Fatalf("lab required but docker is missing: %v", err)
		}
		t.Skipf("docker missing: %v", err)
	}
	if os.Getenv("PGWARM_LAB_REQUIRED") != "1" && os.Getenv("PGWARM_LAB") == "" {
		t.Skip("lab tests that create their own lab run under `make test` (or set PGWARM_LAB=1)")
	}
	if suite == "" {
		suite = "bookworm"
	}
	cmd := exec.Command("bash", filepath.Join(Root(), "examples", "lab", "lab.sh"), "reset")
	cmd.Env = append(os.Environ(), "LAB_INSTANCE="+name, "LAB_SUITE="+suite)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lab %s (%s): %v\n%s", name, suite, err, out)
	}
	t.Setenv("PGWARM_LAB_INSTANCE", name)
	lab, err := Load()
	if err == nil {
		err = lab.reachable()
	}
	if err != nil {
		t.Fatalf("lab %s (%s): %v", name, suite, err)
	}
	return lab
}

// skipShort keeps lab tests out of the unit run (`go test -short`, seconds,
// no Docker); `make test-lab` runs them without -short, where they are
// required.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test: `make test-lab` runs it")
	}
}
