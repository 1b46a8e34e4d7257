package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/host"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
	"github.com/pgwarm/pgwarm/wal/archive"
)

// bindingState is a warm pair with an ssh archive on arch at /srv/a, the
// primary's cluster 7000000000000000001 with 16 MiB segments.
func bindingState(t *testing.T) (*State, *host.Fake, *bytes.Buffer) {
	t.Helper()
	inv, err := inventory.Parse("inv.yaml", []byte(`cluster: main
postgres: {version: 15, layout: debian}
replication: {mode: warm}
archive: {host: arch, transport: ssh, path: /srv/a}
hosts:
  - {name: pg1, address: 10.0.0.1, role: primary}
  - {name: pg2, address: 10.0.0.2, role: standby}
  - {name: arch, address: 10.0.0.3, role: archive}
`), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	arch := host.NewFake("arch")
	arch.MkdirAll("/srv/a", 0o700, "postgres:postgres")
	pg := func(dd *facts.DataDir) facts.Facts {
		return facts.Facts{Root: true, Arch: "amd64", Postgres: []facts.Install{{Major: "15", BinDir: "/usr/lib/postgresql/15/bin"}}, PGUser: &facts.User{Name: "postgres"}, DataDir: dd}
	}
	f := map[string]facts.Facts{
		"pg1":  pg(&facts.DataDir{State: facts.DataDirInitialised, Version: "15", SystemID: "7000000000000000001", WALSegSize: 16 << 20}),
		"pg2":  pg(&facts.DataDir{State: facts.DataDirEmpty}),
		"arch": {Root: true, Arch: "amd64", Archive: &facts.Filesystem{Path: "/srv/a", Type: "ext4", AvailBytes: 100 << 30, UsedPct: 10}},
	}
	hosts := map[string]host.Host{"pg1": host.NewFake("pg1"), "pg2": host.NewFake("pg2"), "arch": arch}
	var out bytes.Buffer
	return NewState(inv, templates.Rendered{}, hosts, f, Options{Password: "pw"}, NewPrinter(&out, false)), arch, &out
}

func readMeta(t *testing.T, h *host.Fake) archive.Meta {
	t.Helper()
	b, err := h.ReadFile(context.Background(), "/srv/a/"+archive.MetaFile)
	if err != nil {
		t.Fatal(err)
	}
	var m archive.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// apply binds the archive it provisions to the primary's cluster, so no
// push can choose the binding (and with it the size every reader bounds a
// file by) of an archive pgwarm set up; a second run changes nothing.
func TestApplyBindsTheArchive(t *testing.T) {
	s, arch, out := bindingState(t)
	ctx := context.Background()
	if err := (preflightStep{}).Run(ctx, s); err != nil {
		t.Fatalf("preflight on an unbound archive: %v", err)
	}
	if err := bindArchive(ctx, s, arch); err != nil {
		t.Fatal(err)
	}
	m := readMeta(t, arch)
	if m.SysIDValue() != 7000000000000000001 || m.SegSize != 16<<20 || m.Format != 1 {
		t.Fatalf("binding %+v", m)
	}
	st, err := arch.Stat(ctx, "/srv/a/"+archive.MetaFile)
	if err != nil || st.Mode.Perm() != 0o600 || st.Owner != "postgres" {
		t.Fatalf("binding file %+v %v: want 0600 postgres (the archive's owner reads it)", st, err)
	}
	if !strings.Contains(out.String(), "bound the archive /srv/a to cluster 7000000000000000001") {
		t.Errorf("output: %s", out)
	}
	before, _ := arch.ReadFile(ctx, "/srv/a/"+archive.MetaFile)
	if err := bindArchive(ctx, s, arch); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if after, _ := arch.ReadFile(ctx, "/srv/a/"+archive.MetaFile); !bytes.Equal(before, after) {
		t.Fatal("a second run rewrote the binding")
	}
}

// An archive bound to another cluster, or to another segment size, stops
// apply in preflight (before anything changes) with both named, and is
// never rebound.
func TestApplyRefusesAnArchiveOfAnotherCluster(t *testing.T) {
	for _, c := range []struct{ sysid, seg, want string }{
		{"7999999999999999999", "16777216", "cluster 7999999999999999999 with 16777216-byte WAL segments"},
		{"7000000000000000001", "67108864", "cluster 7000000000000000001 with 67108864-byte WAL segments"},
	} {
		s, arch, _ := bindingState(t)
		ctx := context.Background()
		old := []byte(`{"format": 1, "system_identifier": "` + c.sysid + `", "wal_segment_size": ` + c.seg + `, "created": "2026-01-01T00:00:00Z"}` + "\n")
		arch.SetFile("/srv/a/"+archive.MetaFile, old, 0o600, "postgres:postgres")
		err := (preflightStep{}).Run(ctx, s)
		if err == nil {
			t.Fatalf("%s: preflight accepted an archive of another cluster", c.want)
		}
		for _, want := range []string{"arch: ", c.want, "the primary pg1 is cluster 7000000000000000001 with 16777216-byte segments", "apply changed nothing"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q: %v", want, err)
			}
		}
		if err := bindArchive(ctx, s, arch); err == nil {
			t.Errorf("%s: bindArchive accepted it", c.want)
		}
		if now, _ := arch.ReadFile(ctx, "/srv/a/"+archive.MetaFile); !bytes.Equal(now, old) {
			t.Errorf("%s: the binding was changed", c.want)
		}
	}
}

// Without the primary's system identifier and segment size there is
// nothing to bind to: apply says so instead of leaving the archive open.
func TestApplyBindingNeedsControlData(t *testing.T) {
	s, arch, _ := bindingState(t)
	s.Facts["pg1"].DataDir.WALSegSize = 0
	if err := bindArchive(context.Background(), s, arch); err == nil || !strings.Contains(err.Error(), "pg_controldata") {
		t.Fatalf("err = %v", err)
	}
}
