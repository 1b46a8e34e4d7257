package templates

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pgwarm/pgwarm/inventory"
	"gopkg.in/yaml.v3"
)

// FuzzInventoryRender: no inventory that validates renders a line with a
// directive, option or command the inventory did not name. Each input is an
// inventory document and an edit of one of its scalars (keys included, in
// document order): the low byte of edit picks the scalar (0: none), the
// high byte where value goes in it (0: value replaces it; n: it is
// inserted before byte n-1, so most edits of a valid value stay valid and
// reach the renderer). Every inventory that loads is rendered, and every
// rendered file is parsed the way its reader (sshd, ssh, mount, exportfs,
// cron, systemd, PostgreSQL, libpq, sh) would parse it.
//
// In CI: go test -run='^$' -fuzz=FuzzInventoryRender -fuzztime=20s ./templates/
func FuzzInventoryRender(f *testing.F) {
	docs := fuzzSeedDocs(f)
	for _, doc := range docs {
		f.Add(doc, uint16(0), "")
	}
	// Every field of the inventories that use every key, with each
	// character some destination reads as syntax inserted after its first
	// byte, and a few whole hostile values; the fuzzer mutates from there.
	inserted := []string{"'", " ", "\n", "%", ",", `"`, `\`, "$", ";", "#", "=", ":", "+@"}
	replaced := []string{"/x\n    ProxyCommand id", "include", "-x"}
	edited := docs[:2] // fuzzFull over ssh and over nfs
	if testing.Short() {
		edited = docs[:1]
	}
	for _, doc := range edited {
		n := len(scalars(parseDoc(doc)))
		for field := 1; field <= n && field < 256; field++ {
			for _, v := range inserted {
				f.Add(doc, uint16(2<<8|field), v)
			}
			for _, v := range replaced {
				f.Add(doc, uint16(field), v)
			}
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte, edit uint16, value string) {
		data := doc
		if field, at := int(edit&0xff), int(edit>>8); field != 0 {
			root := parseDoc(doc)
			ss := scalars(root)
			if len(ss) == 0 {
				return
			}
			n := ss[(field-1)%len(ss)]
			if at == 0 {
				n.Value = value
			} else {
				i := (at - 1) % (len(n.Value) + 1)
				n.Value = n.Value[:i] + value + n.Value[i:]
			}
			n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
			out, err := yaml.Marshal(root)
			if err != nil {
				return
			}
			data = out
		}
		inv, err := inventory.Parse("fuzz.yaml", data, inventory.Options{Home: "/home/op", Dir: "/inv"})
		if err != nil {
			var ps inventory.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("an invalid inventory gives %T %v, want Problems", err, err)
			}
			return
		}
		r, err := RenderWith(inv, Options{LookupEnv: anyEnv})
		if err != nil {
			// pgwarm validate renders too and refuses the inventory with
			// this error (two values asking for one path, say): nothing
			// reaches a host.
			return
		}
		if msgs := checkRendered(inv, r); len(msgs) > 0 {
			t.Fatalf("inventory\n%s\nrenders what it did not name:\n%s", data, strings.Join(msgs, "\n"))
		}
	})
}

// The golden inventories pass the same checks (and seed the fuzzer).
func TestRenderedFilesNameOnlyTheInventory(t *testing.T) {
	valid := 0
	for i, doc := range fuzzSeedDocs(t) {
		inv, err := inventory.Parse("seed.yaml", doc, inventory.Options{Home: "/home/op", Dir: "/inv"})
		if err != nil {
			if i < 2 {
				t.Fatalf("fuzzFull: %v", err)
			}
			continue // a broken inventory of the corpus
		}
		valid++
		r, err := RenderWith(inv, Options{LookupEnv: anyEnv})
		if err != nil {
			t.Fatal(err)
		}
		if msgs := checkRendered(inv, r); len(msgs) > 0 {
			t.Errorf("%s:\n%s", inv.Summary(), strings.Join(msgs, "\n"))
		}
	}
	if valid < 60 {
		t.Errorf("only %d seed inventories validate", valid)
	}
}

// Every ASCII punctuation character and blank, inserted into every value
// of the inventories that use every key: those that validate render only
// what the inventory named. The fuzzer goes further; this sweep runs in
// every go test.
func TestEveryCharacterInEveryValue(t *testing.T) {
	docs := fuzzSeedDocs(t)[:2]
	if testing.Short() {
		docs = docs[:1] // over ssh only
	}
	var chars []string
	for c := byte(0x20); c < 0x7f; c++ {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			chars = append(chars, string(c))
		}
	}
	chars = append(chars, "\t", "\n", "\r", "\x00", "\x7f", "é", "\u2028", "\u202e")
	tried, valid := 0, 0
	for _, doc := range docs {
		root := parseDoc(doc)
		values := map[*yaml.Node]bool{}
		var walk func(n *yaml.Node)
		walk = func(n *yaml.Node) {
			for i, c := range n.Content {
				if n.Kind != yaml.MappingNode || i%2 == 1 {
					values[c] = c.Kind == yaml.ScalarNode && c.Tag == "!!str"
				}
				walk(c)
			}
		}
		walk(root)
		for i, n := range scalars(root) {
			if !values[n] {
				continue // a key, a number or a boolean
			}
			for _, ch := range chars {
				{
					root := parseDoc(doc)
					m := scalars(root)[i]
					m.Value = m.Value[:1] + ch + m.Value[1:]
					m.Style = yaml.DoubleQuotedStyle
					data, err := yaml.Marshal(root)
					if err != nil {
						t.Fatal(err)
					}
					tried++
					inv, err := inventory.Parse("sweep.yaml", data, inventory.Options{Home: "/home/op", Dir: "/inv"})
					if err != nil {
						continue
					}
					r, err := RenderWith(inv, Options{LookupEnv: anyEnv})
					if err != nil {
						continue
					}
					valid++
					if msgs := checkRendered(inv, r); len(msgs) > 0 {
						t.Errorf("%q in %q renders what the inventory did not name:\n%s", ch, n.Value, strings.Join(msgs, "\n"))
					}
				}
			}
		}
	}
	if valid < 200 {
		t.Errorf("only %d of %d edits validate", valid, tried)
	}
	t.Logf("%d edits, %d validate and were checked", tried, valid)
}

// anyEnv answers every variable with the golden password, whatever
// password_env names.
func anyEnv(string) (string, bool) { return goldenPassword, true }

// fuzzFull sets every key of the inventory (like inventory's own full
// test inventory): custom layout, NFS on a standby with a marker, a DNS
// trigger, slots.
const fuzzFull = `cluster: main
postgres:
  version: 13
  layout: custom
  port: 5433
  settings: {shared_buffers: 1GB, log_line_prefix: '%m [%p] '}
  data_dir: /data/pg
  config_dir: /etc/pg
  bin_dir: /opt/pg/bin
  service: pg.service
  home: /home/postgres
replication:
  mode: streaming
  archive_timeout: 90s
  restore_retry: 250ms
  trigger_file: /run/pg.trigger
  user: repl
  password_env: REPL_PW
  slot: true
  seed: stream-tar
archive:
  host: arch
  transport: ssh
  path: /srv/wal
  compression: gzip
  user: walkeeper
  home: /home/walkeeper
  mount_point: /mnt/wal
failover:
  dns: {name: db.example.com, target: pg2, every: 5s}
ssh: {user: ops, port: 2200, identity_file: keys/id, become: none, known_hosts: ~/kh}
hosts:
  - {name: pg1, address: 10.0.0.1, role: primary, ssh: {user: root, port: 22, identity_file: /k, become: sudo, known_hosts: kh2}}
  - {name: pg2, address: "fd00::2", role: standby}
  - {name: arch, address: arch.example.com, role: archive}
`

func fuzzSeedDocs(tb testing.TB) [][]byte {
	files := []string{}
	for _, g := range []string{"../testdata/render/*/pgwarm.yaml", "../testdata/plan/*/inventory.yaml", "../examples/*.yaml", "../testdata/inventory/broken/*.yaml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	if len(files) < 60 {
		tb.Fatalf("only %d seed inventories", len(files))
	}
	docs := [][]byte{[]byte(fuzzFull), []byte(strings.NewReplacer("transport: ssh", "transport: nfs\n  marker: here", "host: arch", "host: pg2", "role: archive", "role: standby").Replace(fuzzFull))}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		docs = append(docs, b)
	}
	return docs
}

func parseDoc(doc []byte) *yaml.Node {
	var n yaml.Node
	if yaml.Unmarshal(doc, &n) != nil {
		return nil
	}
	return &n
}

// scalars lists a document's scalar nodes, keys and values, in order.
func scalars(n *yaml.Node) []*yaml.Node {
	if n == nil {
		return nil
	}
	var out []*yaml.Node
	var walk func(n *yaml.Node)
	seen := map[*yaml.Node]bool{}
	walk = func(n *yaml.Node) {
		if seen[n] {
			return
		}
		seen[n] = true
		if n.Kind == yaml.ScalarNode {
			out = append(out, n)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}

// checker collects what a rendered file holds that its inventory did not name.
type checker struct {
	inv  *inventory.Inventory
	msgs []string
	host string
	file string
}

func (c *checker) errorf(format string, args ...any) {
	c.msgs = append(c.msgs, fmt.Sprintf("%s:%s: ", c.host, c.file)+fmt.Sprintf(format, args...))
}

var (
	safePathRE       = regexp.MustCompile(`^(/[A-Za-z0-9._+@-]+)+$`)
	numberRE         = regexp.MustCompile(`^[0-9]+(ms|s)?$`)
	rightsTimelineRE = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
)

func checkRendered(inv *inventory.Inventory, r Rendered) []string {
	c := &checker{inv: inv}
	for _, h := range inv.Hosts {
		if _, ok := r.Hosts[h.Name]; !ok {
			c.msgs = append(c.msgs, h.Name+": no files")
		}
	}
	for _, hn := range r.HostNames() {
		h, ok := inv.Host(hn)
		if !ok {
			c.msgs = append(c.msgs, hn+": files for a host the inventory does not name")
			continue
		}
		c.host = hn
		for _, f := range r.Hosts[hn] {
			c.file = f.Path
			if !safePathRE.MatchString(f.Path) || path.Clean(f.Path) != f.Path {
				c.errorf("path is not a clean absolute path of safe characters")
			}
			content := string(f.Content)
			if strings.ContainsAny(content, "\r\x00") {
				c.errorf("carriage return or NUL in the content")
			}
			lines := contentLines(content)
			switch f.Kind {
			case KindDir, KindArchiveDir, KindHelper, KindSSHKey, KindMarker, KindSignal:
				if len(f.Content) != 0 {
					c.errorf("%s has content", f.Kind)
				}
			case KindSettings, KindRecovery:
				c.settingsFile(h, lines, f.Kind == KindRecovery)
			case KindSettingsInclude:
				c.exact(lines, "include '"+path.Base(inv.Paths().SettingsFile)+"'")
			case KindHBA:
				c.hba(lines)
			case KindPgpass:
				c.pgpass(lines)
			case KindSSHConfig:
				c.sshConfig(lines)
			case KindKnownHosts:
				c.knownHosts(lines)
			case KindAuthorizedKeys:
				c.authorizedKeys(lines)
			case KindArchiveRights:
				c.rights(lines)
			case KindFstab:
				c.fstab(lines)
			case KindExports:
				c.exports(lines)
			case KindCron:
				c.cron(h, lines)
			case KindSystemd:
				c.systemd(h, lines)
			case KindScript:
				c.script(content)
			default:
				c.errorf("no check for kind %q: say in fuzz_test.go how its reader parses it", f.Kind)
			}
		}
	}
	return c.msgs
}

// contentLines are the lines that are not blank or a # comment.
func contentLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

func (c *checker) exact(lines []string, want ...string) {
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		c.errorf("lines %q, want %q", lines, want)
	}
}

// pgString reads one postgresql.conf quoted string as PostgreSQL's lexer
// does (a doubled quote for a quote, backslash escapes) and returns it and
// what follows.
func pgString(s string) (val, rest string, ok bool) {
	if !strings.HasPrefix(s, "'") {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case ch == '\'':
			return b.String(), s[i+1:], true
		case ch == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			default:
				b.WriteByte(s[i]) // \\, \' and octal escapes pgquote never writes
			}
		case ch == '\n':
			return "", "", false
		default:
			b.WriteByte(ch)
		}
	}
	return "", "", false
}

var (
	settingLineRE = regexp.MustCompile(`^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?) = (.*)$`)
	// pgwarmSettings are the names pgwarm itself renders into pgwarm.conf
	// and recovery.conf.
	pgwarmSettings = map[string]bool{
		"archive_mode": true, "archive_command": true, "archive_timeout": true, "wal_level": true, "wal_log_hints": true,
		"max_wal_senders": true, "max_replication_slots": true, "listen_addresses": true, "port": true, "hot_standby": true,
		"wal_keep_size": true, "wal_keep_segments": true, "wal_retrieve_retry_interval": true, "recovery_prefetch": true,
		"wal_recycle": true, "restore_command": true, "recovery_target_timeline": true, "archive_cleanup_command": true,
		"trigger_file": true, "promote_trigger_file": true, "primary_conninfo": true, "primary_slot_name": true, "standby_mode": true,
	}
)

func (c *checker) settingsFile(h inventory.Host, lines []string, recovery bool) {
	seen := map[string]bool{}
	for _, l := range lines {
		m := settingLineRE.FindStringSubmatch(l)
		if m == nil {
			c.errorf("not a setting line: %q", l)
			continue
		}
		name := m[1]
		_, named := c.inv.Postgres.Settings[name]
		val, rest, ok := pgString(m[2])
		if !ok || rest != "" {
			c.errorf("%s: value is not one quoted string: %q", name, m[2])
			continue
		}
		switch {
		case strings.HasPrefix(name, "include"):
			c.errorf("%s: an include directive", name)
		case seen[name]:
			c.errorf("%s: set twice", name)
		case !pgwarmSettings[name] && !named && !recovery:
			c.errorf("%s: neither pgwarm's nor the inventory's setting", name)
		case recovery && !pgwarmSettings[name]:
			c.errorf("%s: not a recovery setting pgwarm renders", name)
		}
		seen[name] = true
		if v, ok := c.inv.Postgres.Settings[name]; ok && !recovery && val != v {
			c.errorf("%s = %q, the inventory says %q", name, val, v)
		}
		switch name {
		case "archive_command":
			c.helperCommand(h, name, val, "ship", "%p", "%f")
		case "restore_command":
			c.helperCommand(h, name, val, "restore", "%f", "%p")
		case "archive_cleanup_command":
			c.helperCommand(h, name, val, "cleanup", "%r")
		case "primary_conninfo":
			c.conninfo(name, val)
		case "trigger_file", "promote_trigger_file":
			if val != c.inv.Replication.TriggerFile {
				c.errorf("%s = %q, not replication.trigger_file", name, val)
			}
		}
	}
}

// shellWords splits s the way /bin/sh splits a simple command: blanks,
// '...', "..." and backslash. Anything else the shell gives a meaning to
// (;, |, &, redirections, $, `, globs, comments, newlines) is an error:
// none of pgwarm's commands uses it.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated '")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '$', '`':
					return nil, fmt.Errorf("%c inside double quotes", s[i])
				case '\\':
					if i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0 {
						i++
					}
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \"")
			}
			inWord = true
		case ch == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case strings.IndexByte(";&|<>()$`*?[]{}~#!\n", ch) >= 0:
			return nil, fmt.Errorf("unquoted %q", ch)
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// helperCommand checks one pgwarm-wal command of a PostgreSQL setting:
// one argv, the helper and sub first, PostgreSQL's placeholders last and
// nowhere else, and every flag's value the one the inventory gives.
func (c *checker) helperCommand(h inventory.Host, name, cmd, sub string, placeholders ...string) {
	// The primary's cluster, as plan and apply fill it in; a placeholder
	// naming any other host stays and is refused as unquoted.
	prim := c.inv.Primary().Name
	cmd = strings.ReplaceAll(cmd, ClusterPlaceholder(prim), ClusterValues(prim, stubSysID, stubSegSize)[ClusterPlaceholder(prim)])
	argv, err := shellWords(cmd)
	if err != nil {
		c.errorf("%s %q: %v", name, cmd, err)
		return
	}
	n := len(argv) - len(placeholders)
	if n < 2 || strings.Join(argv[n:], " ") != strings.Join(placeholders, " ") {
		c.errorf("%s %q does not end in %s", name, cmd, strings.Join(placeholders, " "))
		return
	}
	for _, a := range argv[:n] {
		if strings.Contains(a, "%") {
			c.errorf("%s %q: %% in %q, which PostgreSQL would expand", name, cmd, a)
		}
	}
	c.helperArgv(h, name, argv[:n], sub)
}

