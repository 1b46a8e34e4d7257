package inventory

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// stringKeys lists the key of every string field (hosts[] for each host,
// postgres.settings.* for each setting).
func stringKeys(t reflect.Type, prefix string) []string {
	var out []string
	for _, f := range reflect.VisibleFields(t) {
		name := yamlName(f)
		if name == "" {
			continue
		}
		key := join(prefix, name)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == versionType || ft == durationType:
		case ft.Kind() == reflect.String:
			out = append(out, key)
		case ft.Kind() == reflect.Map:
			out = append(out, key+".*")
		case ft.Kind() == reflect.Slice:
			out = append(out, stringKeys(ft.Elem(), key+"[]")...)
		case ft.Kind() == reflect.Struct:
			out = append(out, stringKeys(ft, key)...)
		}
	}
	return out
}

// A string field added to the structs needs a row saying where it goes.
func TestEveryStringFieldHasARule(t *testing.T) {
	keys := stringKeys(reflect.TypeFor[Inventory](), "")
	if len(keys) < 30 {
		t.Fatalf("only %d string keys found: %v", len(keys), keys)
	}
	rows := map[string]bool{}
	for _, r := range fieldRules {
		if rows[r.key] {
			t.Errorf("%s has two rows", r.key)
		}
		rows[r.key] = true
	}
	for _, k := range keys {
		if !rows[k] {
			t.Errorf("%s has no row in fieldRules: say where its value goes", k)
		}
		delete(rows, k)
	}
	for k := range rows {
		t.Errorf("fieldRules row %s names no field", k)
	}
}

// The characters a kind's message promises are carried by every
// destination of every field of that kind: the message never tells an
// operator to use a character that is then refused.
func TestKindsFitTheirDestinations(t *testing.T) {
	for _, r := range fieldRules {
		if r.kind.chars == "" {
			continue
		}
		chars := "abcxyzABCXYZ0123456789" + r.kind.chars
		for _, c := range chars {
			for _, d := range r.dests {
				if why, ok := d.reads(c); ok {
					t.Errorf("%s: kind allows %q but %s reads it (%s)", r.key, c, d.name, why)
				}
			}
			if !r.allows(c) {
				t.Errorf("%s: %q promised but refused", r.key, c)
			}
		}
		if !strings.Contains(r.kind.what, strings.Join(strings.Split(strings.Trim(r.kind.chars, "/"), ""), " ")) {
			t.Errorf("%s: message %q does not list the characters %q", r.key, r.kind.what, r.kind.chars)
		}
	}
}

// nodeAt returns the node at key (a.b, hosts[1].name) of doc.
func nodeAt(t *testing.T, doc *yaml.Node, key string) *yaml.Node {
	t.Helper()
	n := doc.Content[0]
	for _, part := range strings.Split(key, ".") {
		idx := -1
		if i := strings.Index(part, "["); i >= 0 {
			fmt.Sscanf(part[i:], "[%d]", &idx)
			part = part[:i]
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			t.Fatalf("%s: no key %s", key, part)
		}
		if idx >= 0 {
			next = next.Content[idx]
		}
		n = next
	}
	return n
}

// setKey returns src with the scalar at key replaced by value.
func setKey(t *testing.T, src, key, value string) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	n := nodeAt(t, &doc, key)
	n.Value, n.Tag, n.Style = value, "!!str", yaml.DoubleQuotedStyle
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Fields with a rule of their own (a regular expression, a host name) keep
// out every character their destinations read as syntax.
func TestOwnRulesKeepOutWhatDestinationsForbid(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(full), &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range fieldRules {
		if !r.kind.own || len(r.dests) == 0 {
			continue
		}
		key := strings.ReplaceAll(r.key, "[]", "[0]")
		orig := nodeAt(t, &doc, key).Value
		seen := map[rune]bool{}
		for _, d := range r.dests {
			for _, s := range d.syntax {
				for _, c := range s.chars {
					if seen[c] {
						continue
					}
					seen[c] = true
					for _, v := range []string{orig + string(c), string(c) + orig, orig[:1] + string(c) + orig[1:]} {
						_, err := Parse("full.yaml", setKey(t, full, key, v), Options{Home: "/home/op", Dir: "/inv"})
						if err == nil || !strings.Contains(err.Error(), ": "+key+": ") {
							t.Errorf("%s = %q is accepted (%s reads %q: %s): %v", key, v, d.name, c, s.why, err)
						}
					}
				}
			}
		}
	}
}

