package inventory

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// Schema returns a JSON Schema (draft 2020-12) of the inventory, generated
// from the same struct definitions and tags the loader walks, so the two
// cannot drift apart.
func Schema() ([]byte, error) {
	s := schemaFor(reflect.TypeFor[Inventory](), reflect.StructField{}, "")
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://github.com/pgwarm/pgwarm/inventory.schema.json"
	s["title"] = "pgwarm inventory"
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // descriptions contain <cluster>
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// schemaFor describes a value of type t in field f at key (as in
// fieldRules: hosts[].name).
func schemaFor(t reflect.Type, f reflect.StructField, key string) map[string]any {
	s := map[string]any{}
	if doc := f.Tag.Get("doc"); doc != "" {
		s["description"] = doc
	}
	switch {
	case t == versionType:
		var enum []any
		for _, v := range Supported() {
			if v < 100000 {
				enum = append(enum, 9.6)
			} else {
				enum = append(enum, int(v/10000))
			}
		}
		s["enum"] = enum
		return s
	case t == durationType:
		s["type"] = "string"
		s["pattern"] = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
		return s
	}
	switch t.Kind() {
	case reflect.String:
		s["type"] = "string"
		if enum := f.Tag.Get("enum"); enum != "" {
			s["enum"] = strings.Split(enum, "|")
		}
		if r, ok := ruleFor(key); ok && r.kind.pattern != "" {
			s["pattern"] = r.kind.pattern
		}
	case reflect.Int:
		s["type"] = "integer"
	case reflect.Bool:
		s["type"] = "boolean"
	case reflect.Map:
		s["type"] = "object"
		s["additionalProperties"] = map[string]any{"type": []string{"string", "number", "boolean"}}
	case reflect.Pointer:
		inner := schemaFor(t.Elem(), f, key)
		return inner
	case reflect.Slice:
		s["type"] = "array"
		s["items"] = schemaFor(t.Elem(), reflect.StructField{}, key+"[]")
	case reflect.Struct:
		s["type"] = "object"
		s["additionalProperties"] = false
		props := map[string]any{}
		var required []string
		for _, sf := range reflect.VisibleFields(t) {
			name := yamlName(sf)
			if name == "" {
				continue
			}
			props[name] = schemaFor(sf.Type, sf, join(key, name))
			if sf.Tag.Get("required") == "true" {
				required = append(required, name)
			}
		}
		s["properties"] = props
		if len(required) > 0 {
			s["required"] = required
		}
	}
	return s
}
