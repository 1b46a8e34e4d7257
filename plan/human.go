package plan

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxShown caps the text shown for one created file; the rest is counted.
const maxShown = 200

// palette is either all ANSI codes or all empty.
type palette struct{ bold, add, mod, del, run, hunk, dim, reset string }

func colours(on bool) palette {
	if !on {
		return palette{}
	}
	return palette{bold: "\x1b[1m", add: "\x1b[32m", mod: "\x1b[33m", del: "\x1b[31m", run: "\x1b[35m", hunk: "\x1b[36m", dim: "\x1b[2m", reset: "\x1b[0m"}
}

func (c palette) action(a Action) string {
	switch a {
	case Create:
		return c.add
	case Modify:
		return c.mod
	case Remove:
		return c.del
	}
	return c.run
}

// Human writes the plan for people: one section per host, one line per
// change, the content of created files and a unified diff of modified
// ones, secrets masked, and the summary line. colour adds ANSI colours.
func Human(w io.Writer, p Plan, colour bool) error {
	c := colours(colour)
	p = p.masked()
	var b strings.Builder
	for _, h := range p.Hosts {
		fmt.Fprintf(&b, "%s%s (%s, %s)%s", c.bold, h.Name, h.Role, h.Address, c.reset)
		if len(h.Changes) == 0 {
			b.WriteString(": no changes\n\n")
			continue
		}
		b.WriteString("\n")
		for _, ch := range h.Changes {
			writeChange(&b, c, ch)
		}
		b.WriteString("\n")
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(&b, "%sWarning:%s %s\n", c.mod, c.reset, warn)
	}
	if len(p.Warnings) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(Summary(p) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is the last line of the human plan.
func Summary(p Plan) string {
	n := p.Count()
	if p.Empty() {
		return "No changes. The hosts match the inventory."
	}
	return fmt.Sprintf("Plan: %d to add, %d to change, %d to destroy, %d %s.", n.Add, n.Change, n.Destroy, n.Actions, plural(n.Actions, "action", "actions"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

const indent = "      "

func writeChange(b *strings.Builder, c palette, ch Change) {
	title := ch.Path
	if ch.Action == Run {
		title = ch.Subject
	}
	var tags []string
	if ch.Kind != KindAction && ch.Kind != "" {
		tags = append(tags, ch.Kind)
	}
	if ch.Restart {
		tags = append(tags, "restart")
	} else if ch.Reload {
		tags = append(tags, "reload")
	}
	tag := ""
	if len(tags) > 0 {
		tag = "  " + c.dim + "[" + strings.Join(tags, ", ") + "]" + c.reset
	}
	fmt.Fprintf(b, "  %s%s %s%s%s\n", c.action(ch.Action), ch.Action, title, c.reset, tag)
	if ch.Reason != "" {
		fmt.Fprintf(b, "%s%s# %s%s\n", indent, c.dim, ch.Reason, c.reset)
	}
	if ch.BeforeMode != "" && ch.AfterMode != "" && ch.BeforeMode != ch.AfterMode {
		fmt.Fprintf(b, "%smode and owner: %s -> %s\n", indent, ch.BeforeMode, ch.AfterMode)
	}
	switch {
	case ch.Action == Run || ch.Action == Remove:
		return
	case ch.Sensitive:
		fmt.Fprintf(b, "%s%s\n", indent, Masked)
	case ch.Binary:
		fmt.Fprintf(b, "%s(binary, sha256 %s)\n", indent, ch.AfterHash)
	case ch.Action == Create && ch.After != "":
		writeBody(b, c, ch.Kind, ch.After)
	case ch.Action == Modify:
		writeDiff(b, c, ch.Kind, UnifiedDiff(ch.Before, ch.After))
	}
	if ch.AfterUnknown {
		fmt.Fprintf(b, "%s(parts known after apply: keys generated or read during apply)\n", indent)
	}
}

func writeBody(b *strings.Builder, c palette, kind, text string) {
	if !utf8.ValidString(text) {
		fmt.Fprintf(b, "%s(%d bytes, not text)\n", indent, len(text))
		return
	}
	lines := splitLines(text)
	for i, l := range lines {
		if i == maxShown {
			fmt.Fprintf(b, "%s%s… %d more lines%s\n", indent, c.dim, len(lines)-maxShown, c.reset)
			break
		}
		fmt.Fprintf(b, "%s%s+ %s%s\n", indent, c.add, MaskLine(kind, strings.TrimSuffix(l, "\n")), c.reset)
	}
}

func writeDiff(b *strings.Builder, c palette, kind, diff string) {
	for _, l := range splitLines(diff) {
		l = strings.TrimSuffix(l, "\n")
		col := ""
		switch {
		case strings.HasPrefix(l, "@@"):
			col = c.hunk
		case strings.HasPrefix(l, "+"):
			col = c.add
		case strings.HasPrefix(l, "-"):
			col = c.del
		}
		// Every content line is masked again on its own, after its
		// one-character prefix: no password reaches the screen.
		if l != "" && strings.ContainsRune("+- ", rune(l[0])) && l != "--- before" && l != "+++ after" {
			l = l[:1] + MaskLine(kind, l[1:])
		}
		fmt.Fprintf(b, "%s%s%s%s\n", indent, col, l, c.reset)
	}
}
