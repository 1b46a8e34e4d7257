package serve

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/wal/archive"
	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
)

// The keys of the fuzzed archive host: the primary may only add files of
// timeline 1, the standby reads and cleans up.
const fuzzRights = "pg1 push@1\npg2 get,cleanup,list,verify\n"

// FuzzServe is serve as a hostile client sees it: any request line, any
// bytes on stdin, from the primary's push-only key or the standby's key,
// against an archive bound to a cluster with three segments in it. Whatever
// it sends, serve must not panic, and afterwards:
//   - every file in the archive passes every check a reader makes
//     (CheckFile against the archive's segment size);
//   - the primary's key only added segments and backup files of its
//     timeline (push@1: no history file, no .partial of timeline 1);
//   - the standby's key added no WAL file and changed none it did not
//     remove;
//   - nothing was written outside ROOT/wal and ROOT/restartpoints, and the
//     archive's binding is unchanged.
func FuzzServe(f *testing.F) {
	seed := fuzzArchive(f)
	push := func(name string, file []byte) []byte {
		var in bytes.Buffer
		if err := archive.WriteFrame(&in, archive.FrameData, file); err != nil {
			f.Fatal(err)
		}
		return in.Bytes()
	}
	next := fuzzSegment(f, segname.FromSegNo(1, 4, 1<<20).String())
	f.Add(false, "pgwarm-wal-op push "+segname.FromSegNo(1, 4, 1<<20).String(), push("", next))
	f.Add(false, "pgwarm-wal-op push 00000002.history", push("", fuzzEncode(f, []byte("1\t0/3000000\tno recovery target specified\n"), walfile.PageInfo{})))
	f.Add(false, "pgwarm-wal-op push 00000001.history", push("", fuzzBomb(f)))
	f.Add(false, "pgwarm-wal-op push "+segname.FromSegNo(1, 5, 1<<20).String(), push("", fuzzBomb(f)))
	f.Add(true, "pgwarm-wal-op get "+segname.FromSegNo(1, 2, 1<<20).String(), []byte(nil))
	f.Add(true, "pgwarm-wal-op cleanup "+segname.FromSegNo(1, 3, 1<<20).String()+" as=pg2", []byte(nil))
	f.Add(true, "pgwarm-wal-op list", []byte(nil))
	f.Add(true, "pgwarm-wal-op verify", []byte(nil))
	f.Add(false, "pgwarm-wal-op push ../../etc/passwd", []byte("D\x00\x00\x00\x01x"))
	f.Fuzz(func(t *testing.T, standby bool, command string, stdin []byte) {
		root := t.TempDir()
		for name, b := range seed {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		as := "pg1"
		if standby {
			as = "pg2"
		}
		cfg := Config{Root: root, RightsFile: "/rights", As: as,
			ReadFile: func(string) ([]byte, error) { return []byte(fuzzRights), nil }}
		// A get may ask to wait up to 10 minutes for its file: the
		// fuzzer does not.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		var out bytes.Buffer
		_ = Serve(ctx, cfg, command, bytes.NewReader(stdin), &out)

		after := fuzzTree(t, root)
		for name, b := range after {
			dir, base := filepath.Split(name)
			switch {
			case name == archive.MetaFile:
				if !bytes.Equal(b, seed[name]) {
					t.Fatalf("%q changed the archive's binding:\n%s", command, b)
				}
				continue
			case dir == archive.RestartPointsDir+"/" && standby:
				continue // the standby's own restart point record
			case dir != archive.WALDir+"/":
				t.Fatalf("%q (as %s) wrote %s outside the archive's directories", command, as, name)
			case strings.HasPrefix(base, ".tmp-"):
				continue // an interrupted write's leftover, never read
			}
			n, err := segname.Parse(base)
			if err != nil {
				t.Fatalf("%q (as %s) stored %s, which is no WAL file name", command, as, name)
			}
			old, existed := seed[name]
			switch {
			case existed && !bytes.Equal(old, b):
				t.Fatalf("%q (as %s) changed the archived %s", command, as, name)
			case existed:
				continue
			case standby:
				t.Fatalf("%q: the standby's key added %s", command, name)
			}
			if n.TLI != 1 || n.Kind == segname.History || n.Kind == segname.Partial {
				t.Fatalf("%q: push@1 stored %s, not a file of timeline 1", command, name)
			}
			if v := archive.CheckFile(n, b, 1<<20); v.Err != nil {
				t.Fatalf("%q stored %s, which fails its checks: %v", command, name, v.Err)
			}
		}
		for name := range seed {
			if _, ok := after[name]; !ok && (!standby || !strings.HasPrefix(name, archive.WALDir+"/")) {
				t.Fatalf("%q (as %s) removed %s", command, as, name)
			}
		}
	})
}

// fuzzArchive is the starting archive: its binding and segments 1..3 of
// timeline 1 (1 MiB segments, so the fuzzer stays fast), by relative path.
func fuzzArchive(f *testing.F) map[string][]byte {
	meta := `{"format": 1, "system_identifier": "7300000000000000001", "wal_segment_size": 1048576, "created": "2026-12-03T00:00:00Z"}` + "\n"
	out := map[string][]byte{archive.MetaFile: []byte(meta)}
	for i := uint64(1); i <= 3; i++ {
		n := segname.FromSegNo(1, i, 1<<20).String()
		out[archive.WALDir+"/"+n] = fuzzSegment(f, n)
	}
	return out
}

// fuzzSegment is the archived file of a 1 MiB segment of cluster
// 7300000000000000001 whose pages all carry their headers.
func fuzzSegment(f *testing.F, name string) []byte {
	n, err := segname.Parse(name)
	if err != nil {
		f.Fatal(err)
	}
	const size, page = 1 << 20, 8192
	b := make([]byte, size)
	start := n.StartLSN(size)
	for off := 0; off < size; off += page {
		binary.LittleEndian.PutUint16(b[off:], 0xD110)
		binary.LittleEndian.PutUint32(b[off+4:], n.TLI)
		binary.LittleEndian.PutUint64(b[off+8:], start+uint64(off))
		if off == 0 {
			binary.LittleEndian.PutUint16(b[2:], 0x0002)
			binary.LittleEndian.PutUint64(b[24:], 7300000000000000001)
			binary.LittleEndian.PutUint32(b[32:], size)
			binary.LittleEndian.PutUint32(b[36:], page)
		}
		copy(b[off+40:], "some record bytes")
	}
	info, err := walfile.ParseLongHeader(b)
	if err != nil {
		f.Fatal(err)
	}
	return fuzzEncode(f, b, info)
}

func fuzzEncode(f *testing.F, content []byte, info walfile.PageInfo) []byte {
	file, _, err := walfile.Encode(content, walfile.Zstd, info)
	if err != nil {
		f.Fatal(err)
	}
	return file
}

// fuzzBomb is a gzip file whose checksums agree and whose header claims a
// 1 MiB segment, but whose body inflates to 64 MiB of zeros.
func fuzzBomb(f *testing.F) []byte {
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zero := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		zw.Write(zero)
	}
	zw.Close()
	h := walfile.Header{Compression: walfile.Gzip, SumKind: walfile.SumBody, SegSize: 1 << 20, Size: 1 << 20,
		SysID: 7300000000000000001, Stored: 1 << 20, SHA256: sha256.Sum256(body.Bytes())}
	file := append(h.Marshal(), body.Bytes()...)
	binary.LittleEndian.PutUint32(file[72:], crc32.Checksum(file[:72], crc32.MakeTable(crc32.Castagnoli)))
	return file
}

// fuzzTree reads every regular file under root, by relative path.
func fuzzTree(t *testing.T, root string) map[string][]byte {
	out := map[string][]byte{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
