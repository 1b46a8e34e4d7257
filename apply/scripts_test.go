package apply

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runScript runs scripts/name under a real sh, as host.Script makes it
// (sh -c BODY pgwarm ARGS...), with stdin; it returns the exit status,
// stdout and stderr.
func runScript(t *testing.T, stdin string, name string, args ...string) (int, string, string) {
	t.Helper()
	b, err := scripts.ReadFile("scripts/" + name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", append([]string{"-c", string(b), "pgwarm"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// Every embedded script parses (sh -n) and is what script() runs.
func TestScriptsParse(t *testing.T) {
	entries, err := fs.ReadDir(scripts, "scripts")
	if err != nil || len(entries) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, e := range entries {
		b, _ := scripts.ReadFile("scripts/" + e.Name())
		cmd := exec.Command("sh", "-n")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v: %s", e.Name(), err, out)
		}
		if got := script(e.Name(), "a b", "it's"); !strings.HasSuffix(got, " pgwarm 'a b' 'it'\\''s'") {
			t.Errorf("%s: arguments not passed as words: %s", e.Name(), got[len(got)-40:])
		}
	}
}

func self(t *testing.T) string { return fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()) }

func TestScriptKeygen(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen is needed (openssh-client)")
	}
	k := filepath.Join(t.TempDir(), "pgwarm_main")
	code, pub, stderr := runScript(t, "", "keygen.sh", k, "postgres@pg1 pgwarm main", self(t))
	if code != 0 || !strings.HasPrefix(pub, "ssh-ed25519 ") || !strings.Contains(stderr, "generated") {
		t.Fatalf("first run: exit %d, %q, %q", code, pub, stderr)
	}
	if st, _ := os.Stat(k); st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", st.Mode())
	}
	// Again: the same key; without its public half: derived, not remade.
	if code, again, stderr := runScript(t, "", "keygen.sh", k, "c", self(t)); code != 0 || again != pub || strings.Contains(stderr, "generated") {
		t.Fatalf("second run: exit %d, %q, %q", code, again, stderr)
	}
	os.Remove(k + ".pub")
	if code, again, _ := runScript(t, "", "keygen.sh", k, "c", self(t)); code != 0 || strings.Fields(again)[1] != strings.Fields(pub)[1] {
		t.Fatalf("derived public half: exit %d, %q", code, again)
	}
}

func TestScriptSeedPrep(t *testing.T) {
	dir := t.TempDir()
	pidf, state, dd := filepath.Join(dir, "seed.pid"), filepath.Join(dir, "state"), filepath.Join(dir, "data")
	marker := filepath.Join(state, "seed.incomplete")
	os.MkdirAll(filepath.Join(dd, "base"), 0o755)
	os.WriteFile(filepath.Join(dd, "PG_VERSION"), []byte("15\n"), 0o644)
	// A base backup a killed run left behind: its own process group.
	left := exec.Command("sleep", "60")
	left.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { left.Wait(); close(exited) }()
	os.WriteFile(pidf, []byte(fmt.Sprint(left.Process.Pid)), 0o644)
	if code, _, stderr := runScript(t, "", "seed-prep.sh", pidf, state, marker, dd, self(t)); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		left.Process.Kill()
		t.Fatal("the left-behind backup was not stopped")
	}
	if des, _ := os.ReadDir(dd); len(des) != 0 {
		t.Errorf("data directory not emptied: %v", des)
	}
	if st, _ := os.Stat(dd); st.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v", st.Mode())
	}
	for _, p := range []string{marker} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(pidf); err == nil {
		t.Error("pid file left")
	}
}

func TestScriptSeedtarPrep(t *testing.T) {
	base := filepath.Join(t.TempDir(), "tar")
	old := filepath.Join(base, "0a1b2c")
	os.MkdirAll(old, 0o700)
	dir := filepath.Join(base, "ffeedd")
	if code, _, stderr := runScript(t, "", "seedtar-prep.sh", base, dir, self(t)); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("a killed run's session directory is still there")
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("session directory: %v %v", st, err)
	}
}

func TestScriptLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "main", "apply.lock")
	if code, _, stderr := runScript(t, "mine\n", "lock-take.sh", p); code != 0 {
		t.Fatalf("take: exit %d: %s", code, stderr)
	}
	if code, out, _ := runScript(t, "other\n", "lock-take.sh", p); code != 3 || out != "mine\n" {
		t.Fatalf("second take: exit %d, %q; want 3 and the holder", code, out)
	}
	if code, _, _ := runScript(t, "", "lock-release.sh", p, "other"); code == 0 {
		t.Fatal("released a lock it does not hold")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("another's lock removed")
	}
	if code, _, _ := runScript(t, "", "lock-release.sh", p, "mine"); code != 0 {
		t.Fatal("own lock not released")
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("lock still there")
	}
}
