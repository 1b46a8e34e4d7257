package inventory

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Every string of the inventory ends up somewhere: in a line of a file
// rendered on a host (postgresql.conf, authorized_keys, ssh_config, fstab,
// exports, cron, systemd units, .pgpass), inside a shell command, or in
// pgwarm's own SSH client on this machine. Each place reads some characters
// as syntax, even through the quoting pgwarm applies there, and a value
// that carries them would write a directive, option or command the
// inventory never named (a quote in archive.home ends the authorized_keys
// forced command, a space in mount_point rewrites the fstab options, a
// newline in postgres.home adds an ssh_config directive, a % in a path is
// expanded by cron, systemd and PostgreSQL's restore_command).
//
// So every string field is listed in fieldRules below with the places it
// reaches and the kind of value it is. A field is checked against every one
// of its destinations; a kind with a character set (paths, file names,
// unit names) only allows characters that all of them carry verbatim, and
// TestKindsFitTheirDestinations keeps the two tables consistent. A new
// string field without a row fails TestEveryStringFieldHasARule.

// destination is one kind of place a value is written into.
type destination struct {
	name   string   // the place, for messages: "the authorized_keys forced command"
	syntax []syntax // what it reads as syntax even after pgwarm's quoting there
}

// syntax is a set of characters a destination gives a meaning to.
type syntax struct{ chars, why string }

func (d destination) reads(c rune) (why string, ok bool) {
	for _, s := range d.syntax {
		if strings.ContainsRune(s.chars, c) {
			return s.why, true
		}
	}
	return "", false
}

// shellSyntax is what /bin/sh reads outside quotes. Most commands pgwarm
// runs quote their words, but not every one (the layout's pg_ctl line, the
// DNS trigger's double-quoted messages), so a value reaching the shell
// carries none of it.
var shellSyntax = syntax{" \t'\"\\`$;&|<>()*?[]{}#~!^", "the shell reads blanks, quotes, $, ;, |, & and globs"}

