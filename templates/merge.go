package templates

import (
	"bytes"
	"fmt"
)

func beginLine(marker string) []byte { return []byte("# BEGIN pgwarm " + marker) }
func endLine(marker string) []byte   { return []byte("# END pgwarm " + marker) }

// blockSpan finds the managed block: the byte offsets of the start of its
// BEGIN line and the end of its END line (after the newline). ok is false
// when there is no BEGIN line; err reports a malformed file (BEGIN without
// END, END without BEGIN, or more than one block).
func blockSpan(existing []byte, marker string) (start, end int, ok bool, err error) {
	begin, fin := beginLine(marker), endLine(marker)
	start, end = -1, -1
	off := 0
	for off < len(existing) {
		nl := bytes.IndexByte(existing[off:], '\n')
		lineEnd := len(existing)
		next := len(existing)
		if nl >= 0 {
			lineEnd = off + nl
			next = lineEnd + 1
		}
		line := bytes.TrimRight(existing[off:lineEnd], " \t\r")
		switch {
		case bytes.Equal(line, begin):
			if start >= 0 {
				return 0, 0, false, fmt.Errorf("more than one %q line", begin)
			}
			start = off
		case bytes.Equal(line, fin):
			if start < 0 || end >= 0 {
				return 0, 0, false, fmt.Errorf("%q without a matching %q", fin, begin)
			}
			end = next
		}
		off = next
	}
	if start >= 0 && end < 0 {
		return 0, 0, false, fmt.Errorf("%q without a matching %q", begin, fin)
	}
	return start, end, start >= 0, nil
}

// CheckBlock reports whether existing's managed block for marker is well
// formed, so that MergeBlock can replace it. Plan refuses a file for which
// it returns an error rather than guess which lines belong to pgwarm.
func CheckBlock(existing []byte, marker string) error {
	_, _, _, err := blockSpan(existing, marker)
	return err
}

// MergeBlock returns existing with the block between "# BEGIN pgwarm
// <marker>" and "# END pgwarm <marker>" replaced by block, or with the block
// appended when there is none. Everything outside the markers is kept byte
// for byte, and merging the result again changes nothing. A malformed file
// (see CheckBlock) is returned unchanged.
func MergeBlock(existing []byte, marker string, block []byte) []byte {
	start, end, ok, err := blockSpan(existing, marker)
	if err != nil {
		return append([]byte(nil), existing...)
	}
	var b bytes.Buffer
	b.Write(beginLine(marker))
	b.WriteByte('\n')
	b.Write(block)
	if len(block) > 0 && block[len(block)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.Write(endLine(marker))
	b.WriteByte('\n')
	var out []byte
	if ok {
		out = append(out, existing[:start]...)
		out = append(out, b.Bytes()...)
		return append(out, existing[end:]...)
	}
	out = append(out, existing...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, b.Bytes()...)
}
