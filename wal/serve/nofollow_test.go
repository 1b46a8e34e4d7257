package serve

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/wal/archive"
)

// A link in the archive to a file the archive user can read is refused by
// serve get, and not one byte of that file reaches the client.
func TestServeGetFollowsNoLinks(t *testing.T) {
	const secret = "SECRET-of-the-archive-host\n"
	root := t.TempDir()
	secretPath := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(secretPath, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, archive.WALDir), 0o700); err != nil {
		t.Fatal(err)
	}
	name := "000000010000000000000001"
	if err := os.Symlink(secretPath, filepath.Join(root, archive.WALDir, name)); err != nil {
		t.Fatal(err)
	}
	rights, err := ParseRights("get")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = Serve(context.Background(), Config{Root: root, Allow: rights}, "pgwarm-wal-op get "+name, bytes.NewReader(nil), &out)
	if archive.KindOf(err) != archive.KindForeign || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("get through a link: kind %v, %v", archive.KindOf(err), err)
	}
	if strings.Contains(out.String(), "SECRET") {
		t.Fatalf("serve handed out the linked file: %q", out.String())
	}
	typ, payload, ferr := archive.ReadFrame(&out)
	if ferr != nil || typ != archive.FrameErr || !strings.Contains(string(payload), "symbolic link") {
		t.Fatalf("client got frame %q %q (%v), want the refusal", typ, payload, ferr)
	}
}
