package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
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

// What a hostile archive host makes restore hold stays bounded in the
// other ways too: prefetched answers (uncompressed, the right cluster),
// a local or NFS archive whose binding claims larger segments than the
// standby's, and restore --wait's listing.
func TestRestoreBoundedAgainstArchiveHost(t *testing.T) {
	const seg16 = 16 << 20
	cluster := []string{"--system-identifier", fmt.Sprint(sysA), "--segment-size", fmt.Sprint(seg16)}
	const name = "000000010000000000000005"
	encode := func(content []byte, c walfile.Compression) []byte {
		info, err := walfile.ParseLongHeader(content)
		if err != nil {
			t.Fatal(err)
		}
		f, _, err := walfile.Encode(content, c, info)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// noisy is a segment that does not compress: stored as it is.
	noisy := func(segSize uint32) []byte {
		b := segmentFor(sysA, segSize)
		rand.New(rand.NewSource(1)).Read(b[40:])
		copy(b, segmentFor(sysA, segSize)[:40])
		waltest.StampPageHeaders(b)
		return b
	}
	shim := func(t *testing.T, body string) []string {
		p := writeFile(t, t.TempDir(), "fake-ssh", []byte("#!/bin/sh\nfor last; do :; done\n"+body))
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return []string{"PGWARM_WAL_SSH=" + p}
	}

	t.Run("prefetched uncompressed answers", func(t *testing.T) {
		dir := t.TempDir()
		first := writeFile(t, dir, "first", frame(archive.FrameOK, encode(segmentFor(sysA, seg16), walfile.Zstd)))
		other := writeFile(t, dir, "other", frame(archive.FrameOK, encode(noisy(seg16), walfile.None)))
		env := shim(t, "case \"$last\" in *' get "+name+" '*) exec cat "+first+";; esac\nexec cat "+other+"\n")
		spool, url := t.TempDir(), "ssh://a@archive.example/x"
		// The previous segment came at once: the standby is behind.
		sum := sha256.Sum256([]byte(url))
		d := filepath.Join(spool, hex.EncodeToString(sum[:6]))
		os.MkdirAll(d, 0o700)
		writeFile(t, d, "last", []byte("000000010000000000000004 quick\n"))
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		r := runMeasured(t, env, nil, append(append([]string{"restore", "--archive", url, "--prefetch", "8", "--spool", spool}, cluster...), name, dest)...)
		t.Logf("restore: exit %d, peak RSS %d MiB: %s", r.code, r.maxRSS>>20, r.stderr)
		r.result.want(t, 0)
		r.within(t, "restore with prefetch", 64<<20+seg16)
	})

	t.Run("local archive bound to larger segments", func(t *testing.T) {
		root := t.TempDir()
		const seg = 128 << 20
		m := archive.Meta{Format: 1, SysID: fmt.Sprint(sysA), SegSize: seg, Created: "2026-01-01T00:00:00Z"}
		b, _ := json.Marshal(m)
		writeFile(t, root, archive.MetaFile, b)
		os.MkdirAll(filepath.Join(root, archive.WALDir), 0o755)
		writeFile(t, filepath.Join(root, archive.WALDir), name, encode(noisy(seg), walfile.None))
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		r := runMeasured(t, nil, nil, append(append([]string{"restore", "--archive", root}, cluster...), name, dest)...)
		t.Logf("restore: exit %d, peak RSS %d MiB: %s", r.code, r.maxRSS>>20, r.stderr)
		r.result.want(t, 5, "this cluster's are 16777216")
		r.within(t, "refused local restore", 64<<20)
	})

	t.Run("restore --wait listing", func(t *testing.T) {
		env := shim(t, "case \"$last\" in *' list'*) printf 'O\\040\\000\\000\\000'; exec head -c 536870912 /dev/zero;; esac\nexit 0\n")
		dir := t.TempDir()
		trig := writeFile(t, dir, "trigger", []byte("fast"))
		dest := filepath.Join(dir, "RECOVERYXLOG")
		r := runMeasured(t, env, nil, append(append([]string{"restore", "--archive", "ssh://a@archive.example/x", "--wait", "--trigger", trig}, cluster...), name, dest)...)
		t.Logf("restore --wait: exit %d, peak RSS %d MiB: %s", r.code, r.maxRSS>>20, r.stderr)
		r.result.want(t, 4, "more than such an answer can be")
		r.within(t, "restore --wait", 64<<20)
	})
}
