package contract

import (
	"encoding/json"
	"fmt"
	"strings"
)

// prune keeps the paths starting with one of prefixes and the components
// they reach through $ref, dropping the rest of an OpenAPI document.
func prune(doc []byte, prefixes []string) ([]byte, error) {
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	paths, _ := root["paths"].(map[string]any)
	kept := map[string]any{}
	for p, item := range paths {
		for _, prefix := range prefixes {
			if strings.HasPrefix(p, prefix) {
				kept[p] = item
				break
			}
		}
	}
	root["paths"] = kept

	components, _ := root["components"].(map[string]any)
	reached := map[string]map[string]bool{}
	var queue []any
	queue = append(queue, kept)
	for len(queue) > 0 {
		n := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		switch v := n.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				section, name, ok := splitRef(ref)
				if ok && !reached[section][name] {
					if reached[section] == nil {
						reached[section] = map[string]bool{}
					}
					reached[section][name] = true
					if sec, ok := components[section].(map[string]any); ok {
						queue = append(queue, sec[name])
					}
				}
			}
			for _, child := range v {
				queue = append(queue, child)
			}
		case []any:
			queue = append(queue, v...)
		}
	}
	for section, raw := range components {
		if section == "securitySchemes" {
			continue
		}
		sec, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		for name := range sec {
			if !reached[section][name] {
				delete(sec, name)
			}
		}
	}
	return json.Marshal(root)
}

// splitRef splits "#/components/schemas/name" into section and name.
func splitRef(ref string) (section, name string, ok bool) {
	rest, ok := strings.CutPrefix(ref, "#/components/")
	if !ok {
		return "", "", false
	}
	section, name, ok = strings.Cut(rest, "/")
	name = strings.NewReplacer("~1", "/", "~0", "~").Replace(name)
	return section, name, ok
}
