package templates

import (
	"regexp"
	"strings"
)

var shSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shquote quotes s for /bin/sh when it needs it.
func shquote(s string) string {
	if shSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func joinArgs(args []string) string { return strings.Join(args, " ") }

// pgquote quotes a postgresql.conf value. Every value is quoted: PostgreSQL
// accepts quoted numbers and booleans, and it avoids guessing types.
func pgquote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// pgpassEscape escapes a .pgpass field.
func pgpassEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return strings.ReplaceAll(s, ":", `\:`)
}
