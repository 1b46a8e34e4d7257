package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/facts"
	"github.com/pgwarm/pgwarm/inventory"
	"github.com/pgwarm/pgwarm/templates"
)

func TestUnifiedDiff(t *testing.T) {
	t.Run("equal", func(t *testing.T) {
		if d := UnifiedDiff("a\nb\n", "a\nb\n"); d != "" {
			t.Errorf("diff of equal texts: %q", d)
		}
	})
	t.Run("one line", func(t *testing.T) {
		a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n"
		b := "1\n2\n3\n4\nfive\n6\n7\n8\n9\n"
		want := "--- before\n+++ after\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
		if d := UnifiedDiff(a, b); d != want {
			t.Errorf("got\n%s\nwant\n%s", d, want)
		}
	})
	t.Run("create from empty", func(t *testing.T) {
		want := "--- before\n+++ after\n@@ -0,0 +1,2 @@\n+x\n+y\n"
		if d := UnifiedDiff("", "x\ny\n"); d != want {
			t.Errorf("got\n%s\nwant\n%s", d, want)
		}
	})
	// The strongest check: patch(1) turns before into after with our diff.
	patch, err := exec.LookPath("patch")
	if err != nil {
		t.Skip("patch(1) not installed")
	}
	rng := rand.New(rand.NewSource(1))
	words := []string{"a", "b", "c", "archive_mode = on", "", "# comment"}
	text := func() string {
		var b strings.Builder
		for range rng.Intn(40) {
			b.WriteString(words[rng.Intn(len(words))] + "\n")
		}
		return b.String()
	}
	dir := t.TempDir()
	for i := range 200 {
		a, b := text(), text()
		d := UnifiedDiff(a, b)
		if a == b {
			continue
		}
		f := filepath.Join(dir, "f")
		os.WriteFile(f, []byte(a), 0o644)
		cmd := exec.Command(patch, "-s", "-u", f)
		cmd.Stdin = strings.NewReader(d)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %d: patch failed: %v\n%s\ndiff:\n%s", i, err, out, d)
		}
		got, _ := os.ReadFile(f)
		if string(got) != b {
			t.Fatalf("case %d: patched text differs\nbefore %q\nafter  %q\ngot    %q\ndiff:\n%s", i, a, b, got, d)
		}
	}
}

func TestNeedsRestart(t *testing.T) {
	for _, c := range []struct {
		name string
		v    inventory.Version
		want bool
	}{
		{"archive_mode", 150000, true},
		{"wal_level", 90600, true},
		{"archive_command", 150000, false},
		{"archive_timeout", 110000, false},
		{"restore_command", 130000, true}, // postmaster in 12 and 13
		{"restore_command", 140000, false},
		{"primary_conninfo", 120000, true},
		{"primary_conninfo", 130000, false},
		{"archive_cleanup_command", 120000, false},
		{"hot_standby", 160000, true},
		{"work_mem", 150000, false},
	} {
		if got := needsRestart(c.name, c.v); got != c.want {
			t.Errorf("needsRestart(%s, %s) = %v, want %v", c.name, c.v, got, c.want)
		}
	}
}

