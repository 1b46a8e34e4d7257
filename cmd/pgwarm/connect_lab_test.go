package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/internal/labtest"
)

// What an operator sees when a host cannot be reached the way the inventory
// says: one line per host naming it and the cause, exit status 1, for a
// changed host key, an unknown one, an unreachable address and a user
// without sudo. plan is read-only, so the shared lab stays as it was.
func TestLabConnectErrors(t *testing.T) {
	lab := labtest.Require(t)
	t.Setenv("PGWARM_REPLICATION_PASSWORD", "connect-errors-test")
	inv, err := os.ReadFile(lab.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(lab.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	pg2 := lab.Hosts["pg2"]
	unused := pg2[:strings.LastIndex(pg2, ".")] + ".99"

	// A valid key that is not pg2's.
	dir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "other")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	otherPub, err := os.ReadFile(filepath.Join(dir, "other.pub"))
	if err != nil {
		t.Fatal(err)
	}
	otherKey := strings.Join(strings.Fields(string(otherPub))[:2], " ")

	var changed, unknown []string
	for _, l := range strings.Split(strings.TrimSpace(string(known)), "\n") {
		if strings.HasPrefix(l, pg2+" ") {
			changed = append(changed, pg2+" "+otherKey)
			continue
		}
		changed = append(changed, l)
		unknown = append(unknown, l)
	}

	cases := []struct {
		name       string
		knownHosts []string
		edit       func(string) string
		args       []string
		want       string
	}{
		{"changed host key", changed, nil, nil, "pg2: connect: host key CHANGED"},
		{"unknown host key", unknown, nil, nil, "pg2: connect: host key not in known_hosts"},
		{"unreachable host", unknown, func(s string) string {
			// An unused address on the lab's own network: nothing answers,
			// and no traffic leaves this machine.
			return strings.Replace(s, "address: "+pg2, "address: "+unused, 1)
		}, []string{"--connect-timeout", "2s"}, "pg2: connect: dial tcp " + unused + ":22"},
		{"user without sudo", strings.Split(strings.TrimSpace(string(known)), "\n"), func(s string) string {
			return strings.Replace(s, "user: "+lab.User, "user: "+lab.NoSudoUser, 1)
		}, nil, `pg2: connect: sudo -n refused: user "` + lab.NoSudoUser + `"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			text := withPaths(string(inv), lab.KeyFile, filepath.Join(d, "known_hosts"))
			if c.edit != nil {
				text = c.edit(text)
			}
			if err := os.WriteFile(filepath.Join(d, "known_hosts"), []byte(strings.Join(c.knownHosts, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(d, "pgwarm.yaml")
			if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCapture(t, append([]string{"plan", "-i", file}, c.args...)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			var hit string
			for _, l := range strings.Split(stderr, "\n") {
				if strings.Contains(l, c.want) {
					hit = l
				}
			}
			if hit == "" {
				t.Fatalf("no line containing %q in:\n%s", c.want, stderr)
			}
			t.Logf("%s", hit)
		})
	}
}

// withPaths points an inventory's ssh identity_file and known_hosts at
// absolute paths (the lab's are relative to its state directory).
func withPaths(inv, key, knownHosts string) string {
	lines := strings.Split(inv, "\n")
	for i, l := range lines {
		indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "identity_file:"):
			lines[i] = indent + "identity_file: " + key
		case strings.HasPrefix(strings.TrimSpace(l), "known_hosts:"):
			lines[i] = indent + "known_hosts: " + knownHosts
		}
	}
	return strings.Join(lines, "\n")
}
