package ops

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/pgwarm/pgwarm/inventory"
	"gopkg.in/yaml.v3"
)

// SetRoles returns the inventory text with the role of each host in ch
// replaced. yaml.v3 finds the role scalars; only their bytes are replaced,
// so comments, order, quoting and layout stay exactly as the operator
// wrote them (re-encoding the node tree would reflow them). Pure.
func SetRoles(data []byte, ch map[string]inventory.Role) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not a YAML mapping")
	}
	var hosts *yaml.Node
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "hosts" {
			hosts = root.Content[i+1]
		}
	}
	if hosts == nil || hosts.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("no hosts list")
	}
	type edit struct {
		node *yaml.Node
		to   string
	}
	var edits []edit
	seen := map[string]bool{}
	for _, h := range hosts.Content {
		if h.Kind != yaml.MappingNode {
			continue
		}
		var name string
		var role *yaml.Node
		for i := 0; i+1 < len(h.Content); i += 2 {
			switch h.Content[i].Value {
			case "name":
				name = h.Content[i+1].Value
			case "role":
				role = h.Content[i+1]
			}
		}
		to, ok := ch[name]
		if !ok {
			continue
		}
		if role == nil || role.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%d:%d: host %s has no role to change", h.Line, h.Column, name)
		}
		seen[name] = true
		edits = append(edits, edit{role, string(to)})
	}
	for n := range ch {
		if !seen[n] {
			return nil, fmt.Errorf("host %s not found under hosts", n)
		}
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	// Right to left within a line, so earlier columns stay valid.
	sort.Slice(edits, func(i, j int) bool {
		if edits[i].node.Line != edits[j].node.Line {
			return edits[i].node.Line < edits[j].node.Line
		}
		return edits[i].node.Column > edits[j].node.Column
	})
	for _, e := range edits {
		n := e.node
		old, repl := n.Value, e.to
		switch n.Style {
		case yaml.DoubleQuotedStyle:
			old, repl = `"`+old+`"`, `"`+repl+`"`
		case yaml.SingleQuotedStyle:
			old, repl = "'"+old+"'", "'"+repl+"'"
		case 0, yaml.FlowStyle:
		default:
			return nil, fmt.Errorf("%d:%d: role written in a style pgwarm does not edit", n.Line, n.Column)
		}
		if n.Line < 1 || n.Line > len(lines) {
			return nil, fmt.Errorf("%d:%d: role out of range", n.Line, n.Column)
		}
		l := lines[n.Line-1]
		c := n.Column - 1 // yaml.v3 columns count from 1 (in bytes for ASCII)
		if c < 0 || c+len(old) > len(l) || string(l[c:c+len(old)]) != old {
			return nil, fmt.Errorf("%d:%d: role %q not where the parser says", n.Line, n.Column, n.Value)
		}
		nl := append(append(append([]byte{}, l[:c]...), repl...), l[c+len(old):]...)
		lines[n.Line-1] = nl
	}
	return bytes.Join(lines, nil), nil
}

// UpdateInventoryFile applies SetRoles to file, checks the result still
// loads as an inventory, and replaces the file atomically (same mode).
func UpdateInventoryFile(file string, ch map[string]inventory.Role) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, err := SetRoles(data, ch)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	if _, err := inventory.Parse(file, out, inventory.Options{Dir: filepath.Dir(abs)}); err != nil {
		return fmt.Errorf("%s: the updated inventory does not validate, left unchanged: %w", file, err)
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".pgwarm-inventory-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