// Every class of value the issue found reaching a file or a shell unchecked
// is refused at its key, with what is allowed; values that fit pass.
func TestValuesValidatedForTheirDestinations(t *testing.T) {
	for _, c := range []struct {
		key, value, want string // want "" = accepted
	}{
		// A quote or any shell syntax in archive.home: the forced command.
		{"archive.home", "/home/o'neil", `has "'", which the authorized_keys forced command`},
		{"archive.home", `/home/a"b`, `has "\"", which the authorized_keys forced command`},
		{"archive.home", `/home/a\b`, `has "\\", which the authorized_keys forced command`},
		{"archive.home", "/home/$(id)", `has "$"`},
		{"archive.home", "/home/a;b", `has ";"`},
		{"archive.home", "/home/a`id`", "has \"`\""},
		{"archive.home", "/home/a b", "has a space"},
		// Blanks and commas where fstab and exports split.
		{"archive.mount_point", "/mnt/wal nfs soft", "has a space, which /etc/fstab"},
		{"archive.mount_point", "/mnt/wal\tx", "has a tab"},
		{"archive.mount_point", "/mnt/wal,soft", `has ",", which /etc/fstab`},
		{"archive.path", "/srv/wal,soft", `has ",", which /etc/fstab and /etc/exports`},
		{"archive.path", "/srv/wal x", "has a space"},
		// Newlines and control characters in any value that reaches a file.
		{"postgres.home", "/home/postgres\n    ProxyCommand touch /tmp/x", "has a newline: every value is written on one line"},
		{"replication.trigger_file", "/run/pg.trigger\nrestore_command = 'x'", "has a newline"},
		{"archive.home", "/home/walkeeper\nx", "has a newline"},
		{"archive.home", "/home/walkeeper\rx", "has a carriage return"},
		{"postgres.data_dir", "/data/pg\x00", "has a NUL byte"},
		{"postgres.settings.work_mem", "1GB\narchive_command = 'x'", "has a newline"},
		{"postgres.settings.work_mem", "1GB\u2028x", "has the unprintable character U+2028"},
		{"postgres.service", "pg.service\nExecStart=/bin/x", "has a newline"},
		{"ssh.identity_file", "keys/id\x1b[2J", "has the control character U+001B"},
		{"postgres.settings.work_mem", "1GB\u202e", "has the unprintable character U+202E"},
		{"templates_dir", "tmpl\n", "has a newline"},
		{"hosts[0].name", "pg1\n", "has a newline"},
		// % where cron, systemd and PostgreSQL expand it.
		{"replication.trigger_file", "/run/%f", `has "%", which PostgreSQL's archive_command and restore_command`},
		{"archive.path", "/srv/%p", `has "%", which PostgreSQL's archive_command and restore_command, the ssh:// archive URL, /etc/cron.d and systemd units`},
		{"archive.mount_point", "/mnt/%r", `has "%"`},
		{"archive.marker", "m%f", `has "%"`},
		{"postgres.home", "/home/%u", `has "%", which ~postgres/.ssh/config`},
		{"postgres.bin_dir", "/opt/%i/bin", `has "%"`},
		// Paths are absolute and clean.
		{"postgres.config_dir", "etc/pg", "must be an absolute path on the PostgreSQL hosts"},
		{"postgres.config_dir", "/etc/pg/", "is not a clean path: write it as /etc/pg"},
		{"replication.trigger_file", "/run/../pg.trigger", "write it as /pg.trigger"},
		{"archive.mount_point", "/", "cannot be / itself"},
		{"archive.marker", "..", "not . or .."},
		{"archive.marker", "a/b", `has "/"`},
		{"postgres.service", "pg service", "has a space"},
		{"postgres.service", "pg%i.service", `has "%", which systemd units`},
		{"postgres.home", "/home/pösgres", `has "ö"; use an absolute path of ASCII letters`},
		// Settings that include other files, or move pgwarm's files.
		{"postgres.settings.include", "/tmp/x.conf", "include is a directive, not a setting"},
		{"postgres.settings.include_if_exists", "/tmp/x.conf", "include_if_exists is a directive"},
		{"postgres.settings.include_dir", "/tmp/conf.d", "include_dir is a directive"},
		{"postgres.settings.hba_file", "/tmp/hba", "hba_file would make PostgreSQL read another file"},
		{"postgres.settings.data_directory", "/tmp/d", "data_directory would make PostgreSQL read another"},
		{"postgres.settings.archive_library", "x", "managed by pgwarm"},
		{"postgres.settings.restore_command", "cp %f %p", "managed by pgwarm"},
		// What fits every destination passes.
		{"postgres.home", "/srv/pg+ext/postgres@15-main_x.y", ""},
		{"archive.mount_point", "/mnt/wal-1", ""},
		{"postgres.service", "postgresql@15-main.service", ""},
		// A settings value is quoted in postgresql.conf: quotes, %, # and \ are data.
		{"postgres.settings.work_mem", `it's 50% \ # "x"`, ""},
		{"ssh.identity_file", "keys/my id", ""}, // opened on this machine as written
	} {
		src := full
		if strings.HasPrefix(c.key, "postgres.settings.") {
			name := strings.TrimPrefix(c.key, "postgres.settings.")
			src = strings.Replace(full, "settings: {", "settings: {"+name+": x, ", 1)
		}
		_, err := Parse("full.yaml", setKey(t, src, c.key, c.value), Options{Home: "/home/op", Dir: "/inv"})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s = %q: %v", c.key, c.value, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s = %q is accepted, want %q", c.key, c.value, c.want)
			continue
		}
		ps := err.(Problems)
		if len(ps) != 1 || ps[0].Line == 0 || ps[0].Col == 0 || !strings.HasPrefix(ps[0].Msg, c.key+": ") || !strings.Contains(ps[0].Msg, c.want) {
			t.Errorf("%s = %q:\n%v\nwant one problem at a line and column: %s: ...%s...", c.key, c.value, err, c.key, c.want)
		}
	}
}

// A key with a newline is reported on one line: it cannot forge a
// problem line (or a "valid") of its own.
func TestProblemsAreOneLineEach(t *testing.T) {
	src := minimal + "\"x\\nfake.yaml:1:1: fine\": 1\npostgres.settings: {\"a\\rb\": 1}\n"
	_, err := Parse("m.yaml", []byte(src), Options{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, p := range err.(Problems) {
		if strings.ContainsAny(p.String(), "\n\r") {
			t.Errorf("problem spans lines: %q", p.String())
		}
	}
}
