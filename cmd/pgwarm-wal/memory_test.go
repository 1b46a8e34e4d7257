package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
	"github.com/pgwarm/pgwarm/wal/waltest"
)

// Peak RSS of every pgwarm-wal process stays within 64 MiB plus one
// segment on any input, and within 64 MiB on a file that inflates far
// beyond what its header claims: serve (through a push-only key), restore
// and verify, run as the processes sshd and PostgreSQL start, on files a
// hostile writer crafts (tens of KB, every checksum made to agree) that
// decompress to gigabytes.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gigabyte bombs; not in -short")
	}
	const (
		seg16  = 16 << 20
		gib    = 1 << 30
		budget = 64 << 20
		name   = "000000010000000000000005"
		hist   = "00000002.history"
	)
	bound := func(t *testing.T) string {
		root := t.TempDir()
		m := archive.Meta{Format: 1, SysID: fmt.Sprint(sysA), SegSize: seg16, Created: "2026-01-01T00:00:00Z"}
		b, _ := json.Marshal(m)
		writeFile(t, root, archive.MetaFile, b)
		return root
	}
	unbound := func(t *testing.T) string { return t.TempDir() }

	// A segment of segSize whose first page is right for name and whose
	// header claims stored bytes, followed in the body by zeros zero bytes.
	type bomb struct {
		what    string
		archive func(*testing.T) string
		name    string
		file    []byte
		max     int64 // peak RSS allowed
	}
	page0 := func(segSize uint32) []byte {
		p := make([]byte, 8192)
		copy(p, longHeader(segSize))
		rand.New(rand.NewSource(5)).Read(p[40:4000])
		return p
	}
	text := []byte("1\t0/5000000\tno recovery target specified\n")
	cases := []bomb{}
	for _, c := range []walfile.Compression{walfile.Gzip, walfile.Zstd} {
		zeros := int64(4 * gib)
		if c == walfile.Gzip {
			zeros = 512 << 20 // deflate stops at ~1000:1; this is already 500 KB
		}
		p16, p1g := page0(seg16), page0(gib)
		// 64 KiB of valid pages, and a body small enough for its claim
		// that goes on for a GiB (zstd) or 64 MiB (gzip) of zeros after
		// them: only the decoder's limit can stop it.
		pages := func(p []byte) []byte {
			b := append(bytes.Clone(p), make([]byte, 64<<10-len(p))...)
			waltest.StampPageHeaders(b)
			return b
		}
		tail := int64(gib)
		if c == walfile.Gzip {
			tail = 64 << 20
		}
		cases = append(cases,
			bomb{c.String() + " segment inflating past its claim, bound archive", bound, name, craft(c, pages(p16), tail, seg16, 64<<10), budget},
			bomb{c.String() + " 1 GiB segment inflating past its claim, unbound archive", unbound, name, craft(c, pages(p1g), tail, gib, 64<<10), budget},
			// The header claims a whole segment of the archive's size: the
			// second page is zeros, no WAL page header.
			bomb{c.String() + " segment, bound archive", bound, name, craft(c, p16, zeros, seg16, seg16), budget},
			// The header claims one page; the body is far longer than any
			// compression of one page.
			bomb{c.String() + " segment beyond its claim, bound archive", bound, name, craft(c, p16, zeros, seg16, 8192), budget},
			bomb{c.String() + " segment, unbound archive", unbound, name, craft(c, p16, zeros, seg16, seg16), budget},
			// 1 GiB segments, self-consistent: only the archive's binding
			// refuses it at once; unbound, the second page does.
			bomb{c.String() + " 1 GiB segment, bound archive", bound, name, craft(c, p1g, zeros, gib, gib), budget},
			bomb{c.String() + " 1 GiB segment, unbound archive", unbound, name, craft(c, p1g, zeros, gib, gib), budget},
			bomb{c.String() + " 1 GiB segment beyond its claim, unbound archive", unbound, name, craft(c, p1g, zeros, gib, 8192), budget},
			// A history file is text: no page checks, the size limit does it.
			bomb{c.String() + " history", unbound, hist, craft(c, text, zeros, 0, 1<<20), budget},
			bomb{c.String() + " history claiming 16 MiB", bound, hist, craft(c, text, zeros, 0, 16<<20), budget},
		)
	}
	for _, b := range cases {
		t.Run(b.what, func(t *testing.T) {
			t.Logf("crafted file: %d bytes", len(b.file))
			root := b.archive(t)
			_, err := os.Stat(filepath.Join(root, archive.MetaFile))
			hadMeta := err == nil
			// serve, as sshd runs it for a push-only key: the primary's
			// of the file's timeline (push@T: timeline 1's segments, or
			// the history file of timeline 2 it was promoted to), so the
			// file gets as far as its decoding.
			n, err := segname.Parse(b.name)
			if err != nil {
				t.Fatal(err)
			}
			r := runServe(t, root, fmt.Sprintf("push@%d", n.TLI), "pgwarm-wal-op push "+b.name, frame(archive.FrameData, b.file))
			t.Logf("serve push: exit %d, peak RSS %d MiB: %s", r.code, r.maxRSS>>20, r.stderr)
			if r.code != 4 {
				t.Errorf("serve push: exit %d, want 4 (corrupt)\n%s", r.code, r.stderr)
			}
			r.within(t, "serve push", b.max)
			if _, err := os.Stat(filepath.Join(root, "wal", b.name)); err == nil {
				t.Fatal("the crafted file was stored")
			}
			if _, err := os.Stat(filepath.Join(root, archive.MetaFile)); err == nil && !hadMeta {
				t.Fatal("a refused file bound the archive")
			}
			// As if it had been stored (by an older version, by hand).
			if err := os.MkdirAll(filepath.Join(root, "wal"), 0o700); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(root, "wal"), b.name, b.file)
			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			r = runMeasured(t, nil, nil, "restore", "--archive", root, b.name, dest)
			t.Logf("restore: exit %d, peak RSS %d MiB: %s", r.code, r.maxRSS>>20, r.stderr)
			if r.code != 4 {
				t.Errorf("restore: exit %d, want 4\n%s", r.code, r.stderr)
			}
			r.within(t, "restore", b.max)
			r = runServe(t, root, "get", "pgwarm-wal-op get "+b.name, nil)
			t.Logf("serve get: exit %d, peak RSS %d MiB", r.code, r.maxRSS>>20)
			r.within(t, "serve get", b.max)
			r = runMeasured(t, nil, nil, "verify", "--archive", root)
			t.Logf("verify: exit %d, peak RSS %d MiB", r.code, r.maxRSS>>20)
			if r.code != 4 {
				t.Errorf("verify: exit %d, want 4\n%s%s", r.code, r.stdout, r.stderr)
			}
			r.within(t, "verify", b.max)
		})
	}

	// A busy 16 MiB segment, pushed, restored and verified: one segment
	// more than the budget at most.
	t.Run("busy 16 MiB segment", func(t *testing.T) {
		root := bound(t)
		seg := busySegment(seg16)
		src := writeFile(t, t.TempDir(), name, seg)
		r := runMeasured(t, nil, nil, "ship", "--archive", root, src, name)
		t.Logf("ship: exit %d, peak RSS %d MiB", r.code, r.maxRSS>>20)
		if r.code != 0 {
			t.Fatalf("ship: %s", r.stderr)
		}
		r.within(t, "ship", budget+seg16)
		file, err := os.ReadFile(filepath.Join(root, "wal", name))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stored in %d bytes", len(file))
		other := bound(t)
		r = runServe(t, other, "push", "pgwarm-wal-op push "+name, frame(archive.FrameData, file))
		t.Logf("serve push: exit %d, peak RSS %d MiB", r.code, r.maxRSS>>20)
		if r.code != 0 {
			t.Fatalf("serve push: %s", r.stderr)
		}
		r.within(t, "serve push", budget+seg16)
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		r = runMeasured(t, nil, nil, "restore", "--archive", other, name, dest)
		t.Logf("restore: exit %d, peak RSS %d MiB", r.code, r.maxRSS>>20)
		if got, _ := os.ReadFile(dest); r.code != 0 || !bytes.Equal(got, seg) {
			t.Fatalf("restore: exit %d, content equal %v: %s", r.code, bytes.Equal(got, seg), r.stderr)
		}
		r.within(t, "restore", budget+seg16)
		r = runMeasured(t, nil, nil, "verify", "--archive", other)
		t.Logf("verify: exit %d, peak RSS %d MiB", r.code, r.maxRSS>>20)
		if r.code != 0 {
			t.Fatalf("verify: %s%s", r.stdout, r.stderr)
		}
		r.within(t, "verify", budget+seg16)
	})
}

