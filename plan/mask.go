package plan

import (
	"regexp"
	"strings"

	"github.com/pgwarm/pgwarm/templates"
)

// MaskedInline replaces one password inside a shown line. It has no space,
// so masking a masked line again changes nothing.
const MaskedInline = "(sensitive)"

// MaskSecrets returns text with every password it recognises replaced by
// MaskedInline, line by line: libpq keyword values (password=, also
// sslpassword= and PGPASSWORD=, bare or quoted, inside a quoted
// postgresql.conf value too), the password of a URI's user info, and for
// kind pgpass the fifth field of every entry. Files on a host may hold
// such lines that pgwarm did not write (a primary_conninfo with a
// password); plan shows them masked. When unsure where a value ends it
// masks to the end of the line: showing too little beats showing a
// password. Pure and idempotent.
func MaskSecrets(kind, text string) string {
	if text == "" {
		return text
	}
	var b strings.Builder
	for _, l := range splitLines(text) {
		nl := strings.HasSuffix(l, "\n")
		l = strings.TrimSuffix(l, "\n")
		b.WriteString(MaskLine(kind, l))
		if nl {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// MaskLine is MaskSecrets for one line without its newline.
func MaskLine(kind, line string) string {
	if kind == templates.KindPgpass {
		line = maskPgpass(line)
	}
	line = maskConfValue(line)
	line = maskConninfo(line)
	return uriPassword.ReplaceAllString(line, "${1}"+MaskedInline+"@")
}

// HasSecret reports whether masking changes text: its digest then is one
// of a password too, and is neither shown nor saved.
func HasSecret(kind, text string) bool { return MaskSecrets(kind, text) != text }

// uriPassword is scheme://user:PASSWORD@ (percent-encoded, so no @ or /).
var uriPassword = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^\s/@:]*:)[^\s/@]*@`)

// passwordKey is a libpq keyword ending in "password" and its "=".
var passwordKey = regexp.MustCompile(`(?i)password\s*=\s*`)

// maskConninfo masks the value after every password keyword, read as
// libpq's conninfo parser reads it: 'quoted' (\ escapes the next
// character) or bare up to white space (\ escapes there too).
func maskConninfo(s string) string {
	var b strings.Builder
	for {
		loc := passwordKey.FindStringIndex(s)
		if loc == nil {
			b.WriteString(s)
			return b.String()
		}
		start := loc[1]
		b.WriteString(s[:start])
		end := valueEnd(s, start)
		if end > start {
			b.WriteString(MaskedInline)
		}
		s = s[end:]
	}
}

// valueEnd is where the conninfo value starting at s[i] ends.
func valueEnd(s string, i int) int {
	if i >= len(s) {
		return i
	}
	if strings.HasPrefix(s[i:], MaskedInline) {
		return i + len(MaskedInline)
	}
	q := s[i]
	if q != '\'' && q != '"' {
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '\\':
				j++
			case ' ', '\t', '\r', '\n', '\f', '\v':
				return j
			}
		}
		return len(s)
	}
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			end := j + 1
			// A quote glued to more text is not the value's end the
			// parser would see (a doubled '' of an outer quoting layer,
			// say): the value's extent is unknown, mask the rest.
			if end < len(s) && !strings.ContainsRune(" \t'\",;)", rune(s[end])) {
				return len(s)
			}
			return end
		}
	}
	return len(s) // unterminated
}

// confAssign is the start of a postgresql.conf line with a quoted value.
var confAssign = regexp.MustCompile(`^\s*[A-Za-z_][A-Za-z0-9_.]*\s*=?\s*'`)

// maskConfValue masks a password inside the quoted value of a
// postgresql.conf line (a primary_conninfo whose password is quoted with
// doubled quotes inside the value, say): the value is unquoted as
// PostgreSQL does, masked as a conninfo and quoted again; the rest of the
// line is kept.
func maskConfValue(line string) string {
	m := confAssign.FindStringIndex(line)
	if m == nil || !passwordKey.MatchString(line) {
		return line
	}
	open := m[1] - 1
	val, n := unquoteConf(line[open:])
	if n < 0 {
		// Unterminated: mask everything after the keyword.
		loc := passwordKey.FindStringIndex(line)
		return line[:loc[1]] + MaskedInline
	}
	masked := maskConninfo(val)
	if masked == val {
		return line
	}
	return line[:open] + quoteConf(masked) + line[open+n:]
}

// quoteConf quotes a postgresql.conf value as templates do.
func quoteConf(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// maskPgpass masks the password field of a .pgpass entry
// (host:port:database:user:password, \ escapes : and \).
func maskPgpass(line string) string {
	t := strings.TrimSpace(line)
	if t == "" || t == Masked || t == MaskedInline || strings.HasPrefix(t, "#") || strings.HasSuffix(line, ":"+MaskedInline) {
		return line
	}
	colons := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case ':':
			colons++
			if colons == 4 {
				return line[:i+1] + MaskedInline
			}
		}
	}
	return MaskedInline // not an entry pgwarm can read: all of it may be secret
}

// masked is p with MaskSecrets applied to every string a person or a
// program reads from it; JSON and Human print only this. Compute already
// masks the contents: this catches whatever else a file's text reached.
func (p Plan) masked() Plan {
	m := func(s string) string { return MaskSecrets("", s) }
	out := p
	out.Inventory.Path = m(p.Inventory.Path)
	out.Warnings = maskAll(p.Warnings, m)
	out.Limit = maskAll(p.Limit, m)
	out.Hosts = make([]HostPlan, len(p.Hosts))
	for i, h := range p.Hosts {
		h.Name, h.Address = m(h.Name), m(h.Address)
		if h.Observed != nil {
			obs := make(map[string]string, len(h.Observed))
			for k, v := range h.Observed {
				obs[m(k)] = m(v)
			}
			h.Observed = obs
		}
		var changes []Change
		if h.Changes != nil {
			changes = make([]Change, len(h.Changes))
		}
		for j, c := range h.Changes {
			c.Path, c.Subject, c.Reason = m(c.Path), m(c.Subject), m(c.Reason)
			if !c.Sensitive {
				c.Before, c.After = MaskSecrets(c.Kind, c.Before), MaskSecrets(c.Kind, c.After)
			}
			changes[j] = c
		}
		h.Changes = changes
		out.Hosts[i] = h
	}
	return out
}

func maskAll(in []string, m func(string) string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = m(s)
	}
	return out
}