// The cluster helperCommand fills in for the primary's placeholder.
const (
	stubSysID   = "7000000000000000001"
	stubSegSize = 16 << 20
)

// helperArgv checks a pgwarm-wal argv (without PostgreSQL's placeholders).
func (c *checker) helperArgv(h inventory.Host, what string, argv []string, sub string) {
	inv := c.inv
	if len(argv) < 2 || argv[0] != inventory.DefaultHelperPath || argv[1] != sub {
		c.errorf("%s: %q is not %s %s", what, argv, inventory.DefaultHelperPath, sub)
		return
	}
	// The value each flag must carry, as the inventory gives it.
	want := map[string]string{
		"--archive":        inv.ArchiveURL(h),
		"--trigger":        inv.Replication.TriggerFile,
		"--spool":          path.Join(inv.Paths().StateDir, "prefetch"),
		"--require-marker": inv.Archive.Marker,
		"--compression":    inv.Archive.Compression,
		"--root":           inv.Archive.Path,
		"--rights":         ArchiveRightsPath(inv),
		// Only where helperCommand filled in the primary's cluster.
		"--system-identifier": stubSysID,
		"--segment-size":      strconv.Itoa(stubSegSize),
	}
	if sub == "verify" {
		want["--archive"] = inv.Archive.Path
	}
	seen := map[string]bool{}
	for i := 2; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "--") {
			c.errorf("%s: %q: argument %q is not a flag", what, argv, a)
			continue
		}
		if seen[a] {
			c.errorf("%s: %q: %s twice", what, argv, a)
		}
		seen[a] = true
		if i+1 >= len(argv) {
			continue // a boolean flag
		}
		v := argv[i+1]
		if w, ok := want[a]; ok {
			if v != w {
				c.errorf("%s: %s %q, the inventory gives %q", what, a, v, w)
			}
			i++
		} else if a == "--standbys" {
			var names []string
			for _, s := range inv.Standbys() {
				names = append(names, s.Name)
			}
			sort.Strings(names)
			if v != strings.Join(names, ",") {
				c.errorf("%s: --standbys %q, the inventory's standbys are %q", what, v, strings.Join(names, ","))
			}
			i++
		} else if a == "--as" {
			if _, ok := inv.Host(v); !ok {
				c.errorf("%s: --as %q names no host", what, v)
			}
			i++
		} else if !strings.HasPrefix(v, "--") {
			// Another flag's value (--linger 1s, --prefetch 8): one of
			// pgwarm's own words, a host's name or a path of the
			// inventory's directories, never a piece of a value cut apart.
			if !c.ownWord(v) {
				c.errorf("%s: %s %q is no value pgwarm or the inventory gives", what, a, v)
			}
			i++
		}
	}
	if sub != "serve" && !seen["--archive"] {
		c.errorf("%s: %q has no --archive", what, argv)
	}
}

