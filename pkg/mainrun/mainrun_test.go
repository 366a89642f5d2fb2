package mainrun

import (
	"strings"
	"testing"
	"time"
)

func TestEnvCollectsEveryProblem(t *testing.T) {
	vars := map[string]string{"A": "x", "N": "nope", "D": "5", "B": "maybe", "L": " a, b ,,c ", "OK": "90s"}
	e := &Env{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	if got := e.String("A", "d"); got != "x" {
		t.Errorf("String = %q", got)
	}
	if got := e.String("MISSING", "d"); got != "d" {
		t.Errorf("String default = %q", got)
	}
	if got := e.Duration("OK", 0); got != 90*time.Second {
		t.Errorf("Duration = %v", got)
	}
	e.Int("N", 1)
	e.Duration("D", time.Second)
	e.Bool("B", false)
	if got := e.List("L", nil); len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Errorf("List = %q", got)
	}
	err := e.Err()
	if err == nil {
		t.Fatal("Err() = nil, want three problems")
	}
	for _, want := range []string{`N="nope"`, `D="5"`, `B="maybe"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %q, missing %s", err, want)
		}
	}
}
