package templates

import (
	"strings"
	"testing"
)

func TestMergeBlock(t *testing.T) {
	block := []byte("host replication r 10.0.0.2/32 md5\n")
	want := "# BEGIN pgwarm replication\nhost replication r 10.0.0.2/32 md5\n# END pgwarm replication\n"
	for name, tc := range map[string]struct{ in, out string }{
		"empty":           {"", want},
		"append":          {"local all all peer\n", "local all all peer\n" + want},
		"no final ln":     {"local all all peer", "local all all peer\n" + want},
		"replace keeps":   {"a\n# BEGIN pgwarm replication\nold\nlines\n# END pgwarm replication\nb\n", "a\n" + want + "b\n"},
		"end at eof":      {"a\n# BEGIN pgwarm replication\nold\n# END pgwarm replication", "a\n" + want},
		"other marker":    {"# BEGIN pgwarm other\nx\n# END pgwarm other\n", "# BEGIN pgwarm other\nx\n# END pgwarm other\n" + want},
		"crlf kept":       {"a\r\nb\r\n", "a\r\nb\r\n" + want},
		"malformed begin": {"# BEGIN pgwarm replication\nx\n", "# BEGIN pgwarm replication\nx\n"},
	} {
		t.Run(name, func(t *testing.T) {
			got := string(MergeBlock([]byte(tc.in), "replication", block))
			if got != tc.out {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.out)
			}
			if again := string(MergeBlock([]byte(got), "replication", block)); again != got {
				t.Errorf("not idempotent:\n%q", again)
			}
		})
	}
}

func TestCheckBlock(t *testing.T) {
	for in, bad := range map[string]bool{
		"":                                     false,
		"# BEGIN pgwarm m\n# END pgwarm m\n":   false,
		"# BEGIN pgwarm m\n":                   true,
		"# END pgwarm m\n":                     true,
		"# BEGIN pgwarm m\n# BEGIN pgwarm m\n": true,
		"# BEGIN pgwarm mm\n# END pgwarm mm\n": false,
		"# BEGIN pgwarm m\n# END pgwarm m\n# END pgwarm m\n": true,
	} {
		if err := CheckBlock([]byte(in), "m"); (err != nil) != bad {
			t.Errorf("%q: err = %v", in, err)
		}
	}
	// A malformed file must never lose a byte.
	in := "keep\n# END pgwarm m\nkeep too\n"
	if got := string(MergeBlock([]byte(in), "m", []byte("x\n"))); got != in || !strings.Contains(got, "keep too") {
		t.Errorf("malformed file changed: %q", got)
	}
}
