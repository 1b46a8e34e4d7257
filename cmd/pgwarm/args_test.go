package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/host/ssh"
	"github.com/pgwarm/pgwarm/plan"
)

// dialLog is a connector that records every host config a command dials
// with and connects nowhere.
type dialLog struct {
	mu   sync.Mutex
	cfgs []ssh.Config
}

var errNoNetwork = errors.New("test connector: no network")

func (d *dialLog) dial(_ context.Context, cfg ssh.Config) (host.Host, error) {
	d.mu.Lock()
	d.cfgs = append(d.cfgs, cfg)
	d.mu.Unlock()
	return nil, &host.Error{Host: cfg.Name, Op: "connect", Err: errNoNetwork}
}

type result struct {
	code        int
	out, stderr string
	dialed      []ssh.Config
}

// runFake runs the CLI as run does, dialing through a dialLog.
func runFake(t *testing.T, args ...string) result {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	log := &dialLog{}
	app.Metadata = map[string]any{dialMetadata: dialFunc(log.dial)}
	code := runApp(app, append([]string{"pgwarm"}, args...), &errOut)
	return result{code, out.String(), errOut.String(), log.cfgs}
}

// testInventory is the lab inventory (its hosts are never dialed here)
// and a saved plan file next to it.
func testInventory(t *testing.T) (inv, planFile string) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("../../testdata/plan/fresh-lab/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv = filepath.Join(dir, "pgwarm.yaml")
	if err := os.WriteFile(inv, b, 0o644); err != nil {
		t.Fatal(err)
	}
	planFile = filepath.Join(dir, "saved.plan")
	if err := plan.Save(planFile, plan.Plan{FormatVersion: plan.FormatVersion, Inventory: plan.Source{Path: inv}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGWARM_REPLICATION_PASSWORD", "test password")
	for _, k := range []string{"PGWARM_INVENTORY", "PGWARM_SSH_CONFIG", "PGWARM_ACCEPT_NEW_HOST_KEYS"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	return inv, planFile
}

func argCountError(s string) bool {
	return strings.Contains(s, "expected") || strings.Contains(s, "exactly") ||
		strings.Contains(s, "takes no arguments") || strings.Contains(s, "flag provided but not defined")
}

// TestFlagsAfterArguments: every command with positional arguments reads
// flags after them, as SPEC and README print them.
func TestFlagsAfterArguments(t *testing.T) {
	inv, planFile := testInventory(t)
	t.Run("rebuild HOST --method", func(t *testing.T) {
		r := runFake(t, "rebuild", "-i", inv, "pg2", "--method", "bogus")
		if argCountError(r.stderr) || !strings.Contains(r.stderr, `--method "bogus"`) {
			t.Errorf("exit %d, stderr %q: --method after HOST was not read", r.code, r.stderr)
		}
	})
	t.Run("rebuild HOST -i", func(t *testing.T) {
		r := runFake(t, "rebuild", "pg2", "-i", inv, "--connect-timeout", "3s")
		if argCountError(r.stderr) || len(r.dialed) == 0 || r.dialed[0].ConnectTimeout != 3*time.Second {
			t.Errorf("exit %d, stderr %q, dialed %d hosts", r.code, r.stderr, len(r.dialed))
		}
	})
	t.Run("apply PLAN --auto-approve", func(t *testing.T) {
		r := runFake(t, "apply", planFile, "--auto-approve", "-i", inv)
		if argCountError(r.stderr) || len(r.dialed) == 0 {
			t.Errorf("exit %d, stderr %q: apply PLAN with flags after it did not get to the hosts", r.code, r.stderr)
		}
	})
	t.Run("promote HOST --late-fence", func(t *testing.T) {
		r := runFake(t, "promote", "pg2", "-i", inv, "--late-fence", "0", "--connect-timeout", "4s")
		if argCountError(r.stderr) || len(r.dialed) == 0 || r.dialed[0].ConnectTimeout != 4*time.Second {
			t.Errorf("exit %d, stderr %q, dialed %d hosts", r.code, r.stderr, len(r.dialed))
		}
	})
	t.Run("-- ends the flags", func(t *testing.T) {
		r := runFake(t, "rebuild", "-i", inv, "--", "--method")
		if r.code == 0 || argCountError(r.stderr) || !strings.Contains(r.stderr, "--method") {
			t.Errorf("exit %d, stderr %q: a host named --method after -- was not taken as the HOST", r.code, r.stderr)
		}
		r = runFake(t, "rebuild", "-i", inv, "--", "pg2", "--method", "bogus")
		if !strings.Contains(r.stderr, "one HOST") {
			t.Errorf("stderr %q: after -- the flag-like words must count as arguments", r.stderr)
		}
	})
	t.Run("too many arguments still refused", func(t *testing.T) {
		r := runFake(t, "rebuild", "-i", inv, "pg2", "pg1")
		if r.code != 1 || !strings.Contains(r.stderr, "one HOST") || !strings.Contains(r.stderr, `"pg2" "pg1"`) {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// TestStrayArgumentNamesTheInventoryFlag: `pgwarm validate FILE` and its
// kin say how the inventory is given instead of ignoring FILE.
func TestStrayArgumentNamesTheInventoryFlag(t *testing.T) {
	inv, _ := testInventory(t)
	for _, args := range [][]string{
		{"validate", inv},
		{"render", "--dir", t.TempDir(), inv},
		{"plan", inv},
		{"status", inv},
		{"verify", inv},
		{"apply", inv, "extra"},
		{"rebuild", inv, "pg2"},
	} {
		r := runFake(t, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "-i FILE") || !strings.Contains(r.stderr, "PGWARM_INVENTORY") || !strings.Contains(r.stderr, "pgwarm "+args[0]) {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 and a message naming -i and PGWARM_INVENTORY", args, r.code, r.stderr)
		}
		if len(r.dialed) != 0 {
			t.Errorf("%q: dialed hosts despite the bad arguments", args)
		}
	}
	if r := runFake(t, "schema", "x"); r.code != 1 || !strings.Contains(r.stderr, "takes no arguments") {
		t.Errorf("schema x: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runFake(t, "validate", "-i", inv); r.code != 0 {
		t.Errorf("validate -i: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestSSHOptionsEveryCommand: every command that reaches hosts dials with
// the SSH options, from flags (after the positional arguments) and from
// the environment.
func TestSSHOptionsEveryCommand(t *testing.T) {
	inv, planFile := testInventory(t)
	cfgFile := filepath.Join(t.TempDir(), "ssh_config")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"status", []string{"status", "-i", inv}},
		{"verify", []string{"verify", "-i", inv}},
		{"promote", []string{"promote", "-i", inv, "pg2", "--late-fence", "0"}},
		{"rebuild", []string{"rebuild", "-i", inv, "pg2"}},
		{"plan", []string{"plan", "-i", inv}},
		{"apply", []string{"apply", "-i", inv, planFile}},
	} {
		t.Run(c.name+" flags", func(t *testing.T) {
			r := runFake(t, append(c.args, "--ssh-config", cfgFile, "--accept-new-host-keys", "--connect-timeout", "7s")...)
			if len(r.dialed) == 0 {
				t.Fatalf("exit %d, stderr %q: no host dialed", r.code, r.stderr)
			}
			for _, cfg := range r.dialed {
				if cfg.SSHConfigFile != cfgFile || !cfg.AcceptNewHostKeys || cfg.ConnectTimeout != 7*time.Second {
					t.Errorf("%s dialed with ssh_config %q, accept-new %t, timeout %s; want %q, true, 7s",
						cfg.Name, cfg.SSHConfigFile, cfg.AcceptNewHostKeys, cfg.ConnectTimeout, cfgFile)
				}
				if cfg.User != "pgwarm" || cfg.Become != "sudo" {
					t.Errorf("%s: the inventory's ssh settings were lost: %+v", cfg.Name, cfg)
				}
			}
			if r.code == 0 {
				t.Errorf("exit 0 with no host reachable: %q", r.stderr)
			}
		})
		t.Run(c.name+" environment", func(t *testing.T) {
			t.Setenv("PGWARM_SSH_CONFIG", cfgFile)
			t.Setenv("PGWARM_ACCEPT_NEW_HOST_KEYS", "true")
			r := runFake(t, c.args...)
			if len(r.dialed) == 0 {
				t.Fatalf("exit %d, stderr %q: no host dialed", r.code, r.stderr)
			}
			for _, cfg := range r.dialed {
				if cfg.SSHConfigFile != cfgFile || !cfg.AcceptNewHostKeys || cfg.ConnectTimeout != 10*time.Second {
					t.Errorf("%s dialed with ssh_config %q, accept-new %t, timeout %s", cfg.Name, cfg.SSHConfigFile, cfg.AcceptNewHostKeys, cfg.ConnectTimeout)
				}
			}
		})
	}
}