// busySegment is WAL-shaped content that compresses like busy WAL (about
// 2:1): every page has its header, the rest is half random, half text.
func busySegment(segSize int) []byte {
	b := make([]byte, segSize)
	copy(b, longHeader(uint32(segSize)))
	r := rand.New(rand.NewSource(16))
	for off := 40; off < segSize; off += 64 {
		end := min(off+64, segSize)
		if (off/64)%2 == 0 {
			r.Read(b[off:end])
		} else {
			copy(b[off:end], "INSERT INTO pgbench_history VALUES (1, 2, 3, 4, now()); ......")
		}
	}
	waltest.StampPageHeaders(b)
	return b
}

// longHeader is the long page header of segment 5 of cluster sysA.
func longHeader(segSize uint32) []byte {
	p := make([]byte, 40)
	binary.LittleEndian.PutUint16(p[0:], 0xD110)
	binary.LittleEndian.PutUint16(p[2:], 0x0002)
	binary.LittleEndian.PutUint32(p[4:], 1)
	binary.LittleEndian.PutUint64(p[8:], 5*uint64(segSize))
	binary.LittleEndian.PutUint64(p[24:], sysA)
	binary.LittleEndian.PutUint32(p[32:], segSize)
	binary.LittleEndian.PutUint32(p[36:], 8192)
	return p
}

