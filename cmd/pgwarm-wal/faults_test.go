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

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/waltest"
)

// A key that may only push cannot read, list or delete the archive.
func TestSSHRights(t *testing.T) {
	push := sshBackend(t, "push")
	src := t.TempDir()
	p := writeFile(t, src, seg1, fakeSegment(seg1, sysA, 1))
	push.run(t, "ship", "--archive", push.url, p, seg1).want(t, 0)
	push.run(t, "restore", "--archive", push.url, seg1, filepath.Join(src, "x")).want(t, 7, "not allowed")
	push.run(t, "list", "--archive", push.url).want(t, 7)
	push.run(t, "cleanup", "--archive", push.url, seg3).want(t, 7)
	push.run(t, "verify", "--archive", push.url).want(t, 7)

	// A bare push (a rights file of an older pgwarm) adds no history
	// file; push@1 adds only timeline 1's files, so a primary cannot take
	// the next timeline ahead of a promotion.
	hist := writeFile(t, src, "00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	push.run(t, "ship", "--archive", push.url, hist, "00000002.history").want(t, 7, "names no timeline")
	push.grant(t, "push@1")
	push.run(t, "ship", "--archive", push.url, hist, "00000002.history").want(t, 7,
		"push of 00000002.history is not allowed for pg1's ssh key", "only timeline 1", "pgwarm promote")
	seg2tl2 := "000000020000000000000002"
	push.run(t, "ship", "--archive", push.url, writeFile(t, src, seg2tl2, fakeSegment(seg2tl2, sysA, 2)), seg2tl2).want(t, 7, "only timeline 1")
	push.grant(t, "push@2") // promoted: its key may now write timeline 2
	push.run(t, "ship", "--archive", push.url, hist, "00000002.history").want(t, 0)
	push.run(t, "ship", "--archive", push.url, filepath.Join(src, seg2tl2), seg2tl2).want(t, 0)

	get := sshBackend(t, "get,cleanup")
	get.run(t, "ship", "--archive", get.url, p, seg1).want(t, 7, "not allowed")
	get.run(t, "list", "--archive", get.url).want(t, 0)

	// A URL whose path is not the forced command's root is refused.
	wrong := push
	wrong.url = "ssh://archiver@archive.example/srv/other"
	wrong.run(t, "ship", "--archive", wrong.url, p, seg1).want(t, 2, "serves")

	// ssh failing to connect is "unreachable", not a crash or >125.
	dead := backend{url: "ssh://nobody@127.0.0.1:1/srv/x", env: []string{"PGWARM_WAL_SSH=false"}}
	dead.run(t, "ship", "--archive", dead.url, p, seg1).want(t, 9, "no answer")
}

// serve refuses anything that is not a well-formed request, before
// touching the filesystem.
func TestServeRejectsHostileCommands(t *testing.T) {
	root := t.TempDir()
	for _, cmd := range []string{
		"", "sh -c id", "pgwarm-wal-op get ../../etc/shadow", "pgwarm-wal-op get 000000010000000000000001/../../x",
		"pgwarm-wal-op get 000000010000000000000001 root=/etc/../root", "pgwarm-wal-op rm 000000010000000000000001",
		"pgwarm-wal-op get 000000010000000000000001; rm -rf /", "pgwarm-wal-op push 000000010000000000000001 marker=../x",
		"pgwarm-wal-op cleanup 00000001.history",
	} {
		t.Run(cmd, func(t *testing.T) {
			r := runBin(t, []string{"SSH_ORIGINAL_COMMAND=" + cmd}, nil, "serve", "--root", root, "--allow", "push,get,cleanup")
			if r.code != 2 {
				t.Fatalf("exit %d for %q: %s", r.code, cmd, r.stderr)
			}
		})
	}
}

// kill -9 at random moments during ship: never a file under the final
// name that is not complete and valid; a retry then succeeds.
func TestKillDuringShip(t *testing.T) {
	root := t.TempDir()
	src := t.TempDir()
	// A large uncompressed segment makes the write window wide enough to hit.
	const big = 64 << 20
	name := "000000010000000000000001"
	seg := make([]byte, big)
	binary.LittleEndian.PutUint16(seg[0:], 0xD110)
	binary.LittleEndian.PutUint16(seg[2:], 0x0002)
	binary.LittleEndian.PutUint32(seg[4:], 1)
	binary.LittleEndian.PutUint64(seg[8:], 1*big)
	binary.LittleEndian.PutUint64(seg[24:], sysA)
	binary.LittleEndian.PutUint32(seg[32:], big)
	binary.LittleEndian.PutUint32(seg[36:], 8192)
	rand.New(rand.NewSource(1)).Read(seg[40 : 4<<20])
	waltest.StampPageHeaders(seg)
	seg[big-1] = 1 // no trailing zeros to elide: the whole file is written
	p := writeFile(t, src, name, seg)
	n, _ := segname.Parse(name)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	// Time one complete ship, then kill at random points across that span.
	start := time.Now()
	runBin(t, nil, nil, "ship", "--compression", "none", "--archive", root, p, name).want(t, 0)
	span := time.Since(start)
	t.Logf("one ship of %d MiB takes %v", big>>20, span)
	rounds := 6
	if testing.Short() {
		rounds = 4
	}
	for i := 0; i < rounds; i++ {
		os.RemoveAll(filepath.Join(root, "wal"))
		cmd := exec.Command(binPath, "ship", "--compression", "none", "--archive", root, p, name)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int63n(int64(span) * 5 / 4)))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		final := filepath.Join(root, "wal", name)
		if b, err := os.ReadFile(final); err == nil {
			if v := archive.CheckFile(n, b, 0); v.Err != nil {
				t.Fatalf("round %d: invalid file under the final name after kill -9: %v", i, v.Err)
			}
			t.Logf("round %d: killed after completion", i)
		} else {
			t.Logf("round %d: killed mid-write, nothing under the final name", i)
		}
		runBin(t, nil, nil, "ship", "--compression", "none", "--archive", root, p, name).want(t, 0)
		runBin(t, nil, nil, "verify", "--archive", root).want(t, 0)
	}
}

