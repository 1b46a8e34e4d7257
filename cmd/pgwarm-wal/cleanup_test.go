package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sshKeyBackend is the archive root reached through the key of host as:
// serve reads that key's rights from a rights file, as pgwarm renders it.
func cleanupKeyBackend(t *testing.T, root, rights, as string) backend {
	shim := filepath.Join(t.TempDir(), "fake-ssh")
	script := fmt.Sprintf(`#!/bin/sh
for last; do :; done
exec 3<&0
SSH_ORIGINAL_COMMAND="$last" %s serve --root %s --rights %s --as %s <&3 3<&- &
wait $!
`, binPath, root, rights, as)
	if err := os.WriteFile(shim, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return backend{name: "ssh as " + as, url: "ssh://archiver@archive.example" + root, root: root, env: []string{"PGWARM_WAL_SSH=" + shim}}
}

// Two standbys share the archive, each with the archive_cleanup_command
// pgwarm renders: nothing is removed before both reported, then only what
// is before the older restart point. Local and over ssh (one key each).
func TestCleanupSeveralStandbys(t *testing.T) {
	for _, transport := range []string{"local", "ssh"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			pg1, pg2, pg3 := backend{url: root, root: root}, backend{url: root, root: root}, backend{url: root, root: root}
			if transport == "ssh" {
				rights := writeFile(t, t.TempDir(), "main.rights", []byte("pg1 push\npg2 get,cleanup,list,verify\npg3 get,cleanup,list,verify\n"))
				pg1, pg2, pg3 = cleanupKeyBackend(t, root, rights, "pg1"), cleanupKeyBackend(t, root, rights, "pg2"), cleanupKeyBackend(t, root, rights, "pg3")
				// A key reports only for its own host.
				pg3.run(t, "cleanup", "--archive", pg3.url, "--as", "pg2", seg3).want(t, 7, "a key reports only its own host's restart point")
			}
			src := t.TempDir()
			for i := 1; i <= 5; i++ {
				n := fmt.Sprintf("00000001000000000000000%d", i)
				pg1.run(t, "ship", "--archive", pg1.url, writeFile(t, src, n, fakeSegment(n, sysA, int64(i))), n).want(t, 0)
			}
			cleanup := func(b backend, as, oldest string, flags ...string) result {
				t.Helper()
				args := append([]string{"cleanup", "--verbose", "--archive", b.url, "--as", as, "--standbys", "pg2,pg3"}, flags...)
				return b.run(t, append(args, oldest)...)
			}
			has := func(n string) bool { _, err := os.Stat(filepath.Join(root, "wal", n)); return err == nil }

			cleanup(pg2, "pg2", "0000000100000000000000FF").want(t, 2, "beyond "+seg5)
			r := cleanup(pg2, "pg2", seg3)
			r.want(t, 0)
			if !strings.Contains(r.stdout, "nothing is removed until every standby has reported a restart point; not yet: pg3 ") || !has(seg1) {
				t.Fatalf("pg3 never reported, yet:\n%s", r.stdout)
			}
			// pg3 streams far ahead of the archive: clamped, and bounded by pg2.
			r = cleanup(pg3, "pg3", "0000000100000000000000FF", "--streaming")
			r.want(t, 0)
			if !strings.Contains(r.stdout, "recorded "+seg5+" as pg3's restart point (its %r is ahead of the archive") ||
				!strings.Contains(r.stdout, "removed "+seg2) || has(seg1) || has(seg2) || !has(seg3) {
				t.Fatalf("pg3 ahead:\n%s", r.stdout)
			}
			// A dry run by hand on the archive host shows the records and
			// removes nothing. (Over ssh every cleanup through pg2's key is
			// pg2's report.)
			d := runBin(t, nil, nil, "cleanup", "--dry-run", "--archive", root, seg5)
			d.want(t, 0)
			if !strings.Contains(d.stdout, "restart point of pg2: "+seg3) || !strings.Contains(d.stdout, "oldest restart point "+seg3+" (pg2's)") || strings.Contains(d.stdout, "would remove") {
				t.Fatalf("dry run:\n%s", d.stdout)
			}
			// pg2 catches up: now what is before pg2's new point goes.
			cleanup(pg2, "pg2", seg5).want(t, 0)
			if has(seg3) || has("000000010000000000000004") || !has(seg5) {
				t.Fatal("pg2's cleanup at " + seg5 + " did not remove 3 and 4")
			}
			if b, err := os.ReadFile(filepath.Join(root, "restartpoints", "pg2")); err != nil || string(b) != seg5+"\n" {
				t.Fatalf("pg2's record: %q %v", b, err)
			}
			cleanup(pg2, "../pg3", seg5).want(t, 2, "standby name")
		})
	}
}
