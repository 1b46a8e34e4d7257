package archive

import (
	"testing"

	"github.com/pgwarm/pgwarm/wal/segname"
)

// ParseHistory splits fields with strings.Fields (unicode.IsSpace), but
// PostgreSQL's readTimeLineHistory uses sscanf("%u\t%X/%X") whose
// whitespace is C isspace (ASCII only). A UTF-8 NBSP (or U+0085, U+2028,
// U+3000 ...) between the fields is accepted here and is a FATAL
// "syntax error in history file" there.
func TestHistoryFieldsAreCSeparated(t *testing.T) {
	n := segname.Name{Kind: segname.History, TLI: 2}
	for _, sep := range []string{"\u00a0", "\u0085", "\u2028", "\u3000"} {
		content := []byte("1" + sep + "0/3000000\tno recovery target specified\n")
		if err := CheckContentKind(n, content); err == nil {
			t.Errorf("history with %q between parent and switch point accepted; PostgreSQL's sscanf stops with FATAL on it", sep)
		}
	}
}
