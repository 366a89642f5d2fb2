// Package workflowdef defines Switchboard's IM workflows: a definition is a
// directed graph of activities from the Nimbus IM catalogue (Catalogue), each
// with typed parameters and named branches. The config service validates
// definitions with Validate before saving them; the workflow-runner executes
// them with the same types and the typed accessors on Activity.
//
// A definition is plain data, friendly to JSON and YAML:
//
//	start: greet
//	activities:
//	  - id: greet
//	    type: message
//	    params: {text: "Hi! An agent will be with you shortly."}
//	    next: {next: hours}
//	  - id: hours
//	    type: check_opening_hours
//	    next: {open: queue, closed: closed}
//	  - id: queue
//	    type: queue_task
//	  - id: closed
//	    type: disconnect
//	    params: {text: "We are closed."}
package workflowdef

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Definition is a workflow graph.
type Definition struct {
	// Start is the id of the first activity.
	Start      string     `json:"start" yaml:"start"`
	Activities []Activity `json:"activities" yaml:"activities"`
}

// Activity is one node.
type Activity struct {
	ID    string `json:"id" yaml:"id"`
	Type  string `json:"type" yaml:"type"`
	Label string `json:"label,omitempty" yaml:"label,omitempty"`
	// Params hold strings, numbers, booleans, lists and objects as decoded
	// from JSON or YAML; durations are strings ("30s").
	Params map[string]any `json:"params,omitempty" yaml:"params,omitempty"`
	// Next maps a branch name to the id of the following activity.
	Next map[string]string `json:"next,omitempty" yaml:"next,omitempty"`
}

// Limits.
const (
	MaxActivities = 200
	maxIDLen      = 64
)

// Activity returns the activity with id.
func (d *Definition) Activity(id string) (*Activity, bool) {
	for i := range d.Activities {
		if d.Activities[i].ID == id {
			return &d.Activities[i], true
		}
	}
	return nil, false
}

// Problem is one reason a definition is invalid. Path is relative to the
// definition: "activities[2].params.text", "start".
type Problem struct {
	Path    string
	Message string
}

// ValidationError lists every problem found.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Path + ": " + p.Message
	}
	return "invalid workflow: " + strings.Join(parts, "; ")
}

type checker struct{ problems []Problem }

