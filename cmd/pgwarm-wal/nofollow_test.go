package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runWithin is run that fails instead of hanging: a FIFO opened as a file
// blocks its reader for good (even SIGTERM does not end it).
func (b backend) runWithin(t *testing.T, d time.Duration, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), b.env...)
	cmd.WaitDelay = 2 * time.Second // the ssh shim's serve may keep the pipes
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(d, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("pgwarm-wal %s hangs (killed after %v)", strings.Join(args, " "), d)
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running pgwarm-wal: %v", err)
	}
	return r
}

// serve get through a link in the archive to a file the archive user can
// read: refused by name, and the file's bytes never reach the client
// (the request run as sshd runs it, and as a client over ssh://).
func TestServeGetFollowsNoLinks(t *testing.T) {
	const secret = "SECRET-archive-host-key-material\n"
	b := sshBackend(t, "get")
	secretPath := writeFile(t, t.TempDir(), "id_ed25519", []byte(secret))
	if err := os.Mkdir(filepath.Join(b.root, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secretPath, filepath.Join(b.root, "wal", seg1)); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, []string{"SSH_ORIGINAL_COMMAND=pgwarm-wal-op get " + seg1}, nil, "serve", "--root", b.root, "--allow", "get")
	if r.code != 5 || strings.Contains(r.stdout, "SECRET") || !strings.Contains(r.stdout, "symbolic link") {
		t.Fatalf("serve get of a link: exit %d\nstdout %q\nstderr %s", r.code, r.stdout, r.stderr)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	rr := b.run(t, "restore", "--archive", b.url, seg1, dest)
	rr.want(t, 5, "symbolic link", filepath.Join(b.root, "wal", seg1))
	if strings.Contains(rr.stderr, "SECRET") {
		t.Fatal("the secret reached the client")
	}
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("DEST written")
	}
	ls := b.run(t, "list", "--archive", b.url)
	ls.want(t, 0)
	if !strings.Contains(ls.stdout, seg1) {
		t.Fatalf("list does not report the link:\n%s", ls.stdout)
	}
}

// A FIFO under a WAL name or as the archive's metadata hangs neither
// restore nor verify.
func TestFIFOHangsNothing(t *testing.T) {
	for _, mk := range []func(*testing.T) backend{localBackend, func(t *testing.T) backend { return sshBackend(t, "push,get") }} {
		b := mk(t)
		t.Run(b.name, func(t *testing.T) {
			src := t.TempDir()
			b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1)), seg1).want(t, 0)
			if err := syscall.Mkfifo(filepath.Join(b.root, "wal", seg2), 0o600); err != nil {
				t.Fatal(err)
			}
			const d = 20 * time.Second
			b.runWithin(t, d, "restore", "--archive", b.url, seg2, filepath.Join(t.TempDir(), "RECOVERYXLOG")).want(t, 5, "named pipe")
			b.runWithin(t, d, "verify", "--archive", b.url).want(t, 5)
			meta := filepath.Join(b.root, "pgwarm-archive.json")
			if err := os.Remove(meta); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(meta, 0o600); err != nil {
				t.Fatal(err)
			}
			b.runWithin(t, d, "verify", "--archive", b.url).want(t, 5, "named pipe", meta)
			b.runWithin(t, d, "restore", "--archive", b.url, seg1, filepath.Join(t.TempDir(), "RECOVERYXLOG")).want(t, 5, "named pipe")
		})
	}
}

// A link planted at the temp file name next to DEST that earlier versions
// used (DEST.pgwarm-wal.tmp) is not written through.
func TestRestoreFollowsNoPlantedLink(t *testing.T) {
	b := localBackend(t)
	src := t.TempDir()
	want := fakeSegment(seg1, sysA, 1)
	b.run(t, "ship", "--archive", b.url, writeFile(t, src, seg1, want), seg1).want(t, 0)
	victim := writeFile(t, t.TempDir(), "postgresql.auto.conf", []byte("primary_conninfo = 'keep me'\n"))
	before, _ := os.ReadFile(victim)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if err := os.Symlink(victim, dest+".pgwarm-wal.tmp"); err != nil {
		t.Fatal(err)
	}
	b.run(t, "restore", "--archive", b.url, seg1, dest).want(t, 0)
	if after, _ := os.ReadFile(victim); !bytes.Equal(before, after) {
		t.Fatalf("restore wrote through the planted link into %s", victim)
	}
	if st, err := os.Lstat(dest); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("DEST is not a regular file: %v", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
		t.Fatal("DEST content differs")
	}
}
