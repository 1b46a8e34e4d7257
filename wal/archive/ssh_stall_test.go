package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgwarm/pgwarm/wal/segname"
	"github.com/pgwarm/pgwarm/wal/walfile"
	"github.com/pgwarm/pgwarm/wal/waltest"
)

// A hung or hostile archive host cannot hold a call: silence beyond the
// request's wait ends it (exit 9 for the caller, so PostgreSQL retries, and
// a promotion is not held up), and so does an ssh that lingers after its
// answer. The limits are shortened here; their values are in ssh.go.
func TestSSHCallsEndOnSilence(t *testing.T) {
	oldSilent, oldGrace := silentFor["get"], answerGrace
	silentFor["get"], answerGrace = 500*time.Millisecond, 300*time.Millisecond
	t.Cleanup(func() { silentFor["get"], answerGrace = oldSilent, oldGrace })

	n, _ := segname.Parse("000000010000000000000005")
	content := waltest.IdleSegment(n, 1<<20, 7)
	info, err := walfile.ParseLongHeader(content)
	if err != nil {
		t.Fatal(err)
	}
	file, _, err := walfile.Encode(content, walfile.Zstd, info)
	if err != nil {
		t.Fatal(err)
	}
	var answer bytes.Buffer
	WriteFrame(&answer, FrameOK, file)
	dir := t.TempDir()
	ans := filepath.Join(dir, "answer")
	if err := os.WriteFile(ans, answer.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what   string
		script string
		ok     bool // the answer is handed over
	}{
		{"never answers", "exec sleep 30", false},
		{"answers, then keeps its output open", "cat " + ans + "; exec sleep 30", true},
		{"answers, closes its output, stays", "cat " + ans + "; exec >&-; exec sleep 30", true},
		{"half an answer, then silence", "head -c 100 " + ans + "; exec sleep 30", false},
	} {
		t.Run(tc.what, func(t *testing.T) {
			shim := filepath.Join(t.TempDir(), "fake-ssh")
			if err := os.WriteFile(shim, []byte("#!/bin/sh\n"+tc.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv(SSHEnv, shim)
			a, err := Open("ssh://a@archive.example/x", Options{})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got, err := a.Get(context.Background(), n, 0)
			took := time.Since(start)
			t.Logf("after %v: %v", took.Round(10*time.Millisecond), err)
			if took > 5*time.Second {
				t.Fatalf("Get took %v", took)
			}
			if tc.ok {
				if err != nil || !bytes.Equal(got, file) {
					t.Fatalf("the answer was not handed over: %v", err)
				}
				return
			}
			if KindOf(err) != KindUnreachable {
				t.Fatalf("err = %v, want unreachable (PostgreSQL retries)", err)
			}
		})
	}
}