func (c *checker) add(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Validate checks the graph: a start activity, unique well-formed ids, known
// activity types, parameters of the right type, every branch of every
// activity leading to an existing activity, no unknown branches, every
// activity reachable from start, and no loop that could spin without
// waiting for anything. It returns a *ValidationError or nil.
//
// Validate does not check that service ids exist (the config service does)
// nor that activities are supported for IM (UnsupportedForIM): a workflow
// may be saved with them, it only cannot be selected for IM.
func Validate(d *Definition) error {
	c := &checker{}
	if len(d.Activities) == 0 {
		c.add("activities", "a workflow needs at least one activity")
	}
	if len(d.Activities) > MaxActivities {
		c.add("activities", "%d activities, at most %d allowed", len(d.Activities), MaxActivities)
	}
	index := map[string]int{}
	for i, a := range d.Activities {
		path := fmt.Sprintf("activities[%d]", i)
		switch {
		case a.ID == "":
			c.add(path+".id", "id is required")
		case !validID(a.ID):
			c.add(path+".id", "id %q must be 1-%d characters of letters, digits, '_' and '-'", a.ID, maxIDLen)
		default:
			if j, dup := index[a.ID]; dup {
				c.add(path+".id", "id %q is also used by activities[%d]", a.ID, j)
			} else {
				index[a.ID] = i
			}
		}
	}
	switch {
	case d.Start == "":
		c.add("start", "start is required: the id of the first activity")
	default:
		if _, ok := index[d.Start]; !ok {
			c.add("start", "start %q is not an activity of this workflow", d.Start)
		}
	}
	for i := range d.Activities {
		c.activity(fmt.Sprintf("activities[%d]", i), &d.Activities[i], index)
	}
	if len(c.problems) == 0 {
		c.graph(d, index)
	}
	if len(c.problems) > 0 {
		return &ValidationError{Problems: c.problems}
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (c *checker) activity(path string, a *Activity, index map[string]int) {
	t, ok := Lookup(a.Type)
	if !ok {
		if a.Type == "" {
			c.add(path+".type", "type is required")
		} else {
			c.add(path+".type", "unknown activity type %q", a.Type)
		}
		return
	}
	if len(a.Label) > 200 {
		c.add(path+".label", "label is longer than 200 characters")
	}
	if !t.AnyParams {
		for _, name := range sortedKeys(a.Params) {
			if _, ok := t.Param(name); !ok {
				c.add(path+".params."+name, "%s has no parameter %q", t.Name, name)
			}
		}
		for _, p := range t.Params {
			v, present := a.Params[p.Name]
			if !present || v == nil {
				if p.Required {
					c.add(path+".params."+p.Name, "%s needs parameter %q (%s)", t.Name, p.Name, p.Kind)
				}
				continue
			}
			if p.Needs != "" && a.Params[p.Needs] == nil {
				c.add(path+".params."+p.Name, "%s: %q needs parameter %q", t.Name, p.Name, p.Needs)
			}
			if msg := checkParam(p, v); msg != "" {
				c.add(path+".params."+p.Name, "%s: %s", t.Name, msg)
				continue
			}
			if p.Kind != KindHeaders && mentionsSecret(v) {
				c.add(path+".params."+p.Name, "%s: ${secret.…} may be used only in Web Request header values", t.Name)
			}
		}
	}
	outcomes := t.outcomesFor(a)
	for _, o := range sortedKeys(a.Next) {
		if !slices.Contains(outcomes, o) {
			if len(outcomes) == 0 {
				c.add(path+".next."+o, "%s ends the workflow and has no branches", t.Name)
			} else {
				c.add(path+".next."+o, "%s has no branch %q (branches: %s)", t.Name, o, strings.Join(outcomes, ", "))
			}
			continue
		}
		target := a.Next[o]
		if target == "" {
			c.add(path+".next."+o, "branch %q leads nowhere", o)
		} else if _, ok := index[target]; !ok {
			c.add(path+".next."+o, "branch %q leads to %q, which is not an activity of this workflow", o, target)
		}
	}
	for _, o := range outcomes {
		if _, ok := a.Next[o]; !ok && !t.optional(o) {
			c.add(path+".next."+o, "branch %q of %s must lead to an activity", o, t.Name)
		}
	}
}

// outcomesFor lists the branches activity a may wire (all but the
// optional ones must be).
func (t *ActivityType) outcomesFor(a *Activity) []string {
	var out []string
	if t.ChoiceParam != "" {
		if list, ok := a.Params[t.ChoiceParam].([]any); ok {
			for _, v := range list {
				if s, ok := v.(string); ok && s != "" && !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
	}
	for _, o := range t.Outcomes {
		if o.WhenParam != "" && a.Params[o.WhenParam] == nil {
			continue
		}
		out = append(out, o.Name)
	}
	return out
}

func (t *ActivityType) optional(outcome string) bool {
	for _, o := range t.Outcomes {
		if o.Name == outcome {
			return o.Optional
		}
	}
	return false
}

// Outcomes lists the branches of a, in catalogue order.
func (a *Activity) Outcomes() []string {
	t, ok := Lookup(a.Type)
	if !ok {
		return nil
	}
	return t.outcomesFor(a)
}

func checkParam(p Param, v any) string {
	switch p.Kind {
	case KindString, KindText, KindServiceID, KindParameterName, KindURL, KindEnum, KindSecretName, KindContentSID:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("must be a %s, got %s", p.Kind, typeName(v))
		}
		return checkString(p, s)
	case KindInt:
		n, ok := asInt(v)
		if !ok {
			return fmt.Sprintf("must be an integer, got %s", typeName(v))
		}
		if n < p.Min || n > p.Max {
			return fmt.Sprintf("%d is out of range [%d, %d]", n, p.Min, p.Max)
		}
	case KindDuration:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("must be a duration such as \"30s\", got %s", typeName(v))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Sprintf("%q is not a duration such as \"30s\" or \"5m\"", s)
		}
		if d < p.MinDuration || d > p.MaxDuration {
			return fmt.Sprintf("%s is out of range [%s, %s]", d, p.MinDuration, p.MaxDuration)
		}
	case KindBool:
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("must be true or false, got %s", typeName(v))
		}
	case KindStringList:
		list, ok := v.([]any)
		if !ok {
			return fmt.Sprintf("must be a list of strings, got %s", typeName(v))
		}
		if len(list) == 0 {
			return "must not be empty"
		}
		if p.MaxLen > 0 && len(list) > p.MaxLen {
			return fmt.Sprintf("has %d elements, at most %d allowed", len(list), p.MaxLen)
		}
		seen := map[string]bool{}
		for i, e := range list {
			s, ok := e.(string)
			if !ok || strings.TrimSpace(s) == "" {
				return fmt.Sprintf("element %d must be a non-empty string", i)
			}
			if seen[s] {
				return fmt.Sprintf("element %d repeats %q", i, s)
			}
			seen[s] = true
		}
	case KindStringMap, KindHeaders, KindParameterMap, KindTemplateVariables:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Sprintf("must be an object of strings, got %s", typeName(v))
		}
		if p.MaxLen > 0 && len(m) > p.MaxLen {
			return fmt.Sprintf("has %d entries, at most %d allowed", len(m), p.MaxLen)
		}
		for _, k := range sortedKeys(m) {
			s, ok := m[k].(string)
			if !ok {
				return fmt.Sprintf("value of %q must be a string", k)
			}
			if msg := checkMapEntry(p.Kind, k, s); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// Headers a Web Request cannot set: the HTTP client owns them.
var reservedHeaders = []string{"connection", "content-length", "host", "transfer-encoding"}

func checkMapEntry(kind ParamKind, k, v string) string {
	switch kind {
	case KindHeaders:
		if !validToken(k) {
			return fmt.Sprintf("%q is not an HTTP header name", k)
		}
		if slices.Contains(reservedHeaders, strings.ToLower(k)) {
			return fmt.Sprintf("header %q cannot be set", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Sprintf("value of header %q must be one line", k)
		}
		if len(v) > 1024 {
			return fmt.Sprintf("value of header %q is longer than 1024 characters", k)
		}
		for _, m := range secretRefRe.FindAllStringSubmatch(v, -1) {
			if !ValidSecretName(m[1]) {
				return fmt.Sprintf("value of header %q references %q, which is not a secret name (a-z, 0-9 and '_', starting with a letter, at most 63)", k, "${secret."+m[1]+"}")
			}
		}
	case KindTemplateVariables:
		if !templateVarRe.MatchString(k) {
			return fmt.Sprintf("%q is not a template variable name (1-64 letters, digits and '_')", k)
		}
		if strings.TrimSpace(v) == "" {
			return fmt.Sprintf("value of %q must not be empty", k)
		}
		if n := len([]rune(v)); n > maxTemplateValue {
			return fmt.Sprintf("value of %q is longer than %d characters", k, maxTemplateValue)
		}
	case KindParameterMap:
		if !validParamName(k) {
			return fmt.Sprintf("%q is not a parameter name (letters, digits, '_' and '.', not starting with a digit or \"secret.\")", k)
		}
		if !ValidJSONPath(v) {
			return fmt.Sprintf("%q (for %q) is not a JSON path such as data.booking.status or items.0.id", v, k)
		}
	}
	return ""
}

func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// ValidJSONPath reports whether path is dot-separated non-empty keys
// (at most 16, 256 characters in all).
func ValidJSONPath(path string) bool {
	if path == "" || len(path) > 256 || strings.ContainsAny(path, " \t\r\n") {
		return false
	}
	parts := strings.Split(path, ".")
	if len(parts) > 16 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
	}
	return true
}

func checkString(p Param, s string) string {
	max := p.MaxLen
	if max == 0 {
		max = 256
		if p.Kind == KindText {
			max = maxText
		}
	}
	if len([]rune(s)) > max {
		return fmt.Sprintf("is longer than %d characters", max)
	}
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	switch p.Kind {
	case KindEnum:
		if !slices.Contains(p.Values, s) {
			return fmt.Sprintf("%q is not one of %s", s, strings.Join(p.Values, ", "))
		}
	case KindParameterName:
		if !validParamName(s) {
			return fmt.Sprintf("%q is not a parameter name (letters, digits, '_' and '.', not starting with a digit or \"secret.\")", s)
		}
	case KindURL:
		if !(strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")) || strings.ContainsAny(s, " \t\n") {
			return fmt.Sprintf("%q is not an absolute http(s) URL", s)
		}
	case KindServiceID:
		if !validID(s) {
			return fmt.Sprintf("%q is not a service id", s)
		}
	case KindContentSID:
		if !contentSIDRe.MatchString(s) {
			return fmt.Sprintf("%q is not a Twilio Content template SID (HX followed by 32 hex digits)", s)
		}
	case KindSecretName:
		if !ValidSecretName(s) {
			return fmt.Sprintf("%q is not a secret name (a-z, 0-9 and '_', starting with a letter, at most 63)", s)
		}
	}
	if p.HTTPSOnly {
		u, err := url.Parse(s)
		switch {
		case !strings.HasPrefix(s, "https://") || err != nil || u.Host == "":
			return fmt.Sprintf("%q is not an absolute https URL", s)
		case strings.Contains(s, "${"):
			return "must not contain ${…} placeholders"
		case u.User != nil:
			return "must not contain user credentials; the requests are signed with the secret"
		}
	}
	return ""
}

var (
	contentSIDRe  = regexp.MustCompile(`^HX[0-9a-fA-F]{32}$`)
	templateVarRe = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
)

// maxTemplateValue bounds one content variable's value as written (it may
// grow by its ${parameter} values when sent).
const maxTemplateValue = 1024

// SecretPrefix starts a reference to a tenant secret: ${secret.NAME}.
const SecretPrefix = "secret."

var secretRefRe = regexp.MustCompile(`\$\{secret\.([^}]*)\}`)

// ValidSecretName reports whether s can name a tenant secret.
func ValidSecretName(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// mentionsSecret reports whether a parameter value (a string, or lists and
// objects of them) references a tenant secret.
func mentionsSecret(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Contains(x, "${"+SecretPrefix)
	case []any:
		return slices.ContainsFunc(x, mentionsSecret)
	case map[string]any:
		for k, e := range x {
			if mentionsSecret(k) || mentionsSecret(e) {
				return true
			}
		}
	}
	return false
}

// validParamName: letters, digits, '_' and '.', not starting with a digit
// or '.'; "secret." starts references to tenant secrets, not parameters.
func validParamName(s string) bool {
	if strings.HasPrefix(s, SecretPrefix) {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case (r >= '0' && r <= '9' || r == '.') && i > 0:
		default:
			return false
		}
	}
	return s != "" && len(s) <= 64
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int32, int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// graph checks reachability and loops; ids and branches are known valid.
func (c *checker) graph(d *Definition, index map[string]int) {
	succ := make([][]int, len(d.Activities))
	for i, a := range d.Activities {
		for _, o := range sortedKeys(a.Next) {
			succ[i] = append(succ[i], index[a.Next[o]])
		}
	}
	seen := make([]bool, len(d.Activities))
	stack := []int{index[d.Start]}
	seen[stack[0]] = true
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, s := range succ[n] {
			if !seen[s] {
				seen[s] = true
				stack = append(stack, s)
			}
		}
	}
	for i, ok := range seen {
		if !ok {
			c.add(fmt.Sprintf("activities[%d]", i), "activity %q is not reachable from start %q", d.Activities[i].ID, d.Start)
		}
	}
	for _, scc := range components(succ) {
		loop := len(scc) > 1 || slices.Contains(succ[scc[0]], scc[0])
		if !loop {
			continue
		}
		waits := false
		for _, n := range scc {
			t, _ := Lookup(d.Activities[n].Type)
			waits = waits || t.Waits
		}
		if !waits {
			ids := make([]string, len(scc))
			for i, n := range scc {
				ids[i] = d.Activities[n].ID
			}
			slices.Sort(ids)
			c.add(fmt.Sprintf("activities[%d]", slices.Min(scc)), "loop through %s never waits for the customer, an agent or a timer and would spin forever", strings.Join(ids, ", "))
		}
	}
}

// components returns the strongly connected components (Tarjan).
func components(succ [][]int) [][]int {
	n := len(succ)
	idx, low := make([]int, n), make([]int, n)
	on := make([]bool, n)
	for i := range idx {
		idx[i] = -1
	}
	var stack []int
	var out [][]int
	counter := 0
	var visit func(v int)
	visit = func(v int) {
		idx[v], low[v] = counter, counter
		counter++
		stack = append(stack, v)
		on[v] = true
		for _, w := range succ[v] {
			if idx[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], idx[w])
			}
		}
		if low[v] == idx[v] {
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			out = append(out, comp)
		}
	}
	for v := range n {
		if idx[v] < 0 {
			visit(v)
		}
	}
	return out
}

// Unsupported is an activity a workflow uses that IM does not support.
type Unsupported struct {
	ID   string
	Type string
	Name string
}

func (u Unsupported) String() string { return fmt.Sprintf("%s (activity %q)", u.Name, u.ID) }

// UnsupportedForIM lists the activities of d that are not supported for
// Instant Messaging, in definition order.
func UnsupportedForIM(d *Definition) []Unsupported {
	var out []Unsupported
	for _, a := range d.Activities {
		if t, ok := Lookup(a.Type); ok && !t.IM {
			out = append(out, Unsupported{ID: a.ID, Type: a.Type, Name: t.Name})
		}
	}
	return out
}

// ServiceRefs lists the service ids the activities of d name, with their
// paths, so the config service can check they exist.
func ServiceRefs(d *Definition) map[string]string {
	out := map[string]string{}
	for i, a := range d.Activities {
		t, ok := Lookup(a.Type)
		if !ok || t.AnyParams {
			continue
		}
		for _, p := range t.Params {
			if s, ok := a.Params[p.Name].(string); ok && p.Kind == KindServiceID {
				out[fmt.Sprintf("activities[%d].params.%s", i, p.Name)] = s
			}
		}
	}
	return out
}

// Default is the built-in workflow of a service without one: accept, send
// the service's greeting (when it has one), queue the task.
func Default(greeting string) *Definition {
	d := &Definition{Start: "accept"}
	if greeting == "" {
		d.Activities = []Activity{
			{ID: "accept", Type: "accept", Next: map[string]string{OutcomeNext: "queue"}},
			{ID: "queue", Type: "queue_task"},
		}
		return d
	}
	d.Activities = []Activity{
		{ID: "accept", Type: "accept", Next: map[string]string{OutcomeNext: "greet"}},
		{ID: "greet", Type: "message", Params: map[string]any{"text": greeting}, Next: map[string]string{OutcomeNext: "queue"}},
		{ID: "queue", Type: "queue_task"},
	}
	return d
}

// StringParam returns the string parameter name ("" when unset).
func (a *Activity) StringParam(name string) string {
	s, _ := a.Params[name].(string)
	return s
}

// IntParam returns the integer parameter name, or def when unset.
func (a *Activity) IntParam(name string, def int64) int64 {
	if n, ok := asInt(a.Params[name]); ok {
		return n
	}
	return def
}

// DurationParam returns the duration parameter name, or def when unset.
func (a *Activity) DurationParam(name string, def time.Duration) time.Duration {
	if s, ok := a.Params[name].(string); ok {
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
	}
	return def
}

// BoolParam returns the boolean parameter name, or def when unset.
func (a *Activity) BoolParam(name string, def bool) bool {
	if b, ok := a.Params[name].(bool); ok {
		return b
	}
	return def
}

// StringsParam returns the list parameter name.
func (a *Activity) StringsParam(name string) []string {
	list, _ := a.Params[name].([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// StringMapParam returns the object parameter name (strings, headers,
// parameter maps).
func (a *Activity) StringMapParam(name string) map[string]string {
	m, _ := a.Params[name].(map[string]any)
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// FromProto converts the wire form. Numbers arrive as float64.
func FromProto(p *configv1.WorkflowDefinition) *Definition {
	d := &Definition{Start: p.GetStart()}
	for _, a := range p.GetActivities() {
		act := Activity{ID: a.GetId(), Type: a.GetType(), Label: a.GetLabel()}
		if a.GetParams() != nil && len(a.GetParams().GetFields()) > 0 {
			act.Params = a.GetParams().AsMap()
		}
		if len(a.GetNext()) > 0 {
			act.Next = make(map[string]string, len(a.GetNext()))
			for k, v := range a.GetNext() {
				act.Next[k] = v
			}
		}
		d.Activities = append(d.Activities, act)
	}
	return d
}

// ToProto converts to the wire form. It fails only for parameter values
// that have no JSON form.
func ToProto(d *Definition) (*configv1.WorkflowDefinition, error) {
	p := &configv1.WorkflowDefinition{Start: d.Start}
	for i, a := range d.Activities {
		pa := &configv1.WorkflowActivity{Id: a.ID, Type: a.Type, Label: a.Label}
		if len(a.Params) > 0 {
			s, err := structpb.NewStruct(normalize(a.Params).(map[string]any))
			if err != nil {
				return nil, fmt.Errorf("activities[%d].params: %w", i, err)
			}
			pa.Params = s
		}
		if len(a.Next) > 0 {
			pa.Next = make(map[string]string, len(a.Next))
			for k, v := range a.Next {
				pa.Next[k] = v
			}
		}
		p.Activities = append(p.Activities, pa)
	}
	return p, nil
}

// normalize turns YAML's map[any]any and typed slices into JSON shapes.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	}
	return v
}
