package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/wal/waltest"
)

// binPath is the real pgwarm-wal, built once: the tests run it the way
// PostgreSQL and sshd do, as a separate process.
var binPath string

func TestMain(m *testing.M) {
	if out := os.Getenv(measureEnv); out != "" {
		os.Exit(measureHelper(out, os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "pgwarm-wal-bin-")
	if err != nil {
		panic(err)
	}
	// Readable by the unprivileged users some tests run it as.
	_ = os.Chmod(dir, 0o755)
	binPath = filepath.Join(dir, "pgwarm-wal")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if other := os.Getenv("PGWARM_WAL_TEST_BIN"); other != "" {
		// Another build (measuring an older version): copied, so the
		// unprivileged users some tests run it as can read it.
		build = exec.Command("cp", other, binPath)
	}
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building pgwarm-wal: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testSegSize = 1 << 20 // smallest valid wal_segment_size keeps tests fast

// fakeSegment returns a segment whose long page header names it correctly.
func fakeSegment(name string, sysid uint64, seed int64) []byte {
	var tli, log, seg uint32
	fmt.Sscanf(name[:24], "%08X%08X%08X", &tli, &log, &seg)
	segno := uint64(log)*(0x100000000/testSegSize) + uint64(seg)
	b := make([]byte, testSegSize)
	binary.LittleEndian.PutUint16(b[0:], 0xD110)
	binary.LittleEndian.PutUint16(b[2:], 0x0002)
	binary.LittleEndian.PutUint32(b[4:], tli)
	binary.LittleEndian.PutUint64(b[8:], segno*testSegSize)
	binary.LittleEndian.PutUint64(b[24:], sysid)
	binary.LittleEndian.PutUint32(b[32:], testSegSize)
	binary.LittleEndian.PutUint32(b[36:], 8192)
	rand.New(rand.NewSource(seed)).Read(b[40 : 40+50000])
	waltest.StampPageHeaders(b)
	return b
}

// backend is one way to reach an archive: a URL plus the environment the
// client needs (the ssh shim for ssh://).
type backend struct {
	name string
	url  string
	root string // directory on "the archive host"
	env  []string
	// rights is the ssh key's rights file on "the archive host".
	rights string
}

func localBackend(t *testing.T) backend {
	root := t.TempDir()
	return backend{name: "local", url: root, root: root}
}

func fileURLBackend(t *testing.T) backend {
	root := t.TempDir()
	return backend{name: "file", url: "file://" + root, root: root}
}

// sshBackend points PGWARM_WAL_SSH at a shim that does what sshd does with a
// forced command: put the requested command in SSH_ORIGINAL_COMMAND and run
// pgwarm-wal serve instead, with the key's rights read from a rights file
// as pgwarm renders it (grant rewrites it, as pgwarm promote does). Like
// ssh on a shared connection (ControlMaster, as pgwarm renders it), serve
// runs in another process that holds stdin and stdout: killing the ssh
// process does not end the request.
func sshBackend(t *testing.T, allow string) backend {
	root := t.TempDir()
	dir := t.TempDir()
	shim, rights := filepath.Join(dir, "fake-ssh"), filepath.Join(dir, "pgwarm-main.rights")
	script := fmt.Sprintf(`#!/bin/sh
# fake ssh: options..., destination, remote command (last argument)
for last; do :; done
exec 3<&0 # sh gives a background command /dev/null as stdin otherwise
SSH_ORIGINAL_COMMAND="$last" %s serve --root %s --rights %s --as pg1 <&3 3<&- &
wait $!
`, binPath, root, rights)
	if err := os.WriteFile(shim, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b := backend{name: "ssh", url: "ssh://archiver@archive.example:2222" + root, root: root,
		env: []string{"PGWARM_WAL_SSH=" + shim}, rights: rights}
	b.grant(t, allow)
	return b
}

// grant gives an ssh backend's key these rights from its next request on;
// other backends have no keys.
func (b backend) grant(t *testing.T, allow string) {
	t.Helper()
	if b.rights != "" {
		writeFile(t, filepath.Dir(b.rights), filepath.Base(b.rights), []byte("pg1 "+allow+"\n"))
	}
}

type result struct {
	code   int
	stdout string
	stderr string
	took   time.Duration
}

func (b backend) run(t *testing.T, args ...string) result {
	t.Helper()
	return runBin(t, b.env, nil, args...)
}

func runBin(t *testing.T, env []string, cred *syscall.Credential, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running pgwarm-wal: %v", err)
	}
	return r
}

func (r result) want(t *testing.T, code int, stderrHas ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			t.Fatalf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Fatalf("error message must be one line:\n%s", r.stderr)
	}
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
