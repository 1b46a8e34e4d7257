package host

import "strings"

// Quote returns s as one POSIX shell word: single-quoted, with embedded
// single quotes closed, escaped and reopened. Safe for any byte string
// except NUL.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=:@%+,", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes every argument and joins them with spaces.
func Join(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// Script is the command that runs body, a POSIX sh script, with args as
// its positional parameters ($1 ...): values reach the script as
// arguments, never as shell text spliced into it. $0 is "pgwarm".
func Script(body string, args ...string) string {
	return "sh -c " + Quote(body) + " pgwarm " + Join(args...)
}