// The archive directory is not writable for the PostgreSQL OS user: the
// ship runs unprivileged, as PostgreSQL's archiver does.
func TestArchiveNotWritable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the ship as another user")
	}
	base, err := os.MkdirTemp("", "pgwarm-ro-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	root := filepath.Join(base, "archive")
	os.Mkdir(root, 0o755) // owned by root: nobody cannot create wal/ in it
	src := filepath.Join(base, "src")
	os.Mkdir(src, 0o755)
	p := filepath.Join(src, seg1)
	os.WriteFile(p, fakeSegment(seg1, sysA, 1), 0o644)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	r := runBin(t, nil, nobody, "ship", "--archive", root, p, seg1)
	r.want(t, 7, "permission denied", "writable")
	entries, _ := os.ReadDir(root)
	if len(entries) != 0 {
		t.Fatalf("archive changed: %v", entries)
	}
}

// Disk full: a small tmpfs as the archive. Every ship either succeeds
// completely or fails with exit 8 and leaves nothing behind.
func TestArchiveDiskFull(t *testing.T) {
	root := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", root).CombinedOutput(); err != nil {
		if os.Getenv("PGWARM_REQUIRE_PG") == "1" {
			t.Fatalf("cannot mount a tmpfs for the disk-full test: %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (not root / no CAP_SYS_ADMIN): %v %s", err, strings.TrimSpace(string(out)))
	}
	defer exec.Command("umount", root).Run()
	src := t.TempDir()
	full := false
	for i := 1; i <= 8 && !full; i++ {
		n := fmt.Sprintf("0000000100000000000000%02X", i)
		p := writeFile(t, src, n, fakeSegment(n, sysA, int64(i)))
		raw, _ := os.ReadFile(p)
		rand.New(rand.NewSource(int64(i))).Read(raw[40:]) // incompressible
		waltest.StampPageHeaders(raw)
		os.WriteFile(p, raw, 0o644)
		r := runBin(t, nil, nil, "ship", "--compression", "none", "--archive", root, p, n)
		switch r.code {
		case 0:
		case 8:
			full = true
			if !strings.Contains(r.stderr, "archive is full") {
				t.Fatalf("message: %s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(root, "wal", n)); err == nil {
				t.Fatalf("%s exists after a disk-full failure", n)
			}
		default:
			t.Fatalf("ship %s: exit %d: %s", n, r.code, r.stderr)
		}
	}
	if !full {
		t.Fatal("the 3 MiB archive never filled up")
	}
	des, _ := os.ReadDir(filepath.Join(root, "wal"))
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".tmp-") {
			t.Fatalf("temp file %s left behind", de.Name())
		}
	}
	runBin(t, nil, nil, "verify", "--archive", root).want(t, 0)
}

// A panic must map to a code PostgreSQL does not treat as fatal.
func TestExitCodesStayBelow126(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"pgwarm-wal", "restore", "--archive", "/nonexistent/dir", seg1, "/tmp/x"}, &stderr, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "does not exist") {
		t.Fatalf("code %d: %s", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"pgwarm-wal", "--no-such-flag"}, &stderr, &stderr); code != 2 {
		t.Fatalf("unknown flag: %d", code)
	}
}

// serve --rights reads the key's line at every request: rewriting the
// file changes what an already configured key may do, with no new login.
func TestServeRightsFile(t *testing.T) {
	root := t.TempDir()
	rights := filepath.Join(t.TempDir(), "archive-main.rights")
	serve := func() result {
		return runBin(t, []string{"SSH_ORIGINAL_COMMAND=pgwarm-wal-op list"}, nil, "serve", "--root", root, "--rights", rights, "--as", "pg2")
	}
	if err := os.WriteFile(rights, []byte("pg1 push\npg2 get,cleanup\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	serve().want(t, 0)
	if err := os.WriteFile(rights, []byte("pg1 get,cleanup\npg2 push\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	// serve's own stderr (sshd's log) has the line twice; the client gets it once.
	refused := func(r result, msg string) {
		t.Helper()
		if r.code != 7 || !strings.Contains(r.stderr, msg) {
			t.Fatalf("exit %d, want 7 with %q:\n%s", r.code, msg, r.stderr)
		}
	}
	refused(serve(), `operation "list" is not allowed for pg2's ssh key (`+rights+` grants only push)`)
	os.Remove(rights)
	refused(serve(), "cannot read its rights file")
	for _, args := range [][]string{
		{"--allow", "get", "--rights", rights, "--as", "pg2"},
		{"--rights", rights},
		{"--allow", "get", "--as", "pg2"},
		{},
	} {
		runBin(t, []string{"SSH_ORIGINAL_COMMAND=pgwarm-wal-op list"}, nil, append([]string{"serve", "--root", root}, args...)...).want(t, 2, "--")
	}
}