// ownWord: a number or duration, a host or cluster name, or a clean path
// below one of the directories the inventory names.
func (c *checker) ownWord(v string) bool {
	if numberRE.MatchString(v) || v == c.inv.Cluster {
		return true
	}
	if _, ok := c.inv.Host(v); ok {
		return true
	}
	if !safePathRE.MatchString(v) || path.Clean(v) != v {
		return false
	}
	p := c.inv.Paths()
	for _, dir := range []string{p.StateDir, p.DataDir, p.Home, c.inv.Archive.Path, c.inv.Archive.Home, c.inv.Archive.MountPoint} {
		if v == dir || strings.HasPrefix(v, dir+"/") {
			return true
		}
	}
	return false
}

func (c *checker) conninfo(name, s string) {
	p := c.inv.Primary()
	want := map[string]string{"host": p.Address, "port": strconv.Itoa(c.inv.Postgres.Port), "user": c.inv.Replication.User}
	for _, kv := range strings.Split(s, " ") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.ContainsAny(v, "'\\= \t") {
			c.errorf("%s: %q is not key=value", name, kv)
			continue
		}
		switch k {
		case "host", "port", "user":
			if v != want[k] {
				c.errorf("%s: %s=%q, the inventory gives %q", name, k, v, want[k])
			}
		case "application_name":
		default:
			c.errorf("%s: key %q", name, k)
		}
	}
}

