package inventory

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks YAML nodes against the Go structs of this package. It is
// written by hand (not yaml.Unmarshal) so that it can report every unknown
// key, wrong type and bad value with its line and column, not just the
// first one.
type decoder struct {
	file     string
	problems Problems
	nodes    map[string]*yaml.Node // value node per key path, for cross-checks
	failed   map[string]bool       // key paths whose value was rejected
}

func (d *decoder) addf(n *yaml.Node, format string, args ...any) {
	p := Problem{File: d.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// fail records a problem with the value at path.
func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	d.failed[path] = true
	shown := path
	if oneLine(path) != "" {
		shown = strconv.Quote(path) // a key with a newline must not forge a line of its own
	}
	d.addf(n, "%s: %s", shown, fmt.Sprintf(format, args...))
}

var (
	versionType  = reflect.TypeFor[Version]()
	durationType = reflect.TypeFor[Duration]()
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int":
		return "a number"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// decode fills v from n. field carries the struct tags of v's field (enum).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, field reflect.StructField) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.nodes[path] = n
	t := v.Type()
	switch {
	case t == versionType:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float" && n.ShortTag() != "!!str") {
			d.fail(path, n, "expected a major version like 9.6 or 15, got %s", kindName(n))
			return
		}
		ver, err := ParseVersion(n.Value)
		if err != nil {
			d.fail(path, n, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(ver))
		return
	case t == durationType:
		dur, err := time.ParseDuration(n.Value)
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
			d.fail(path, n, "expected a duration with a unit, like %ss or 10m, got a bare number", n.Value)
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || err != nil {
			d.fail(path, n, "expected a duration like 10m or 60s, got %s", kindName(n))
			return
		}
		if dur < 0 {
			d.fail(path, n, "must not be negative")
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.fail(path, n, "expected a string, got %s", kindName(n))
			return
		}
		if enum := field.Tag.Get("enum"); enum != "" {
			allowed := strings.Split(enum, "|")
			if !contains(allowed, n.Value) {
				msg := fmt.Sprintf("%q is not one of %s", n.Value, strings.Join(allowed, ", "))
				if s := suggest(n.Value, allowed); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				d.fail(path, n, "%s", msg)
				return
			}
		}
		v.SetString(n.Value)
	case reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil {
			d.fail(path, n, "expected an integer, got %s", kindName(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || err != nil {
			d.fail(path, n, "expected true or false, got %s", kindName(n))
			return
		}
		v.SetBool(b)
	case reflect.Map: // map[string]string: postgres.settings
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(path, n, "expected a mapping of setting names to values, got %s", kindName(n))
			return
		}
		m := reflect.MakeMap(t)
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				d.fail(kp, k, "duplicate key (first at line %d)", first.Line)
				continue
			}
			seen[k.Value] = k
			d.nodes[kp] = val
			if val.Kind != yaml.ScalarNode || isNull(val) {
				d.fail(kp, val, "expected a string, number or boolean, got %s", kindName(val))
				continue
			}
			m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(val.Value))
		}
		v.Set(m)
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path, field)
		v.Set(p)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), reflect.StructField{})
		}
		v.Set(s)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	default:
		panic("inventory: no decoder for " + t.String()) // a programming error in this package
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if isNull(n) && path != "" {
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	}
	if n.Kind != yaml.MappingNode {
		where := path
		if where == "" {
			where = "inventory"
		}
		d.fail(where, n, "expected a mapping, got %s", kindName(n))
		return
	}
	keys := yamlKeys(t)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(kp, k, "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		idx, ok := keys[k.Value]
		if !ok {
			if s := d.unknownKey(k, kp, t); s != "" {
				seen[s] = k // a typo of a required key: one message, not two
			}
			continue
		}
		f := t.Field(idx)
		d.decode(val, v.Field(idx), kp, f)
	}
	for _, f := range reflect.VisibleFields(t) {
		name := yamlName(f)
		if name == "" || f.Tag.Get("required") != "true" {
			continue
		}
		if _, ok := seen[name]; !ok {
			where := path
			if where == "" {
				where = "inventory"
			}
			d.failed[join(path, name)] = true
			d.addf(n, "%s: missing required key %q", where, name)
		}
	}
}

// unknownKey reports k and returns the key it probably meant, if any.
func (d *decoder) unknownKey(k *yaml.Node, path string, t reflect.Type) string {
	if k.Value == "password" {
		d.fail(path, k, "secrets never go in the inventory: put the password in an environment variable and name it with password_env")
		return ""
	}
	names := make([]string, 0)
	for _, f := range reflect.VisibleFields(t) {
		if n := yamlName(f); n != "" {
			names = append(names, n)
		}
	}
	msg := "unknown key"
	s := suggest(k.Value, names)
	if s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		sort.Strings(names)
		msg += " (expected one of " + strings.Join(names, ", ") + ")"
	}
	d.fail(path, k, "%s", msg)
	return s
}

// yamlName is a field's key, "" for fields not in the file.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

func yamlKeys(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		if n := yamlName(t.Field(i)); n != "" {
			m[n] = i
		}
	}
	return m
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the candidate closest to s when it is close enough to be
// a typo: an edit distance of at most 2, or a third of the word.
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		dist := levenshtein(strings.ToLower(s), c)
		if dist < bestD {
			best, bestD = c, dist
		}
	}
	limit := max(2, len(best)/3)
	if bestD <= limit && bestD < len(best) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
