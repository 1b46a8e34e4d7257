package plan

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarm/pgwarm/templates"
)

// TestMaskSecrets: hostile passwords in every form a managed file may hold
// them. secret is what must not survive; keep is what must stay visible.
func TestMaskSecrets(t *testing.T) {
	for _, c := range []struct {
		name, kind, in string
		secrets        []string
		keep           []string
	}{
		{"bare conninfo", "", "host=pg1 password=hunter2 user=rep", []string{"hunter2"}, []string{"host=pg1", "user=rep"}},
		{"quoted with space", "", "host=pg1 password='a b' user=rep", []string{"a b", "'a"}, []string{"user=rep"}},
		{"quoted with quote and backslash", "", `password='it\'s \\ x' user=rep`, []string{`it\'s`, `\\ x`, " x'"}, []string{"user=rep"}},
		{"bare with escaped space", "", `password=a\ b user=rep`, []string{`a\`, " b"}, []string{"user=rep"}},
		{"spaces around =", "", "host=pg1 password = hunter2 port=5432", []string{"hunter2"}, []string{"port=5432"}},
		{"upper case and sslpassword", "", "PASSWORD=Hunter2 sslpassword=keypass", []string{"Hunter2", "keypass"}, nil},
		{"PGPASSWORD in a script", "", `PGPASSWORD="a b c" psql -h pg1`, []string{"a b c"}, []string{"psql -h pg1"}},
		{"conf value, doubled quotes", "", `primary_conninfo = 'host=pg1 password=''a b'' user=rep'  # old`,
			[]string{"a b", "''a"}, []string{"primary_conninfo = ", "host=pg1", "user=rep", "# old"}},
		{"conf value, quote in password", "", `primary_conninfo = 'password=''it\\''s'' host=pg1'`,
			[]string{`''it`, "s''"}, []string{"host=pg1"}},
		{"conf value, backslash-escaped quotes", "", `primary_conninfo = 'password=\'x y\' host=pg1'`,
			[]string{"x y", "x"}, []string{"host=pg1"}},
		{"conf value, bare password last", "", `primary_conninfo = 'host=pg1 password=hunter2'`, []string{"hunter2"}, []string{"host=pg1"}},
		{"conf value unterminated", "", `primary_conninfo = 'host=pg1 password=''x y`, []string{"x y", "x"}, []string{"host=pg1"}},
		{"glued quotes mask the rest", "", `password=''x y'' user=rep`, []string{"x y", "x"}, nil},
		{"unterminated quote", "", `password='x y`, []string{"x y"}, nil},
		{"uri user info", "", "primary_conninfo = 'postgresql://rep:s%3Acret@pg1:5432/postgres'", []string{"s%3Acret"}, []string{"rep:", "@pg1:5432"}},
		{"pgpass entry", templates.KindPgpass, "*:5432:*:rep:hunter2", []string{"hunter2"}, []string{"*:5432:*:rep:"}},
		{"pgpass escaped colons", templates.KindPgpass, `pg1:5432:db\:x:rep:pa\:ss\\w:rd`, []string{"pa", `ss\\w`, "rd"}, []string{`pg1:5432:db\:x:rep:`}},
		{"pgpass escaped colon in user", templates.KindPgpass, `*:*:*:we\:ird:secret`, []string{"secret"}, []string{`*:*:*:we\:ird:`}},
		{"pgpass unreadable line", templates.KindPgpass, "hunter2", []string{"hunter2"}, nil},
		{"pgpass comment kept", templates.KindPgpass, "# the replication password", nil, []string{"# the replication password"}},
		{"no password", "", "archive_command = 'pgwarm-wal ship %p %f'\npassword_encryption = 'scram-sha-256'", nil,
			[]string{"archive_command = 'pgwarm-wal ship %p %f'", "password_encryption = 'scram-sha-256'"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := MaskSecrets(c.kind, c.in)
			for _, s := range c.secrets {
				if strings.Contains(got, s) {
					t.Errorf("MaskSecrets(%q) = %q: %q still shown", c.in, got, s)
				}
			}
			for _, k := range c.keep {
				if !strings.Contains(got, k) {
					t.Errorf("MaskSecrets(%q) = %q: lost %q", c.in, got, k)
				}
			}
			if len(c.secrets) > 0 && !strings.Contains(got, MaskedInline) {
				t.Errorf("MaskSecrets(%q) = %q: no %s marker", c.in, got, MaskedInline)
			}
			if again := MaskSecrets(c.kind, got); again != got {
				t.Errorf("masking twice changed %q to %q", got, again)
			}
		})
	}
	if got := MaskSecrets("", "a password=x\nb\n"); got != "a password="+MaskedInline+"\nb\n" {
		t.Errorf("lines and newlines not kept: %q", got)
	}
}

// secretDigestsOf lists every digest a plan must not carry for in: the
// sha256 of each secret file as rendered and as on the host, and of the
// password itself.
func secretDigestsOf(in Input) []string {
	out := []string{Hash([]byte(goldenPassword))}
	for name, files := range in.Rendered.Hosts {
		for _, rf := range files {
			if !rf.Secret {
				continue
			}
			if rf.Source == "" {
				content, _ := Resolve(rf, in.Facts)
				out = append(out, Hash([]byte(content)))
			}
			if fi := in.Facts[name].Files[rf.Path]; fi.SHA256 != "" {
				out = append(out, fi.SHA256)
			}
		}
	}
	return out
}

// TestNoSecretDigestInPlan: no output of any golden plan (human, JSON,
// the saved file) carries a digest from which a secret could be guessed.
func TestNoSecretDigestInPlan(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("..", "testdata", "plan", "*"))
	for _, dir := range dirs {
		in := goldenInput(t, dir)
		p, err := Compute(in)
		if err != nil {
			continue // the error cases print no plan
		}
		var txt bytes.Buffer
		if err := Human(&txt, p, false); err != nil {
			t.Fatal(err)
		}
		js, _ := p.JSON()
		file := filepath.Join(t.TempDir(), "saved.plan")
		if err := Save(file, p); err != nil {
			t.Fatal(err)
		}
		saved, _ := Load(file)
		savedJS, _ := saved.JSON()
		for _, d := range secretDigestsOf(in) {
			for what, out := range map[string][]byte{"human": txt.Bytes(), "json": js, "saved": savedJS} {
				if bytes.Contains(out, []byte(d)) || bytes.Contains(out, []byte(d[:12])) {
					t.Errorf("%s: %s output carries the secret digest %s", filepath.Base(dir), what, d)
				}
			}
		}
	}
}