func (c *checker) hba(lines []string) {
	for _, l := range lines {
		fields, comment, _ := strings.Cut(l, "#")
		fs := strings.Fields(fields)
		if len(fs) != 5 || fs[0] != "host" || (fs[1] != "replication" && fs[1] != "postgres") || fs[2] != c.inv.Replication.User ||
			(fs[4] != "md5" && fs[4] != "scram-sha-256") {
			c.errorf("pg_hba line %q", l)
			continue
		}
		if _, ok := c.inv.Host(strings.TrimSpace(comment)); !ok {
			c.errorf("pg_hba comment %q names no host", comment)
		}
		known := false
		for _, h := range c.inv.PostgresHosts() {
			known = known || fs[3] == hbaAddress(h.Address)
		}
		if !known {
			c.errorf("pg_hba address %q is no PostgreSQL host's", fs[3])
		}
	}
}

func (c *checker) pgpass(lines []string) {
	if len(lines) != 1 {
		c.errorf(".pgpass has %d lines", len(lines))
		return
	}
	var fields []string
	var cur strings.Builder
	l := lines[0]
	for i := 0; i < len(l); i++ {
		switch {
		case l[i] == '\\' && i+1 < len(l):
			i++
			cur.WriteByte(l[i])
		case l[i] == ':':
			fields = append(fields, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(l[i])
		}
	}
	fields = append(fields, cur.String())
	if len(fields) != 5 || fields[0] != "*" || fields[1] != strconv.Itoa(c.inv.Postgres.Port) || fields[2] != "*" ||
		fields[3] != c.inv.Replication.User || fields[4] != goldenPassword {
		c.errorf(".pgpass fields %q", fields)
	}
}

func (c *checker) sshConfig(lines []string) {
	inv := c.inv
	ah := inv.ArchiveHost()
	home := inv.Paths().Home
	want := map[string]string{
		"Host": ah.Address, "HostName": ah.Address, "Port": strconv.Itoa(inv.SSHFor(ah).Port), "User": inv.Archive.User,
		"IdentityFile": path.Join(home, ".ssh", "pgwarm_"+inv.Cluster), "IdentitiesOnly": "yes",
		"UserKnownHostsFile": path.Join(home, ".ssh", "pgwarm_"+inv.Cluster+"_known_hosts"), "StrictHostKeyChecking": "yes",
		"BatchMode": "yes", "ServerAliveInterval": "15", "ControlMaster": "auto",
		"ControlPath": path.Join(home, ".ssh") + "/cm-%C", "ControlPersist": "5m",
	}
	seen := map[string]bool{}
	for _, l := range lines {
		fs := strings.Fields(l)
		if len(fs) != 2 {
			c.errorf("ssh_config line %q is not one keyword and one value", l)
			continue
		}
		k, v := fs[0], fs[1]
		w, ok := want[k]
		switch {
		case !ok:
			c.errorf("ssh_config keyword %q", k)
		case seen[k]:
			c.errorf("ssh_config %s twice", k)
		case v != w:
			c.errorf("ssh_config %s %q, want %q", k, v, w)
		case strings.ContainsAny(v, "\"'\\=#$") || (k != "ControlPath" && strings.Contains(v, "%")) || strings.Count(v, "%") > 1:
			c.errorf("ssh_config %s %q has characters ssh reads", k, v)
		}
		seen[k] = true
	}
	if len(seen) != len(want) {
		c.errorf("ssh_config has %d of %d keywords", len(seen), len(want))
	}
}

func (c *checker) knownHosts(lines []string) {
	ah := c.inv.ArchiveHost()
	if len(lines) != 1 || len(strings.Fields(lines[0])) != 2 || strings.Fields(lines[0])[1] != HostKeyPlaceholder(ah.Name) {
		c.errorf("known_hosts lines %q", lines)
	}
}

// authorizedKeys: every key line has exactly pgwarm's options, and its
// command= is, as sshd hands it to the shell, one argv of pgwarm-wal serve.
func (c *checker) authorizedKeys(lines []string) {
	clients := map[string]bool{}
	for _, h := range c.inv.ArchiveClients() {
		clients[h.Name] = true
	}
	seen := map[string]bool{}
	for _, l := range lines {
		opts, key, err := sshdOptions(l)
		if err != nil {
			c.errorf("authorized_keys line %q: %v", l, err)
			continue
		}
		if len(opts) != 5 || !strings.HasPrefix(opts[0], "command=") ||
			strings.Join(opts[1:], ",") != "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding" {
			c.errorf("authorized_keys options %q", opts)
			continue
		}
		argv, err := shellWords(strings.TrimPrefix(opts[0], "command="))
		if err != nil {
			c.errorf("forced command %q: %v", opts[0], err)
			continue
		}
		var as string
		for i, a := range argv {
			if a == "--as" && i+1 < len(argv) {
				as = argv[i+1]
			}
		}
		ah := c.inv.ArchiveHost()
		c.helperArgv(ah, "forced command", argv, "serve")
		if !clients[as] || key != KeyPlaceholder(as) || seen[as] {
			c.errorf("forced command for %q with key %q", as, key)
		}
		seen[as] = true
	}
	if len(seen) != len(clients) {
		c.errorf("authorized_keys has %d keys for %d clients", len(seen), len(clients))
	}
}

// sshdOptions splits an authorized_keys line as sshd does: options up to
// the first blank outside quotes, separated by commas outside quotes, with
// only \" unescaped inside them; then the key.
func sshdOptions(l string) (opts []string, key string, err error) {
	var cur strings.Builder
	quoted := false
	i := 0
	for ; i < len(l); i++ {
		ch := l[i]
		switch {
		case ch == '\\' && quoted && i+1 < len(l) && l[i+1] == '"':
			cur.WriteByte('"')
			i++
		case ch == '"':
			quoted = !quoted
		case ch == ',' && !quoted:
			opts = append(opts, cur.String())
			cur.Reset()
		case (ch == ' ' || ch == '\t') && !quoted:
			opts = append(opts, cur.String())
			return opts, strings.TrimSpace(l[i:]), nil
		default:
			cur.WriteByte(ch)
		}
	}
	return nil, "", errors.New("no key after the options")
}

func (c *checker) rights(lines []string) {
	clients := map[string]bool{}
	for _, h := range c.inv.ArchiveClients() {
		clients[h.Name] = true
	}
	for _, l := range lines {
		fs := strings.Fields(l)
		if len(fs) != 2 || !clients[fs[0]] {
			c.errorf("rights line %q is not one client host and its operations", l)
			continue
		}
		for _, op := range strings.Split(fs[1], ",") {
			if !c.rightsOp(op) {
				c.errorf("rights line %q: operation %q", l, op)
			}
		}
	}
}

// rightsOp accepts what serve's rights parser knows: a bare operation, or
// push@T with T a number or the plan's placeholder of a client's timeline.
func (c *checker) rightsOp(op string) bool {
	switch op {
	case "push", "get", "cleanup", "list", "verify":
		return true
	}
	t, ok := strings.CutPrefix(op, "push@")
	if !ok {
		return false
	}
	for _, h := range c.inv.ArchiveClients() {
		if t == TimelinePlaceholder(h.Name) || t == NextTimelinePlaceholder(h.Name) {
			return true
		}
	}
	return rightsTimelineRE.MatchString(t)
}

func (c *checker) fstab(lines []string) {
	a := c.inv.Archive
	server := c.inv.ArchiveHost().Address
	if strings.Contains(server, ":") {
		server = "[" + server + "]"
	}
	want := []string{server + ":" + a.Path, a.MountPoint, "nfs", "rw,hard,noatime,_netdev", "0", "0"}
	if len(lines) != 1 || strings.Join(strings.Fields(lines[0]), " ") != strings.Join(want, " ") || strings.Contains(lines[0], `\`) {
		c.errorf("fstab lines %q, want one line of the fields %q", lines, want)
	}
}

func (c *checker) exports(lines []string) {
	if len(lines) != 1 {
		c.errorf("exports lines %q", lines)
		return
	}
	fs := strings.Fields(lines[0])
	clients := c.inv.ArchiveClients()
	if len(fs) != 1+len(clients) || fs[0] != c.inv.Archive.Path {
		c.errorf("exports line %q", lines[0])
		return
	}
	for i, h := range clients {
		if fs[1+i] != h.Address+"(rw,sync,root_squash,no_subtree_check)" {
			c.errorf("exports client %q, want %s", fs[1+i], h.Address)
		}
	}
}

// jobUser is the account a job of host h runs as.
func (c *checker) jobUser(h inventory.Host) string {
	if h.Name == c.inv.Archive.Host && !h.IsPostgres() {
		return c.inv.Archive.User
	}
	return "postgres"
}

var cronFieldRE = regexp.MustCompile(`^[0-9*/,-]+$`)

func (c *checker) cron(h inventory.Host, lines []string) {
	var job []string
	for _, l := range lines {
		switch {
		case l == "SHELL=/bin/sh", l == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin":
		default:
			job = append(job, l)
		}
	}
	if len(job) != 1 {
		c.errorf("cron has %d job lines: %q", len(job), job)
		return
	}
	fs := strings.Fields(job[0])
	if len(fs) < 7 {
		c.errorf("cron line %q", job[0])
		return
	}
	for _, f := range fs[:5] {
		if !cronFieldRE.MatchString(f) {
			c.errorf("cron schedule field %q", f)
		}
	}
	if fs[5] != "postgres" && fs[5] != c.inv.Archive.User {
		c.errorf("cron user %q", fs[5])
	}
	cmd := strings.SplitN(job[0], " ", 7)[6]
	if strings.Contains(cmd, "%") {
		c.errorf("cron command %q has %%, which cron turns into a newline", cmd)
	}
	c.jobCommand(h, "cron command", cmd, true)
}

func (c *checker) jobCommand(h inventory.Host, what, cmd string, cron bool) {
	argv, err := shellWords(cmd)
	if err != nil {
		c.errorf("%s %q: %v", what, cmd, err)
		return
	}
	script := path.Join("/usr/local/lib/pgwarm", c.inv.Cluster+"-dns-trigger")
	switch {
	case len(argv) > 0 && argv[0] == inventory.DefaultHelperPath:
		c.helperArgv(h, what, argv, "verify")
	case cron && len(argv) >= 4 && strings.Join(argv[:4], " ") == "flock -n "+script+" "+script:
		for _, a := range argv[4:] {
			if _, err := strconv.Atoi(a); err != nil || len(argv) > 6 {
				c.errorf("%s %q", what, cmd)
			}
		}
	case !cron && len(argv) == 1 && argv[0] == script:
	default:
		c.errorf("%s %q runs neither pgwarm-wal verify nor the DNS trigger", what, cmd)
	}
}

var systemdKeys = map[string]map[string]bool{
	"[Unit]":    {"Description": true, "After": true, "Wants": true},
	"[Service]": {"Type": true, "User": true, "ExecStart": true},
	"[Timer]":   {"OnBootSec": true, "OnUnitActiveSec": true, "AccuracySec": true, "OnCalendar": true, "Persistent": true, "Unit": true},
	"[Install]": {"WantedBy": true},
}

func (c *checker) systemd(h inventory.Host, lines []string) {
	section := ""
	seen := map[string]bool{}
	for _, l := range lines {
		if strings.HasPrefix(l, "[") {
			if systemdKeys[l] == nil || seen[l] {
				c.errorf("systemd section %q", l)
			}
			section, seen[l] = l, true
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || !systemdKeys[section][k] || seen[section+k] {
			c.errorf("systemd line %q in %s", l, section)
			continue
		}
		seen[section+k] = true
		if strings.ContainsAny(v, "%$\\;'\"") {
			c.errorf("systemd %s=%q has characters systemd expands or reads", k, v)
		}
		switch k {
		case "ExecStart":
			c.jobCommand(h, "ExecStart", v, false)
		case "User":
			if v != c.jobUser(h) && v != c.inv.Archive.User {
				c.errorf("systemd User=%q", v)
			}
		}
	}
}

// script: the DNS trigger has the template's lines one for one, every
// value a shell word that cannot leave its quotes: each line matches its
// template line with the actions replaced by what they may render.
func (c *checker) script(content string) {
	want := scriptLines()
	got := strings.Split(content, "\n")
	if len(got) != len(want) {
		c.errorf("%d lines, the template has %d", len(got), len(want))
		return
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			c.errorf("line %d %q does not fit its template line %s", i+1, got[i], re)
		}
	}
}

// scriptLines are the DNS trigger template's lines as regular expressions.
var scriptLines = sync.OnceValue(func() []*regexp.Regexp {
	tmpl, err := Builtin("dns-trigger.sh.tmpl")
	if err != nil {
		panic(err)
	}
	action := regexp.MustCompile(`\{\{-? *([^}]*?) *-?\}\}`)
	const (
		word    = `[A-Za-z0-9._:@/+-]*`                                   // a name, an address, a number, a path
		quoted  = `(?:[A-Za-z0-9_@%+=:,./-]+|'[^'\n]*'(?:\\''[^'\n]*')*)` // shquote's output
		command = `[A-Za-z0-9._:@/+' -]*`                                 // pgwarm's own commands of quoted words
	)
	var out []*regexp.Regexp
	for _, line := range strings.Split(string(tmpl), "\n") {
		var re strings.Builder
		re.WriteString("^")
		last := 0
		for _, m := range action.FindAllStringSubmatchIndex(line, -1) {
			re.WriteString(regexp.QuoteMeta(line[last:m[0]]))
			switch a := line[m[2]:m[3]]; {
			case strings.HasPrefix(a, "shquote "):
				re.WriteString(quoted)
			case a == ".Promote" || a == ".PgIsready" || a == ".Psql":
				re.WriteString(command)
			default:
				re.WriteString(word)
			}
			last = m[1]
		}
		re.WriteString(regexp.QuoteMeta(line[last:]) + "$")
		out = append(out, regexp.MustCompile(re.String()))
	}
	return out
})
