package templates

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pgwarm/pgwarm/inventory"
)

func renderCase(t *testing.T, name string) Rendered {
	t.Helper()
	inv := loadCase(t, filepath.Join(goldenDir, name))
	r, err := RenderWith(inv, Options{LookupEnv: goldenEnv})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func byKind(r Rendered, host, kind string) []File {
	var out []File
	for _, f := range r.Hosts[host] {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

func settingsOf(r Rendered, host string) string {
	fs := byKind(r, host, KindSettings)
	if len(fs) != 1 {
		return ""
	}
	return string(fs[0].Content)
}

// The acceptance criterion: 11 and 16 differ exactly where PostgreSQL
// changed — recovery.conf with trigger_file versus standby.signal with the
// recovery settings in the settings file and promotion by pg_ctl.
func TestRecoveryDiffers11Versus16(t *testing.T) {
	r11 := renderCase(t, "pg11-warm-ssh")
	r16 := renderCase(t, "pg16-warm-ssh")

	rec := byKind(r11, "pg2", KindRecovery)
	if len(rec) != 1 || rec[0].Path != "/var/lib/postgresql/11/main/recovery.conf" {
		t.Fatalf("11: recovery.conf = %+v", rec)
	}
	for _, want := range []string{"standby_mode = 'on'", "trigger_file = '/var/lib/pgwarm/main/promote.trigger'", "restore_command = ", "archive_cleanup_command = ", "recovery_target_timeline = 'latest'"} {
		if !strings.Contains(string(rec[0].Content), want) {
			t.Errorf("11: recovery.conf lacks %q", want)
		}
	}
	if n := len(byKind(r11, "pg2", KindSignal)); n != 0 {
		t.Errorf("11: %d signal files, want none", n)
	}
	if s := settingsOf(r11, "pg2"); strings.Contains(s, "restore_command =") || strings.Contains(s, "trigger_file =") {
		t.Errorf("11: recovery settings leaked into postgresql.conf:\n%s", s)
	}

	sig := byKind(r16, "pg2", KindSignal)
	if len(sig) != 1 || sig[0].Path != "/var/lib/postgresql/16/main/standby.signal" {
		t.Fatalf("16: standby.signal = %+v", sig)
	}
	if n := len(byKind(r16, "pg2", KindRecovery)); n != 0 {
		t.Errorf("16: %d recovery.conf files, want none", n)
	}
	s16 := settingsOf(r16, "pg2")
	if strings.Contains(s16, "trigger_file =") || strings.Contains(s16, "standby_mode =") {
		t.Errorf("16: settings still name a trigger file or standby_mode:\n%s", s16)
	}
	if !strings.Contains(s16, "restore_command = ") {
		t.Errorf("16: restore_command missing from settings:\n%s", s16)
	}

	script11 := string(byKind(r11, "pg2", KindScript)[0].Content)
	script16 := string(byKind(r16, "pg2", KindScript)[0].Content)
	if !strings.Contains(script11, "touch /var/lib/pgwarm/main/promote.trigger") || !strings.Contains(script11, "/11/main/recovery.conf") {
		t.Errorf("11: DNS trigger should touch the trigger file while recovery.conf exists:\n%s", script11)
	}
	if !strings.Contains(script16, "pg_ctlcluster 16 main promote") || strings.Contains(script16, "touch") {
		t.Errorf("16: DNS trigger should run pg_ctl promote:\n%s", script16)
	}
}

func TestPromoteTriggerFileOnlyFrom12To15(t *testing.T) {
	for _, c := range goldenCases() {
		r := renderCase(t, c.name())
		s := settingsOf(r, "pg2")
		has := strings.Contains(s, "\npromote_trigger_file = ")
		want := c.version == "12" || c.version == "13" || c.version == "14" || c.version == "15"
		if has != want {
			t.Errorf("%s: promote_trigger_file present=%t, want %t", c.name(), has, want)
		}
	}
}

func TestInvariantsEveryCase(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name(), func(t *testing.T) {
			r := renderCase(t, c.name())
			again := renderCase(t, c.name())
			if !bytes.Equal(manifest(r), manifest(again)) {
				t.Error("rendering twice gives different manifests")
			}
			for _, host := range r.HostNames() {
				files := r.Hosts[host]
				for i, f := range files {
					if i > 0 && files[i-1].Path >= f.Path {
						t.Errorf("%s: files not sorted by path at %s", host, f.Path)
					}
					if !bytes.Equal(f.Content, again.Hosts[host][i].Content) {
						t.Errorf("%s:%s: rendering twice differs", host, f.Path)
					}
					if bytes.Contains(f.Content, []byte("archive_library")) {
						t.Errorf("%s:%s: archive_library rendered next to archive_command", host, f.Path)
					}
					if f.Secret && f.Mode.Perm() != 0o600 {
						t.Errorf("%s:%s: secret with mode %v", host, f.Path, f.Mode)
					}
					if !f.Secret && bytes.Contains(f.Content, []byte("golden")) {
						t.Errorf("%s:%s: password in a non-secret file", host, f.Path)
					}
					if strings.Contains(string(f.Content), "{{key:") != (len(f.NeedsKeys) > 0) {
						t.Errorf("%s:%s: key placeholders and NeedsKeys disagree", host, f.Path)
					}
				}
				// Every cron job has a systemd twin and back.
				if nc, ns := len(byKind(r, host, KindCron)), len(byKind(r, host, KindSystemd)); ns != 2*nc {
					t.Errorf("%s: %d cron files but %d systemd units", host, nc, ns)
				}
			}
			wantHot := "hot_standby = 'on'"
			if c.mode == "warm" {
				wantHot = "hot_standby = 'off'"
			}
			if !strings.Contains(settingsOf(r, "pg2"), wantHot) {
				t.Errorf("standby lacks %s", wantHot)
			}
			streaming := strings.Contains(settingsOf(r, "pg2"), "primary_conninfo") || len(byKind(r, "pg2", KindRecovery)) == 1 && bytes.Contains(byKind(r, "pg2", KindRecovery)[0].Content, []byte("primary_conninfo"))
			if streaming != (c.mode == "streaming") {
				t.Errorf("primary_conninfo present=%t in mode %s", streaming, c.mode)
			}
		})
	}
}

func TestWalKeepByVersion(t *testing.T) {
	for name, want := range map[string]string{
		"pg9.6-streaming-ssh": "wal_keep_segments = '64'",
		"pg12-streaming-ssh":  "wal_keep_segments = '64'",
		"pg15-streaming-ssh":  "wal_keep_size = '1GB'",
		"pg16-streaming-ssh":  "primary_slot_name = 'pgwarm_pg2'",
	} {
		if s := settingsOf(renderCase(t, name), "pg2"); !strings.Contains(s, want) {
			t.Errorf("%s: settings lack %q:\n%s", name, want, s)
		}
	}
}

func TestAuthorizedKeysRights(t *testing.T) {
	r := renderCase(t, "pg15-hot-ssh")
	ak := byKind(r, "arch", KindAuthorizedKeys)
	if len(ak) != 1 {
		t.Fatalf("authorized_keys: %+v", ak)
	}
	// Each key's forced command names its line of the rights file, which
	// serve reads per request.
	want := `command="/usr/local/bin/pgwarm-wal serve --root /srv/pgwarm/main --rights /var/lib/postgresql/.ssh/pgwarm-main.rights --as pg1",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding {{key:pg1}}` + "\n" +
		`command="/usr/local/bin/pgwarm-wal serve --root /srv/pgwarm/main --rights /var/lib/postgresql/.ssh/pgwarm-main.rights --as pg2",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding {{key:pg2}}` + "\n"
	if !strings.HasSuffix(string(ak[0].Content), want) {
		t.Errorf("authorized_keys:\n%s", ak[0].Content)
	}
	if strings.Join(ak[0].NeedsKeys, ",") != "pg1,pg2" || ak[0].Block != "main" {
		t.Errorf("NeedsKeys %v Block %q", ak[0].NeedsKeys, ak[0].Block)
	}
	rights := byKind(r, "arch", KindArchiveRights)
	// The golden case has a DNS trigger on pg2: its key may push the
	// timeline after the primary's, so that the watcher's promotion
	// archives at once; the primary pushes its own timeline only. Both
	// come from pg1's facts.
	if len(rights) != 1 || rights[0].Path != "/var/lib/postgresql/.ssh/pgwarm-main.rights" || rights[0].Mode != 0o600 ||
		!strings.HasSuffix(string(rights[0].Content), "pg1 push@{{timeline:pg1}}\npg2 get,cleanup,list,verify,push@{{nexttimeline:pg1}}\n") ||
		strings.Join(rights[0].NeedsTimelines, ",") != "pg1" {
		t.Fatalf("rights file: %+v\n%s", rights, rights[0].Content)
	}
	src := strings.Replace(goldenCase{"15", "hot", "ssh"}.inventory(), "failover:\n  dns: {name: postgres, target: pg-secondary}\n", "", 1)
	inv, err := inventory.Parse("x.yaml", []byte(src), inventory.Options{})
	if err != nil || inv.Failover.DNS != nil {
		t.Fatalf("without failover.dns: %v %+v", err, inv.Failover)
	}
	r, err = RenderWith(inv, Options{LookupEnv: goldenEnv})
	if err != nil {
		t.Fatal(err)
	}
	if rights := byKind(r, "arch", KindArchiveRights); len(rights) != 1 || !strings.HasSuffix(string(rights[0].Content), "pg1 push@{{timeline:pg1}}\npg2 get,cleanup,list,verify\n") || strings.Contains(string(rights[0].Content), "DNS") {
		t.Errorf("rights without a DNS trigger:\n%s", rights[0].Content)
	}
}

func TestMissingPasswordIsPlaceholder(t *testing.T) {
	inv := loadCase(t, filepath.Join(goldenDir, "pg15-hot-ssh"))
	r, err := RenderWith(inv, Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	pg := byKind(r, "pg1", KindPgpass)
	if len(pg) != 1 || !pg[0].Secret || !pg[0].SecretMissing || pg[0].SecretEnv != "PGWARM_REPLICATION_PASSWORD" ||
		!strings.Contains(string(pg[0].Content), "{{secret:PGWARM_REPLICATION_PASSWORD}}") {
		t.Fatalf(".pgpass without password: %+v", pg)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "PGWARM_REPLICATION_PASSWORD is not set") {
		t.Errorf("warnings: %q", r.Warnings)
	}
}

// A line break in the password would end the .pgpass entry there and make
// the rest a second entry (libpq has no escape for it): refused, and the
// message does not carry the password.
func TestPasswordWithControlCharacterRefused(t *testing.T) {
	inv := loadCase(t, filepath.Join(goldenDir, "pg15-hot-ssh"))
	for _, pw := range []string{"s3cret\n*:*:*:*:other", "tab\there", "nul\x00"} {
		_, err := RenderWith(inv, Options{LookupEnv: func(string) (string, bool) { return pw, true }})
		if err == nil || !strings.Contains(err.Error(), "control character") || strings.Contains(err.Error(), pw) {
			t.Errorf("password %q: %v", pw, err)
		}
	}
}

func TestForHostPicksScheduler(t *testing.T) {
	r := renderCase(t, "pg15-warm-ssh")
	for _, systemd := range []bool{true, false} {
		for _, f := range r.ForHost("pg2", systemd) {
			if (systemd && f.Kind == KindCron) || (!systemd && f.Kind == KindSystemd) {
				t.Errorf("systemd=%t kept %s", systemd, f.Path)
			}
		}
	}
	if len(r.ForHost("pg2", true)) != len(r.Hosts["pg2"])-1 || len(r.ForHost("pg2", false)) != len(r.Hosts["pg2"])-2 {
		t.Error("ForHost dropped the wrong number of files")
	}
}

func TestOverrides(t *testing.T) {
	inv := loadCase(t, filepath.Join(goldenDir, "pg15-hot-ssh"))
	over := fstest.MapFS{"pg_hba.conf.tmpl": {Data: []byte("{{ range .Entries }}hostssl {{ .Database }} {{ .User }} {{ .Address }} {{ .Method }}\n{{ end }}")}}
	r, err := RenderWith(inv, Options{LookupEnv: goldenEnv, Overrides: over})
	if err != nil {
		t.Fatal(err)
	}
	got := string(byKind(r, "pg1", KindHBA)[0].Content)
	if got != "hostssl replication replicator 10.0.0.2/32 scram-sha-256\nhostssl postgres replicator 10.0.0.2/32 scram-sha-256\n" {
		t.Errorf("override not used:\n%s", got)
	}
	for name, tc := range map[string]struct {
		fs   fstest.MapFS
		want string
	}{
		"unknown name":  {fstest.MapFS{"pg_hab.conf.tmpl": {Data: []byte("x")}}, "pg_hab.conf.tmpl: no built-in template"},
		"missing field": {fstest.MapFS{"pgpass.tmpl": {Data: []byte("{{ .Nope }}")}}, "can't evaluate field Nope"},
		"parse error":   {fstest.MapFS{"cron.tmpl": {Data: []byte("{{ if }}")}}, "templates_dir/cron.tmpl"},
		"no env funcs":  {fstest.MapFS{"cron.tmpl": {Data: []byte(`{{ env "HOME" }}`)}}, `function "env" not defined`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := RenderWith(inv, Options{LookupEnv: goldenEnv, Overrides: tc.fs})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSettingsSortedAndMatchFile(t *testing.T) {
	inv := loadCase(t, filepath.Join(goldenDir, "pg17-streaming-nfs"))
	r := renderCase(t, "pg17-streaming-nfs")
	for _, h := range []string{"pg1", "pg2"} {
		ss := Settings(inv, h)
		for i := 1; i < len(ss); i++ {
			if ss[i-1].Name >= ss[i].Name {
				t.Errorf("%s: settings not sorted at %s", h, ss[i].Name)
			}
		}
		content := settingsOf(r, h)
		for _, s := range ss {
			if !strings.Contains(content, "\n"+s.Name+" = "+pgquote(s.Value)+"\n") {
				t.Errorf("%s: %s not in the settings file", h, s.Name)
			}
		}
	}
	if Settings(inv, "arch") != nil || Settings(inv, "nope") != nil {
		t.Error("settings for a host without PostgreSQL")
	}
	if RecoverySettings(inv, "pg2") != nil {
		t.Error("recovery.conf settings on 17")
	}
}

// Every standby runs cleanup: each reports its own restart point and
// names all standbys, so the archive deletes only below the oldest (it
// used to be rendered for a single standby only, with a warning).
func TestSeveralStandbysCleanup(t *testing.T) {
	src := strings.Replace(goldenCase{"15", "hot", "ssh"}.inventory(), "  - {name: arch", "  - {name: pg3, address: 10.0.0.4, role: standby}\n  - {name: arch", 1)
	// Several standbys: the DNS trigger names the one it promotes.
	src = strings.Replace(src, "target: pg-secondary", "target: 10.0.0.4", 1)
	inv, err := inventory.Parse("x.yaml", []byte(src), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := RenderWith(inv, Options{LookupEnv: goldenEnv})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"pg2", "pg3"} {
		want := "\narchive_cleanup_command = '/usr/local/bin/pgwarm-wal cleanup --archive ssh://postgres@10.0.0.3:2222/srv/pgwarm/main --as " + h + " --standbys pg2,pg3 %r'\n"
		if !strings.Contains(settingsOf(r, h), want) {
			t.Errorf("%s: no archive_cleanup_command %q in\n%s", h, want, settingsOf(r, h))
		}
	}
	if strings.Contains(settingsOf(r, "pg1"), "archive_cleanup_command") {
		t.Error("the primary runs cleanup")
	}
	// Both standbys' keys may clean up: the archive host waits for both.
	if rights := string(byKind(r, "arch", KindArchiveRights)[0].Content); !strings.Contains(rights, "\npg2 get,cleanup,list,verify\n") || !strings.Contains(rights, "\npg3 get,cleanup,list,verify") {
		t.Errorf("rights file:\n%s", rights)
	}
	if len(r.Warnings) != 0 {
		t.Errorf("warnings %q", r.Warnings)
	}
	// Streaming standbys may report a restart point ahead of the archive.
	st, err := inventory.Parse("x.yaml", []byte(strings.Replace(src, "mode: hot", "mode: streaming", 1)), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := RenderWith(st, Options{LookupEnv: goldenEnv}); err != nil || !strings.Contains(settingsOf(r, "pg3"), "--as pg3 --standbys pg2,pg3 --streaming %r'") {
		t.Errorf("streaming: %v\n%s", err, settingsOf(r, "pg3"))
	}
	if n2, n3 := len(byKind(r, "pg2", KindScript)), len(byKind(r, "pg3", KindScript)); n2 != 0 || n3 != 1 {
		t.Errorf("DNS trigger scripts: pg2 %d, pg3 %d; want only pg3's (the target)", n2, n3)
	}
	hba := string(byKind(r, "pg1", KindHBA)[0].Content)
	if !strings.Contains(hba, "10.0.0.2/32") || !strings.Contains(hba, "10.0.0.4/32") {
		t.Errorf("hba lacks a standby:\n%s", hba)
	}
}

// Standbys from 12 on delete old WAL instead of recycling it: a promoted
// standby is the source of the rewind after a failover, and pg_rewind
// copies its whole pg_wal. Primaries keep PostgreSQL's default.
func TestWalRecycleOffOnStandbys(t *testing.T) {
	for name, want := range map[string]bool{
		"pg11-hot-ssh":       false, // no wal_recycle before 12
		"pg12-warm-ssh":      true,
		"pg15-hot-ssh":       true,
		"pg17-streaming-ssh": true,
	} {
		r := renderCase(t, name)
		if got := strings.Contains(settingsOf(r, "pg2"), "wal_recycle = 'off'"); got != want {
			t.Errorf("%s: standby has wal_recycle off: %v, want %v", name, got, want)
		}
		if strings.Contains(settingsOf(r, "pg1"), "wal_recycle") {
			t.Errorf("%s: the primary's settings name wal_recycle", name)
		}
	}
}