// craft builds the archive file a hostile writer would: content is
// prefix followed by zeros zero bytes, compressed with c; the header
// claims segSize (0: not WAL) and stored content bytes, with the content
// crc of the first stored bytes, the body's sha256 and the header crc
// all made to agree.
func craft(c walfile.Compression, prefix []byte, zeros int64, segSize uint32, stored uint64) []byte {
	var body []byte
	switch c {
	case walfile.Gzip:
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(prefix)
		z := make([]byte, 1<<20)
		for n := zeros; n > 0; n -= int64(len(z)) {
			zw.Write(z[:min(n, int64(len(z)))])
		}
		zw.Close()
		body = buf.Bytes()
	case walfile.Zstd:
		body = zstdRLEBomb(prefix, zeros)
	}
	h := walfile.Header{Compression: c, SumKind: walfile.SumBody, SegSize: segSize, Size: stored,
		SysID: sysA, Stored: stored, SHA256: sha256.Sum256(body)}
	if segSize != 0 {
		h.Size = uint64(segSize)
	}
	if segSize == 0 {
		h.SysID = 0
	}
	h.ContentCRC = storedCRC(prefix, stored)
	return append(h.Marshal(), body...)
}

// zstdRLEBomb is one zstd frame by hand: prefix as a raw block, then RLE
// blocks of 128 KiB of zeros, 4 bytes each (32000:1).
func zstdRLEBomb(prefix []byte, zeros int64) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50} // no content size, 1 MiB window
	block := func(typ, size int, last bool) {
		v := uint32(size)<<3 | uint32(typ)<<1
		if last {
			v |= 1
		}
		out = append(out, byte(v), byte(v>>8), byte(v>>16))
	}
	block(0, len(prefix), zeros == 0)
	out = append(out, prefix...)
	for n := zeros; n > 0; n -= 128 << 10 {
		k := min(n, 128<<10)
		block(1, int(k), n == k)
		out = append(out, 0)
	}
	return out
}

// storedCRC is the header's content check for the first stored bytes of
// prefix followed by zeros: the crc32c of each 4 MiB chunk's crc32c.
func storedCRC(prefix []byte, stored uint64) uint32 {
	tab := crc32.MakeTable(crc32.Castagnoli)
	chunk := make([]byte, 4<<20)
	var crcs []byte
	for off := uint64(0); off < stored; off += uint64(len(chunk)) {
		clear(chunk)
		if off < uint64(len(prefix)) {
			copy(chunk, prefix[off:])
		}
		n := min(stored-off, uint64(len(chunk)))
		crcs = binary.LittleEndian.AppendUint32(crcs, crc32.Checksum(chunk[:n], tab))
	}
	return crc32.Checksum(crcs, tab)
}

func frame(typ byte, payload []byte) []byte {
	var b bytes.Buffer
	archive.WriteFrame(&b, typ, payload)
	return b.Bytes()
}

type measured struct {
	result
	maxRSS int64 // bytes
}

func (m measured) within(t *testing.T, what string, max int64) {
	t.Helper()
	if m.maxRSS > max {
		t.Errorf("%s: peak RSS %d MiB, budget %d MiB", what, m.maxRSS>>20, max>>20)
	}
}

// runServe runs serve as sshd does for a key with rights allow.
func runServe(t *testing.T, root, allow, command string, stdin []byte) measured {
	t.Helper()
	return runMeasured(t, []string{"SSH_ORIGINAL_COMMAND=" + command}, stdin, "serve", "--root", root, "--allow", allow)
}

// measureEnv turns the test binary into measureHelper.
const measureEnv = "PGWARM_WAL_TEST_MEASURE"

// measureHelper runs args and writes the peak RSS (KiB) wait4 reports for
// it to out. Go starts a child with vfork, and Linux carries the peak RSS
// of the memory the child shared until its exec into the child's own
// (exec_mmap): measured from the test process, pgwarm-wal would be
// charged the test's own tens of MiB. Started from this small, fresh
// process instead it is charged a few.
func measureHelper(out string, args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	if err := os.WriteFile(out, []byte(strconv.FormatInt(rss, 10)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	return code
}

// runMeasured runs pgwarm-wal and reads its peak RSS from wait4's rusage.
func runMeasured(t *testing.T, env []string, stdin []byte, args ...string) measured {
	t.Helper()
	rssFile := filepath.Join(t.TempDir(), "maxrss")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{binPath}, args...)...)
	cmd.Env = append(append(os.Environ(), env...), measureEnv+"="+rssFile)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	m := measured{result: result{stdout: out.String(), stderr: errb.String()}}
	if ee, ok := err.(*exec.ExitError); ok {
		m.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running pgwarm-wal: %v", err)
	}
	b, err := os.ReadFile(rssFile)
	if err != nil {
		t.Fatalf("pgwarm-wal %v: no peak RSS measured (%v): %s", args, err, m.stderr)
	}
	kib, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	m.maxRSS = kib << 10 // KiB on Linux
	return m
}
