package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRenderWritesTree(t *testing.T) {
	t.Setenv("PGWARM_REPLICATION_PASSWORD", "render-secret")
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runCapture(t, "render", "-i", "../../testdata/render/pg16-streaming-ssh/pgwarm.yaml", "--dir", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "for 3 hosts written under") {
		t.Errorf("stdout %q", stdout)
	}
	st, err := os.Stat(filepath.Join(out, "pg2/var/lib/postgresql/16/main/standby.signal"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("standby.signal: %v %v", st, err)
	}
	hba, err := os.ReadFile(filepath.Join(out, "pg1/etc/postgresql/16/main/pg_hba.conf"))
	if err != nil || !strings.HasPrefix(string(hba), "# BEGIN pgwarm replication\n") || !strings.HasSuffix(string(hba), "# END pgwarm replication\n") {
		t.Errorf("pg_hba block: %q %v", hba, err)
	}
	// The secret is written, but only into 0600 files.
	err = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		if strings.Contains(string(b), "render-secret") && info.Mode().Perm() != 0o600 {
			t.Errorf("%s holds the secret with mode %v", p, info.Mode())
		}
		if strings.HasSuffix(p, "pgwarm_main") {
			t.Errorf("%s: generated key written by render", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "pg1/var/lib/postgresql/.pgpass")); !strings.Contains(string(b), "render-secret") {
		t.Errorf(".pgpass: %q", b)
	}
}

func TestRenderErrorWritesNothing(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../../testdata/render/pg15-hot-ssh/pgwarm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "pgwarm.yaml")
	tmpl := filepath.Join(dir, "tmpl")
	// A broken operator template fails at render time, after the inventory loaded.
	if err := os.MkdirAll(tmpl, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmpl, "pgpass.tmpl"), []byte("{{ .NoSuchField }}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, append(src, []byte("templates_dir: tmpl\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"template error":    {"render", "-i", inv, "--dir", filepath.Join(dir, "out")},
		"invalid inventory": {"render", "-i", filepath.Join(brokenDir, "two-primaries.yaml"), "--dir", filepath.Join(dir, "out")},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCapture(t, args...)
			if code != 1 || stderr == "" {
				t.Errorf("exit %d, stderr %q", code, stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
				t.Errorf("output directory exists after an error: %v", err)
			}
		})
	}
}
