// Package taskparams bounds the snapshot of a session's parameters that a
// task carries to the agent's desk (workflow.v1.TaskRequested's
// parameters, distribution's task and TaskOffered): what the workflow
// collected, shown beside the chat.
package taskparams

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Limits of a task's parameters.
const (
	MaxParams     = 50
	MaxKeyBytes   = 64
	MaxValueBytes = 1024
	// SecretPrefix starts the names of tenant secrets; such a name never
	// leaves the runner (config refuses it as a parameter name).
	SecretPrefix = "secret."
)

// Dropped says what Bound left out or shortened, for a warning.
type Dropped struct {
	// Params: left out (past MaxParams, a name too long or empty, a
	// secret's name); Truncated: values cut to MaxValueBytes.
	Params, Truncated int
}

// Any reports whether anything was left out or shortened.
func (d Dropped) Any() bool { return d.Params > 0 || d.Truncated > 0 }

// Bound returns a copy of params within the limits: names that are empty,
// longer than MaxKeyBytes or start with SecretPrefix are left out, values
// are cut to MaxValueBytes (on a character boundary), and of the rest the
// first MaxParams by name are kept. Nil when nothing is left.
func Bound(params map[string]string) (map[string]string, Dropped) {
	var d Dropped
	names := make([]string, 0, len(params))
	for k := range params {
		if k == "" || len(k) > MaxKeyBytes || strings.HasPrefix(strings.ToLower(k), SecretPrefix) {
			d.Params++
			continue
		}
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) > MaxParams {
		d.Params += len(names) - MaxParams
		names = names[:MaxParams]
	}
	if len(names) == 0 {
		return nil, d
	}
	out := make(map[string]string, len(names))
	for _, k := range names {
		v := params[k]
		if len(v) > MaxValueBytes {
			v = cut(v, MaxValueBytes)
			d.Truncated++
		}
		out[k] = v
	}
	return out, d
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
