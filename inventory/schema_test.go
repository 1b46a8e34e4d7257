package inventory

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// validate checks doc against the subset of JSON Schema that Schema emits
// (type, properties, additionalProperties, required, enum, items, pattern),
// returning one message per violation.
func validate(schema map[string]any, doc any, path string) []string {
	var errs []string
	if enum, ok := schema["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(doc) {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v not in enum %v", path, doc, enum))
		}
	}
	switch schema["type"] {
	case "object":
		m, ok := doc.(map[string]any)
		if !ok {
			return append(errs, path+": not an object")
		}
		props, _ := schema["properties"].(map[string]any)
		for k, v := range m {
			sub, ok := props[k].(map[string]any)
			if !ok {
				if schema["additionalProperties"] == false {
					errs = append(errs, path+"."+k+": not allowed")
				}
				continue
			}
			errs = append(errs, validate(sub, v, path+"."+k)...)
		}
		req, _ := schema["required"].([]any)
		for _, r := range req {
			if _, ok := m[r.(string)]; !ok {
				errs = append(errs, path+": missing "+r.(string))
			}
		}
	case "array":
		l, ok := doc.([]any)
		if !ok {
			return append(errs, path+": not an array")
		}
		for i, v := range l {
			errs = append(errs, validate(schema["items"].(map[string]any), v, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		str, ok := doc.(string)
		if !ok {
			errs = append(errs, path+": not a string")
		}
		if p, _ := schema["pattern"].(string); ok && p != "" && !regexp.MustCompile(p).MatchString(str) {
			errs = append(errs, fmt.Sprintf("%s: %q does not match %s", path, str, p))
		}
	case "integer":
		if _, ok := doc.(int); !ok {
			errs = append(errs, path+": not an integer")
		}
	case "boolean":
		if _, ok := doc.(bool); !ok {
			errs = append(errs, path+": not a boolean")
		}
	}
	return errs
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	return s
}

func yamlDoc(t *testing.T, src []byte) any {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// Every inventory the loader accepts (the examples, the golden cases and
// one that uses every key) is valid against the schema.
func TestSchemaAcceptsWhatLoadAccepts(t *testing.T) {
	s := loadSchema(t)
	files, _ := filepath.Glob("../examples/*.yaml")
	golden, _ := filepath.Glob("../testdata/render/*/pgwarm.yaml")
	files = append(files, golden...)
	if len(files) < 40 {
		t.Fatalf("only %d inventories found", len(files))
	}
	docs := map[string][]byte{"full": []byte(full)}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[f] = b
	}
	for name, src := range docs {
		if _, err := Parse(name, src, Options{}); err != nil {
			t.Errorf("%s: loader rejects it: %v", name, err)
			continue
		}
		if errs := validate(s, yamlDoc(t, src), "$"); len(errs) > 0 {
			t.Errorf("%s: schema rejects what the loader accepts:\n%s", name, strings.Join(errs, "\n"))
		}
	}
}

// The schema rejects what the loader rejects for unknown keys, wrong
// types and bad enum values.
func TestSchemaRejects(t *testing.T) {
	s := loadSchema(t)
	for _, name := range []string{"unknown-key", "typo-key", "bad-mode", "bad-transport", "bad-compression", "bad-seed", "wrong-type", "password-in-file", "missing-archive", "bad-version",
		"archive-home-quote", "archive-home-metachar", "mount-point-space", "percent-in-path"} {
		src, err := os.ReadFile(filepath.Join("../testdata/inventory/broken", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if errs := validate(s, yamlDoc(t, src), "$"); len(errs) == 0 {
			t.Errorf("%s: schema accepts it", name)
		}
	}
}

// The schema lists exactly the keys the loader walks.
func TestSchemaListsEveryKey(t *testing.T) {
	s := loadSchema(t)
	var inSchema []string
	var walk func(m map[string]any, prefix string)
	walk = func(m map[string]any, prefix string) {
		if items, ok := m["items"].(map[string]any); ok {
			walk(items, prefix)
		}
		props, _ := m["properties"].(map[string]any)
		for k, v := range props {
			inSchema = append(inSchema, join(prefix, k))
			walk(v.(map[string]any), join(prefix, k))
		}
	}
	walk(s, "")
	sort.Strings(inSchema)
	keys := allKeys(reflectTypeInventory(), "")
	sort.Strings(keys)
	if strings.Join(inSchema, " ") != strings.Join(keys, " ") {
		t.Errorf("schema keys\n%v\nloader keys\n%v", inSchema, keys)
	}
}
