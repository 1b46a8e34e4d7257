package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCapture drives the whole CLI through run() and returns its exit code,
// stdout and stderr. It swaps os.Stdout and os.Stderr, so callers must not
// run in parallel.
func runCapture(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outF, errF
	code := run(append([]string{"pgwarm"}, args...))
	os.Stdout, os.Stderr = oldOut, oldErr
	outF.Close()
	errF.Close()
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	return code, string(o), string(e)
}

const brokenDir = "../../testdata/inventory/broken"

// Every broken inventory gives exactly its expected file:line:col
// messages and exit status 1.
func TestValidateBrokenCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(brokenDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("only %d broken inventories", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(brokenDir, name+".err"))
			if err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCapture(t, "validate", "-i", f)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			got := strings.ReplaceAll(stderr, brokenDir+"/", "")
			if got != string(want) {
				t.Errorf("messages differ\n--- got\n%s--- want\n%s", got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(line, name+".yaml:") {
					t.Errorf("line does not start with the file name: %q", line)
				}
			}
		})
	}
}

func TestValidateExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) < 2 {
		t.Fatalf("examples: %v", files)
	}
	t.Setenv("PGWARM_REPLICATION_PASSWORD", "example")
	t.Setenv("SALES_REPLICATION_PASSWORD", "example")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, stdout, stderr := runCapture(t, "validate", "-i", f)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if !strings.HasPrefix(stdout, f+": valid (cluster ") {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

func TestValidateSummary(t *testing.T) {
	t.Setenv("PGWARM_REPLICATION_PASSWORD", "example")
	code, stdout, _ := runCapture(t, "validate", "-i", "../../examples/pgwarm.yaml")
	want := "../../examples/pgwarm.yaml: valid (cluster main, PostgreSQL 15, primary pg1, standbys pg2, archive arch via ssh)\n"
	if code != 0 || stdout != want {
		t.Errorf("exit %d, stdout %q, want %q", code, stdout, want)
	}
}

func TestValidateMissingFile(t *testing.T) {
	code, _, stderr := runCapture(t, "validate", "-i", filepath.Join(t.TempDir(), "nope.yaml"))
	if code != 1 || !strings.Contains(stderr, "nope.yaml") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
