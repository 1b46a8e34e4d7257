package templates

import "strings"

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