func TestChangedSettings(t *testing.T) {
	main := "data_directory = '/var/lib/postgresql/15/main'\n#archive_mode = off\nwal_level = replica # default\ninclude_dir = 'conf.d'\n"
	withInclude := main + "# BEGIN pgwarm settings\ninclude 'pgwarm.conf'\n# END pgwarm settings\n"
	settings := "archive_mode = 'on'\nwal_level = 'replica'\narchive_command = 'x ''quoted'' %p'\nhot_standby = true\n"
	before := effective(main, "/etc/pg", "/etc/pg/pgwarm.conf", "")
	after := effective(withInclude, "/etc/pg", "/etc/pg/pgwarm.conf", settings)
	if after["archive_command"] != "x 'quoted' %p" {
		t.Errorf("quoted value read as %q", after["archive_command"])
	}
	got := strings.Join(changedSettings(before, after, 150000), ",")
	// wal_level stays replica and hot_standby=true is the default on: only
	// the two archive settings change.
	if got != "archive_command,archive_mode" {
		t.Errorf("changed = %s, want archive_command,archive_mode", got)
	}
	// Without the include line the settings file has no effect.
	if c := changedSettings(before, effective(main, "/etc/pg", "/etc/pg/pgwarm.conf", settings), 150000); len(c) != 0 {
		t.Errorf("settings file counted without its include: %v", c)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	in := goldenInput(t, filepath.Join("..", "testdata", "plan", "fresh-lab"))
	p, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	var txt bytes.Buffer
	Human(&txt, p, true)
	js, _ := p.JSON()
	for name, out := range map[string][]byte{"human": txt.Bytes(), "json": js} {
		if bytes.Contains(out, []byte(goldenPassword)) {
			t.Errorf("%s output contains the replication password", name)
		}
		if !bytes.Contains(out, []byte(Masked)) {
			t.Errorf("%s output does not mask .pgpass", name)
		}
	}
	if !bytes.Contains(txt.Bytes(), []byte("\x1b[32m+")) {
		t.Error("colour requested but no ANSI codes in the output")
	}
}

func TestLimit(t *testing.T) {
	in := goldenInput(t, filepath.Join("..", "testdata", "plan", "fresh-lab"))
	probed, _ := Probed(in.Inventory, []string{"pg2"})
	var names []string
	for _, h := range probed {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "pg1,pg2,arch" {
		t.Errorf("probed %v: a standby's plan needs the primary and the archive host", names)
	}
	// A fresh pair: a standby alone cannot be seeded, nor its key
	// authorized, and the archive host cannot authorize keys not made yet.
	for limit, want := range map[string][]string{
		"pg2": {"pg2: its seed is a base backup of pg1", "--limit pg2,pg1, or apply pg1 first",
			"pg2: its new key must be authorized on the archive host arch", "pg2: its seed needs the archive on arch"},
		"arch":     {"arch: /var/lib/postgresql/.ssh/authorized_keys needs the key of pg1", "--limit arch,pg1"},
		"pg1,arch": {"arch: /var/lib/postgresql/.ssh/authorized_keys needs the key of pg2"},
	} {
		in.Limit = strings.Split(limit, ",")
		_, err := Compute(in)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("--limit %s: %v, want %q", limit, err, w)
			}
		}
	}
	in.Limit = []string{"pg2", "arch", "pg1"}
	if p, err := Compute(in); err != nil || len(p.Hosts) != 3 {
		t.Errorf("every host: %v", err)
	}

	// An applied pair with a drifted file on both PostgreSQL hosts: the
	// standby's change needs nothing of the primary's.
	in = goldenInput(t, filepath.Join("..", "testdata", "plan", "applied"))
	in.Facts = clone(t, in.Facts)
	for _, h := range []string{"pg1", "pg2"} {
		const conf = "/etc/postgresql/15/main/pgwarm.conf"
		fi := in.Facts[h].Files[conf]
		drifted := *fi.Content + "work_mem = '1GB'\n"
		fi.Content, fi.SHA256 = &drifted, Hash([]byte(drifted))
		in.Facts[h].Files[conf] = fi
	}
	in.Limit = []string{"pg2"}
	p, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hosts) != 1 || p.Hosts[0].Name != "pg2" || len(p.Hosts[0].Changes) == 0 {
		t.Errorf("--limit pg2 planned %+v", p.Hosts)
	}
	in.Limit = []string{"pg9"}
	if _, err := Compute(in); err == nil || !strings.Contains(err.Error(), `"pg9"`) {
		t.Errorf("unknown host in --limit: %v", err)
	}
}