// TestPasswordOnHostMasked: a primary_conninfo with a password, already
// in a managed file on the host, is masked in the diff and the JSON, and
// neither the file's digest nor the password is shown or saved.
func TestPasswordOnHostMasked(t *testing.T) {
	const pw = `it's a "hunter2" \ pw`
	in := goldenInput(t, filepath.Join("..", "testdata", "plan", "setting-drifted"))
	const path = "/etc/postgresql/15/main/pgwarm.conf"
	f := clone(t, in.Facts)
	fi := f["pg1"].Files[path]
	conninfo := `host=pg9 password='` + strings.ReplaceAll(strings.ReplaceAll(pw, `\`, `\\`), `'`, `\'`) + `' user=rep`
	text := *fi.Content + "primary_conninfo = " + quoteConf(conninfo) + "\n"
	fi.Content, fi.SHA256 = &text, Hash([]byte(text))
	f["pg1"].Files[path] = fi
	in.Facts = f
	p, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	var txt bytes.Buffer
	if err := Human(&txt, p, false); err != nil {
		t.Fatal(err)
	}
	js, _ := p.JSON()
	for what, out := range map[string]string{"human": txt.String(), "json": string(js)} {
		for _, bad := range []string{"hunter2", `\\ pw`, `\ pw`, fi.SHA256, fi.SHA256[:12]} {
			if strings.Contains(out, bad) {
				t.Errorf("%s output shows %q", what, bad)
			}
		}
	}
	if !strings.Contains(txt.String(), "-primary_conninfo = 'host=pg9 password="+MaskedInline+" user=rep'") {
		t.Errorf("the removed primary_conninfo line is not shown masked:\n%s", txt.String())
	}
	obs := p.Hosts[0].Observed[path]
	if !strings.HasPrefix(obs, "sha256-masked:") {
		t.Errorf("observed %s = %q, want the digest of the masked text", path, obs)
	}
	// The masked digest still notices a change outside the password.
	g := clone(t, in.Facts)
	gi := g["pg1"].Files[path]
	other := strings.Replace(text, "host=pg9", "host=pg8", 1)
	gi.Content, gi.SHA256 = &other, Hash([]byte(other))
	g["pg1"].Files[path] = gi
	if err := CheckFresh(p, inputNow(in, g, in.Rendered)); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a changed host line with a password was not noticed: %v", err)
	}
}

// TestCheckFreshSecret: without any digest of .pgpass in the plan, apply
// still refuses a saved plan when .pgpass changed on the host or the
// password apply would write is not the one planned with.
func TestCheckFreshSecret(t *testing.T) {
	in := goldenInput(t, filepath.Join("..", "testdata", "plan", "applied"))
	p, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	const pgpass = "/var/lib/postgresql/.pgpass"
	if err := CheckFresh(p, inputNow(in, in.Facts, in.Rendered)); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	t.Run("host file changed", func(t *testing.T) {
		cur := clone(t, in.Facts)
		fi := cur["pg2"].Files[pgpass]
		fi.SHA256 = Hash([]byte("*:5432:*:replicator:other\n"))
		cur["pg2"].Files[pgpass] = fi
		err := CheckFresh(p, inputNow(in, cur, in.Rendered))
		if err == nil || !strings.Contains(err.Error(), "pg2: "+pgpass+" changed") {
			t.Errorf("got %v", err)
		}
		if err != nil && strings.Contains(err.Error(), fi.SHA256) {
			t.Errorf("the error shows the digest: %v", err)
		}
	})
	t.Run("password variable changed", func(t *testing.T) {
		r, err := templates.RenderWith(in.Inventory, templates.Options{LookupEnv: func(string) (string, bool) { return "another password", true }})
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckFresh(p, inputNow(in, in.Facts, r)); err == nil || !strings.Contains(err.Error(), pgpass) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("key regenerated", func(t *testing.T) {
		cur := clone(t, in.Facts)
		for path, fi := range cur["pg1"].Files {
			if strings.HasSuffix(path, ".pub") {
				s := "ssh-ed25519 AAAAother postgres@pg1\n"
				fi.Content, fi.SHA256 = &s, Hash([]byte(s))
				cur["pg1"].Files[path] = fi
			}
		}
		if err := CheckFresh(p, inputNow(in, cur, in.Rendered)); err == nil {
			t.Error("a regenerated key pair was not noticed")
		}
	})
}