// Control characters (a newline above all) break every destination: each
// value is written on one line, and a line break starts a directive of its
// own. They are refused for every field before any destination is asked.
var (
	destFile          = destination{name: "file paths on the hosts"}
	destShell         = destination{name: "shell commands on the hosts", syntax: []syntax{shellSyntax}}
	destForcedCommand = destination{name: "the authorized_keys forced command", syntax: []syntax{
		{`"\`, `sshd ends command="..." at a " and keeps \ as it is, which unbalances the shell's quotes`}, shellSyntax}}
	destSSHConfig = destination{name: "~postgres/.ssh/config", syntax: []syntax{
		{" \t=,", "ssh splits its config at blanks, = and ,"},
		{"\"'\\#", "ssh reads quotes, \\ and # in its config"},
		{"%${}", "ssh expands % tokens and ${VAR} in file names"}}}
	destFstab = destination{name: "/etc/fstab", syntax: []syntax{
		{" \t", "fstab splits its fields at blanks"},
		{",", `fstab reads "," between mount options`},
		{"\\#", `fstab reads \ as an octal escape and # as a comment`}}}
	destExports = destination{name: "/etc/exports", syntax: []syntax{
		{" \t", "exports splits at blanks"},
		{"\"\\#(),", "exports reads quotes, \\, #, \",\" and (options)"}}}
	destCron    = destination{name: "/etc/cron.d", syntax: []syntax{{"%", "cron turns % in a command into a newline"}}}
	destSystemd = destination{name: "systemd units", syntax: []syntax{
		{"%$", "systemd expands % specifiers and $ variables"},
		{"\\;'\"", "systemd reads \\, ; and quotes in ExecStart="}}}
	destPGCommand = destination{name: "PostgreSQL's archive_command and restore_command", syntax: []syntax{
		{"%", "PostgreSQL replaces %p, %f, %r and %% in them"}}}
	destPGConf = destination{name: "postgresql.conf"} // values are written quoted as '...'
	// Host names and addresses in a libpq connection string are unquoted.
	destConninfo = destination{name: "primary_conninfo", syntax: []syntax{
		{" \t='\\", "libpq splits a connection string at blanks and = and reads quotes and \\"}}}
	destHBA = destination{name: "pg_hba.conf", syntax: []syntax{
		{" \t,#\"", `pg_hba.conf splits at blanks and "," and reads " and #`}}}
	// The archive URL's path is escaped as a URL: an escape is a %XX that
	// PostgreSQL would expand in archive_command.
	destURL = destination{name: "the ssh:// archive URL", syntax: []syntax{
		{" \t\"'\\#%?<>[]^`{|}", "a URL escapes it as %XX, which PostgreSQL expands in archive_command"}}}
	destLocal = destination{name: "pgwarm's SSH client on this machine"}
)

// kind is what a field holds; it decides the characters allowed beyond
// what its destinations refuse, and the shape of the value.
type kind struct {
	chars string // allowed characters, besides letters and digits; "" is any printable
	// pattern is the same rule for the JSON Schema (without the checks of
	// shape that a regular expression cannot say well).
	pattern string
	what    string // the rule, for messages: "an absolute path of ASCII letters, ..."
	// shape returns a problem with the value's form (not its characters), "" if none.
	shape func(r fieldRule, s string) string
	// own: the field has its own rule in check (a regular expression, an
	// enum, a host name); the destinations document what that rule keeps
	// out, and TestOwnRulesKeepOutWhatDestinationsForbid checks it does.
	own bool
}

// Paths on the hosts allow the POSIX portable file name characters
// (letters, digits, . _ -) plus / and two that real paths use
// (postgresql@15-main, c++): none of them means anything to sh, sshd,
// ssh_config, fstab, exports, cron, systemd, PostgreSQL's commands,
// libpq or a URL path.
var (
	kindPath     = kind{chars: "._-+@/", pattern: `^(/[A-Za-z0-9._+@-]+)+$`, what: "an absolute path of ASCII letters, digits and . _ - + @ /", shape: pathShape}
	kindFileName = kind{chars: "._-+@", pattern: `^[A-Za-z0-9._+@-]+$`, what: "a plain file name of ASCII letters, digits and . _ - + @", shape: fileNameShape}
	kindUnit     = kind{chars: "._-@", pattern: `^[A-Za-z0-9._@-]+$`, what: "a systemd unit name of ASCII letters, digits and . _ - @", shape: unitShape}
	kindText     = kind{what: "one line of printable characters"}
	kindOwn      = kind{own: true, what: "one line of printable characters"}
)

// fieldRule is one row of the table: a key (hosts[] stands for every host,
// postgres.settings.* for every setting), where its value goes and what it is.
type fieldRule struct {
	key   string
	kind  kind
	where string // for paths: the hosts the path is on
	dests []destination
}

// fieldRules lists every string key of the inventory. Keys checked by a
// rule of their own (kindOwn) are here too, so the table shows every value
// that leaves the file; enums and archive.host (a host's name) need no
// destinations. The most telling destination comes first: messages explain
// a refused character with the first one that reads it.
var fieldRules = []fieldRule{
	{key: "cluster", kind: kindOwn, dests: []destination{destFile, destShell, destSystemd, destCron, destForcedCommand, destSSHConfig, destPGConf, destPGCommand}},
	{key: "postgres.layout", kind: kindOwn},
	{key: "postgres.settings.*", kind: kindText, dests: []destination{destPGConf}},
	{key: "postgres.data_dir", kind: kindPath, where: "the PostgreSQL hosts", dests: []destination{destShell, destFile}},
	{key: "postgres.config_dir", kind: kindPath, where: "the PostgreSQL hosts", dests: []destination{destShell, destFile}},
	{key: "postgres.bin_dir", kind: kindPath, where: "the PostgreSQL hosts", dests: []destination{destShell, destFile}},
	{key: "postgres.service", kind: kindUnit, dests: []destination{destSystemd, destShell}},
	{key: "postgres.home", kind: kindPath, where: "the PostgreSQL hosts", dests: []destination{destSSHConfig, destShell, destFile}},
	{key: "replication.mode", kind: kindOwn},
	{key: "replication.trigger_file", kind: kindPath, where: "the standbys", dests: []destination{destPGCommand, destPGConf, destShell, destFile}},
	{key: "replication.user", kind: kindOwn, dests: []destination{destShell, destPGConf, destConninfo, destHBA}},
	{key: "replication.password_env", kind: kindOwn, dests: []destination{destLocal}},
	{key: "replication.seed", kind: kindOwn},
	{key: "archive.host", kind: kindOwn},
	{key: "archive.transport", kind: kindOwn},
	{key: "archive.path", kind: kindPath, where: "the archive host", dests: []destination{destForcedCommand, destFstab, destExports, destPGCommand, destURL, destCron, destSystemd, destShell, destFile}},
	{key: "archive.compression", kind: kindOwn},
	{key: "archive.marker", kind: kindFileName, dests: []destination{destPGCommand, destShell, destFile}},
	{key: "archive.user", kind: kindOwn, dests: []destination{destShell, destSSHConfig, destURL, destCron, destSystemd}},
	{key: "archive.home", kind: kindPath, where: "the archive host", dests: []destination{destForcedCommand, destShell, destFile}},
	{key: "archive.mount_point", kind: kindPath, where: "the PostgreSQL hosts", dests: []destination{destFstab, destPGCommand, destShell, destFile}},
	{key: "failover.dns.name", kind: kindOwn, dests: []destination{destShell, destSystemd, destCron}},
	{key: "failover.dns.target", kind: kindOwn, dests: []destination{destShell, destSystemd, destCron}},
	{key: "ssh.user", kind: kindOwn, dests: []destination{destLocal}},
	{key: "ssh.identity_file", kind: kindText, dests: []destination{destLocal}},
	{key: "ssh.become", kind: kindOwn},
	{key: "ssh.known_hosts", kind: kindText, dests: []destination{destLocal}},
	{key: "hosts[].name", kind: kindOwn, dests: []destination{destFile, destShell, destForcedCommand, destSystemd, destCron, destHBA, destPGConf}},
	{key: "hosts[].address", kind: kindOwn, dests: []destination{destShell, destSSHConfig, destFstab, destExports, destConninfo, destHBA, destURL}},
	{key: "hosts[].role", kind: kindOwn},
	{key: "hosts[].ssh.user", kind: kindOwn, dests: []destination{destLocal}},
	{key: "hosts[].ssh.identity_file", kind: kindText, dests: []destination{destLocal}},
	{key: "hosts[].ssh.become", kind: kindOwn},
	{key: "hosts[].ssh.known_hosts", kind: kindText, dests: []destination{destLocal}},
	{key: "templates_dir", kind: kindText, dests: []destination{destLocal}},
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// ruleFor returns the row of a decoded key path: hosts[2].name is
// hosts[].name, postgres.settings.work_mem is postgres.settings.*.
func ruleFor(p string) (fieldRule, bool) {
	key := indexRE.ReplaceAllString(p, "[]")
	if strings.HasPrefix(key, "postgres.settings.") {
		key = "postgres.settings.*"
	}
	for _, r := range fieldRules {
		if r.key == key {
			return r, true
		}
	}
	return fieldRule{}, false
}

// checkValues checks every string value written in the file against its
// row. It runs before the other rules, which skip a value it rejected.
// Defaults need no check: they are built from values checked here.
func (d *decoder) checkValues() {
	paths := make([]string, 0, len(d.nodes))
	for p := range d.nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		n := d.nodes[p]
		if n == nil || n.Kind != yaml.ScalarNode || d.failed[p] || isNull(n) {
			continue
		}
		r, ok := ruleFor(p)
		if !ok {
			continue // a number, boolean, duration or version
		}
		if msg := r.problem(n.Value); msg != "" {
			d.fail(p, n, "%s", msg)
		}
	}
}

// problem returns what is wrong with s as a value of r, "" if nothing.
func (r fieldRule) problem(s string) string {
	if msg := oneLine(s); msg != "" {
		return msg
	}
	if r.kind.own {
		return ""
	}
	for _, c := range s {
		if r.allows(c) {
			continue
		}
		// Name every place that reads c as syntax, and why the first does.
		var names []string
		why := ""
		for _, d := range r.dests {
			if w, ok := d.reads(c); ok {
				names = append(names, d.name)
				if why == "" {
					why = w
				}
			}
		}
		msg := fmt.Sprintf("%q has %s", s, charName(c))
		if len(names) > 0 {
			msg += fmt.Sprintf(", which %s would read as syntax (%s)", andList(names), why)
		}
		return msg + "; use " + r.kind.what
	}
	if r.kind.shape != nil {
		return r.kind.shape(r, s)
	}
	return ""
}

func andList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// allows reports whether c may appear in a value of r: its kind's
// characters, and nothing one of its destinations forbids.
func (r fieldRule) allows(c rune) bool {
	for _, d := range r.dests {
		if _, ok := d.reads(c); ok {
			return false
		}
	}
	if r.kind.chars == "" {
		return true
	}
	return c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(r.kind.chars, c))
}

// oneLine refuses what no destination can carry: bytes that are not
// UTF-8, control characters (newline, carriage return, tab, NUL, ...), the
// Unicode line and paragraph separators, and invisible format characters
// (a bidi override would make plan output show another line than the one
// written).
func oneLine(s string) string {
	if !utf8.ValidString(s) {
		return fmt.Sprintf("%q is not valid UTF-8", s)
	}
	for _, c := range s {
		if !unicode.IsGraphic(c) {
			return fmt.Sprintf("%q has %s: every value is written on one line of a file or command, where a line break or control character would start a directive of its own; use one line of printable characters", s, charName(c))
		}
	}
	return ""
}

func charName(c rune) string {
	switch c {
	case '\n':
		return "a newline"
	case '\r':
		return "a carriage return"
	case '\t':
		return "a tab"
	case ' ':
		return "a space"
	case 0:
		return "a NUL byte"
	}
	if unicode.IsControl(c) {
		return fmt.Sprintf("the control character %U", c)
	}
	if !unicode.IsPrint(c) {
		return fmt.Sprintf("the unprintable character %U", c)
	}
	return fmt.Sprintf("%q", string(c))
}

func pathShape(r fieldRule, s string) string {
	switch {
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("must be an absolute path on %s, got %q", r.where, s)
	case s == "/":
		return fmt.Sprintf("cannot be / itself; use %s", r.kind.what)
	case path.Clean(s) != s:
		return fmt.Sprintf("%q is not a clean path: write it as %s (no //, . or .. and no trailing /), the form PostgreSQL and the hosts report it in", s, path.Clean(s))
	}
	return ""
}

func fileNameShape(r fieldRule, s string) string {
	if s == "." || s == ".." || strings.HasPrefix(s, "-") {
		return fmt.Sprintf("%q: a marker is a plain file name in the archive root, not . or .. and not starting with -", s)
	}
	return ""
}

func unitShape(r fieldRule, s string) string {
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, ".") {
		return fmt.Sprintf("%q: a systemd unit name starts with a letter, digit, _ or @", s)
	}
	return ""
}
