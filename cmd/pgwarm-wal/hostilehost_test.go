package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/walfile"
	"github.com/pgwarm/pgwarm/wal/waltest"
)

// The archive host is not trusted for what the restoring cluster is: a
// hostile one answers a 16 MiB cluster's get with whatever it likes, and
// claims any binding. restore, given its own cluster (--system-identifier,
// --segment-size, as pgwarm renders them), refuses WAL of another size or
// cluster at the frame's header, writes nothing, and stays small; the same
// honest segment over the same path is handed over.
func TestRestoreDistrustsArchiveHost(t *testing.T) {
	const (
		seg16 = 16 << 20
		name  = "000000010000000000000005"
	)
	cluster := []string{"--system-identifier", fmt.Sprint(sysA), "--segment-size", fmt.Sprint(seg16)}
	cases := []struct {
		what    string
		content []byte
		flags   []string
		code    int
		stderr  string
	}{
		// Self-consistent: every page header agrees with the long header.
		{"64 MiB segment for a 16 MiB cluster", segmentFor(sysA, 64<<20), cluster, 5, "67108864-byte WAL segments, but this cluster's are 16777216"},
		{"segment of another cluster", segmentFor(sysA+1, seg16), cluster, 5, "this standby restores for cluster"},
		{"the segment size alone known", segmentFor(sysA, 64<<20), cluster[2:], 5, "this cluster's are 16777216"},
		{"honest segment", segmentFor(sysA, seg16), cluster, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			info, err := walfile.ParseLongHeader(c.content)
			if err != nil {
				t.Fatal(err)
			}
			file, _, err := walfile.Encode(c.content, walfile.Zstd, info)
			if err != nil {
				t.Fatal(err)
			}
			env := hostileHost(t, frame(archive.FrameOK, file))
			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			args := append(append([]string{"restore", "--archive", "ssh://archiver@archive.example/var/lib/pgwarm/archive"}, c.flags...), name, dest)
			r := runMeasured(t, env, nil, args...)
			t.Logf("restore: exit %d, peak RSS %d MiB: %s", r.code, r.maxRSS>>20, r.stderr)
			r.result.want(t, c.code, c.stderr)
			got, err := os.ReadFile(dest)
			if c.code != 0 {
				if err == nil {
					t.Fatalf("DEST written (%d bytes) for a refused file", len(got))
				}
				// Refused at the header: no segment of any size was held.
				r.within(t, "restore of a refused file", 64<<20)
				return
			}
			if !bytes.Equal(got, c.content) {
				t.Fatal("DEST is not the segment")
			}
			r.within(t, "restore", 64<<20+seg16)
		})
	}

	// A host that goes on sending after its answer does not hold restore
	// until it stops: the ssh process is killed.
	t.Run("endless answer", func(t *testing.T) {
		content := segmentFor(sysA+1, seg16)
		info, _ := walfile.ParseLongHeader(content)
		file, _, err := walfile.Encode(content, walfile.Zstd, info)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		answer := writeFile(t, dir, "answer", frame(archive.FrameOK, file))
		shim := writeFile(t, dir, "fake-ssh", []byte("#!/bin/sh\ncat "+answer+"\nexec cat /dev/zero\n"))
		os.Chmod(shim, 0o755)
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		r := runBin(t, []string{"PGWARM_WAL_SSH=" + shim}, nil, append(append([]string{"restore", "--archive", "ssh://a@archive.example/x"}, cluster...), name, dest)...)
		r.want(t, 5)
		if r.took.Seconds() > 10 {
			t.Fatalf("restore took %v with an endless answer", r.took)
		}
	})
}

// hostileHost is an "ssh" whose far end answers every request with answer.
func hostileHost(t *testing.T, answer []byte) []string {
	dir := t.TempDir()
	a := writeFile(t, dir, "answer", answer)
	shim := writeFile(t, dir, "fake-ssh", []byte("#!/bin/sh\nexec cat "+a+"\n"))
	if err := os.Chmod(shim, 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"PGWARM_WAL_SSH=" + shim}
}

// segmentFor is segment 5 (timeline 1) of cluster sysid with segSize
// bytes, every page header right: nothing but the cluster can refuse it.
func segmentFor(sysid uint64, segSize uint32) []byte {
	b := make([]byte, segSize)
	copy(b, longHeader(segSize))
	binary.LittleEndian.PutUint64(b[24:], sysid)
	waltest.StampPageHeaders(b)
	return b
}
