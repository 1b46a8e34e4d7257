package serve

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/wal/archive"
)

func TestParseRightsFile(t *testing.T) {
	got, err := ParseRightsFile("# cluster main\npg1 push\n\n  pg2   get,cleanup  # standby\n")
	if err != nil {
		t.Fatal(err)
	}
	if !got["pg1"]["push"] || got["pg1"]["get"] || !got["pg2"]["get"] || !got["pg2"]["list"] || got["pg2"]["push"] {
		t.Fatalf("rights: %v", got)
	}
	for content, want := range map[string]string{
		"pg1":                  "line 1: want NAME OPERATIONS",
		"pg1 push\npg1 get":    "line 2: pg1 is listed twice",
		"pg1 push extra":       "line 1: want NAME OPERATIONS",
		"pg1 push\npg2 delete": `line 2: --allow: unknown operation "delete"`,
	} {
		if _, err := ParseRightsFile(content); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", content, err, want)
		}
	}
}

// The rights file is read for every request, so a change reaches a key
// whose connection was opened under the old rights.
func TestRightsFileReadPerRequest(t *testing.T) {
	content := "pg1 push\npg2 get,cleanup\n"
	cfg := Config{Root: t.TempDir(), RightsFile: "/etc/pgwarm/archive-main.rights", As: "pg2",
		ReadFile: func(string) ([]byte, error) { return []byte(content), nil }}
	list := func() error {
		_, err := handle(context.Background(), cfg, "pgwarm-wal-op list", bytes.NewReader(nil))
		return err
	}
	if err := list(); err != nil {
		t.Fatalf("pg2 may list under get: %v", err)
	}
	content = "pg1 get,cleanup\npg2 push\n"
	err := list()
	if archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), `operation "list" is not allowed for pg2's ssh key (/etc/pgwarm/archive-main.rights grants only push)`) {
		t.Fatalf("after the swap: %v", err)
	}
	content = "pg1 push\n"
	if err := list(); archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), "grants only nothing") {
		t.Fatalf("a key without a line may do nothing: %v", err)
	}
	cfg.ReadFile = func(string) ([]byte, error) { return nil, fs.ErrPermission }
	if err := list(); archive.KindOf(err) != archive.KindDenied || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "cannot read its rights file") {
		t.Fatalf("unreadable rights file: %v", err)
	}
	content = "pg2 get,delete\n"
	cfg.ReadFile = func(string) ([]byte, error) { return []byte(content), nil }
	if err := list(); archive.KindOf(err) != archive.KindDenied || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("broken rights file: %v", err)
	}
}