func TestCheckFresh(t *testing.T) {
	in := goldenInput(t, filepath.Join("..", "testdata", "plan", "applied"))
	p, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "saved.plan")
	if err := Save(file, p); err != nil {
		t.Fatal(err)
	}
	saved, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFresh(saved, inputNow(in, in.Facts, in.Rendered)); err != nil {
		t.Fatalf("unchanged hosts: %v", err)
	}
	t.Run("file changed", func(t *testing.T) {
		cur := clone(t, in.Facts)
		f := cur["pg1"].Files["/etc/postgresql/15/main/pg_hba.conf"]
		f.SHA256 = strings.Repeat("0", 64)
		cur["pg1"].Files["/etc/postgresql/15/main/pg_hba.conf"] = f
		err := CheckFresh(saved, inputNow(in, cur, in.Rendered))
		if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "pg1: /etc/postgresql/15/main/pg_hba.conf changed") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("standby stopped", func(t *testing.T) {
		cur := clone(t, in.Facts)
		cur["pg2"].DataDir.Running = false
		if err := CheckFresh(saved, inputNow(in, cur, in.Rendered)); err == nil || !strings.Contains(err.Error(), "pg2: data directory") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("templates and helper", func(t *testing.T) {
		n := in
		n.Helpers = map[string]string{"amd64": strings.Repeat("1", 64)}
		err := CheckFresh(saved, n)
		if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "pgwarm-wal binary for amd64 changed") {
			t.Errorf("helper: %v", err)
		}
		n = in
		inv := *in.Inventory
		inv.TemplatesDir, n.Inventory, n.TemplatesHash = "/etc/pgwarm/templates", &inv, "abc"
		if err := CheckFresh(saved, n); !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "templates_dir changed") {
			t.Errorf("templates: %v", err)
		}
	})
	// Edited by hand: each edit is refused, naming the host.
	drifted := inputNow(in, clone(t, in.Facts), in.Rendered)
	const conf = "/etc/postgresql/15/main/pgwarm.conf"
	fi := drifted.Facts["pg2"].Files[conf]
	text := *fi.Content + "work_mem = '1GB'\n"
	fi.Content, fi.SHA256 = &text, Hash([]byte(text))
	drifted.Facts["pg2"].Files[conf] = fi
	edited, err := Compute(drifted)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFresh(edited, drifted); err != nil {
		t.Fatalf("the plan as made: %v", err)
	}
	for what, edit := range map[string]func(p *Plan){
		"a host removed":       func(p *Plan) { p.Hosts = p.Hosts[:1] },
		"a change removed":     func(p *Plan) { p.Hosts[1].Changes = p.Hosts[1].Changes[1:] },
		"an after-hash edited": func(p *Plan) { p.Hosts[1].Changes[0].AfterHash = strings.Repeat("0", 64) },
		"a limit added":        func(p *Plan) { p.Limit = []string{"pg1"} },
	} {
		b, _ := edited.JSON()
		var p Plan
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		if p.Hosts[1].Name != "pg2" || len(p.Hosts[1].Changes) < 2 {
			t.Fatalf("pg2's plan: %+v", p.Hosts[1])
		}
		edit(&p)
		if err := CheckFresh(p, drifted); err == nil {
			t.Errorf("%s: accepted", what)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}
	t.Run("inventory and version", func(t *testing.T) {
		n := in
		n.InventoryHash, n.Version = "other", "v2"
		err := CheckFresh(saved, n)
		if err == nil || !strings.Contains(err.Error(), "inventory") || !strings.Contains(err.Error(), "pgwarm test") {
			t.Errorf("got %v", err)
		}
	})
}

// inputNow is in with the facts and rendered files of "now".
func inputNow(in Input, f map[string]facts.Facts, r templates.Rendered) Input {
	in.Facts, in.Rendered = f, r
	return in
}

// clone copies facts deeply enough to change a file or the data directory.
func clone(t *testing.T, in map[string]facts.Facts) map[string]facts.Facts {
	t.Helper()
	out := map[string]facts.Facts{}
	for k, v := range in {
		files := facts.Files{}
		for p, f := range v.Files {
			files[p] = f
		}
		v.Files = files
		if v.DataDir != nil {
			dd := *v.DataDir
			v.DataDir = &dd
		}
		out[k] = v
	}
	return out
}

// The archive rights name the primary's timeline: Resolve fills it from
// the primary's facts (the newer of the control file and pg_wal's
// history files, so a just-promoted primary is not given its old
// timeline), and an unobserved timeline leaves the file unknown.
func TestResolveTimelines(t *testing.T) {
	rf := templates.File{Path: "/r", NeedsTimelines: []string{"pg1"},
		Content: []byte("pg1 push@" + templates.TimelinePlaceholder("pg1") + "\npg2 get,push@" + templates.NextTimelinePlaceholder("pg1") + "\n")}
	all := map[string]facts.Facts{"pg1": {DataDir: &facts.DataDir{State: facts.DataDirInitialised, Timeline: 1, WALTimeline: 2}}}
	if got, unknown := Resolve(rf, all); unknown || got != "pg1 push@2\npg2 get,push@3\n" {
		t.Errorf("got %q unknown %v", got, unknown)
	}
	got, unknown := Resolve(rf, map[string]facts.Facts{"pg1": {}})
	if !unknown || !strings.Contains(got, templates.TimelinePlaceholder("pg1")) {
		t.Errorf("no facts: got %q unknown %v", got, unknown)
	}
	if !sameOutsidePlaceholders("pg1 push@2\npg2 get,push@3\n", got) {
		t.Errorf("an unknown timeline must not make the file look changed")
	}
}

// Restart or reload is what the running server says (pg_settings.context
// postmaster), pgwarm's table only when it was not asked; settings already
// pending a restart make one.
func TestRestartFromServerSettings(t *testing.T) {
	const conf = "/etc/postgresql/15/main/pgwarm.conf"
	drift := func(t *testing.T, ss *facts.ServerSettings) Input {
		in := goldenInput(t, filepath.Join("..", "testdata", "plan", "applied"))
		in.Facts = clone(t, in.Facts)
		fi := in.Facts["pg1"].Files[conf]
		text := strings.Replace(*fi.Content, "archive_timeout = '60'", "archive_timeout = '300'", 1)
		if text == *fi.Content {
			t.Fatal("no archive_timeout line to drift")
		}
		fi.Content, fi.SHA256 = &text, Hash([]byte(text))
		in.Facts["pg1"].Files[conf] = fi
		in.Facts["pg1"].DataDir.Settings = ss
		return in
	}
	action := func(t *testing.T, in Input) string {
		p, err := Compute(in)
		if err != nil {
			t.Fatal(err)
		}
		var subjects []string
		for _, c := range p.Hosts[0].Changes {
			if c.Action == Run {
				subjects = append(subjects, c.Subject)
			}
		}
		return strings.Join(subjects, "; ")
	}
	for _, tc := range []struct {
		what string
		ss   *facts.ServerSettings
		want string
	}{
		{"server not asked: pgwarm's table", nil, "reload postgresql: archive_timeout changed"},
		{"server says sighup", &facts.ServerSettings{Postmaster: []string{"port"}}, "reload postgresql: archive_timeout changed"},
		{"server says postmaster", &facts.ServerSettings{Postmaster: []string{"archive_timeout"}}, "restart postgresql: archive_timeout changed"},
		{"a restart pending already", &facts.ServerSettings{PendingRestart: []string{"shared_buffers"}}, "restart postgresql: shared_buffers pending"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			if got := action(t, drift(t, tc.ss)); got != tc.want {
				t.Errorf("actions %q, want %q", got, tc.want)
			}
		})
	}
}
