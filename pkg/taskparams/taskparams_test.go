package taskparams

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBoundKeepsWhatFits(t *testing.T) {
	in := map[string]string{"order": "A-1", "language": "de"}
	got, d := Bound(in)
	if d.Any() || len(got) != 2 || got["order"] != "A-1" || got["language"] != "de" {
		t.Fatalf("Bound = %v, %+v", got, d)
	}
	if got, d := Bound(nil); got != nil || d.Any() {
		t.Fatalf("Bound(nil) = %v, %+v", got, d)
	}
}

func TestBoundDropsTheExcess(t *testing.T) {
	in := map[string]string{
		"":                                 "empty name",
		strings.Repeat("k", MaxKeyBytes+1): "long name",
		"secret.crm_token":                 "x",
		"Secret.Other":                     "y",
		"long":                             strings.Repeat("é", MaxValueBytes), // 2 bytes each
	}
	for i := range MaxParams + 5 {
		in[fmt.Sprintf("p%03d", i)] = "v"
	}
	got, d := Bound(in)
	if len(got) != MaxParams {
		t.Fatalf("kept %d parameters, want %d", len(got), MaxParams)
	}
	if d.Params != 4+6 || d.Truncated != 1 {
		t.Fatalf("dropped %+v, want 10 parameters and 1 value", d)
	}
	v := got["long"]
	if len(v) > MaxValueBytes || !utf8.ValidString(v) || len(v) < MaxValueBytes-1 {
		t.Fatalf("long value cut to %d bytes (valid %v)", len(v), utf8.ValidString(v))
	}
	for k := range got {
		if strings.HasPrefix(strings.ToLower(k), SecretPrefix) || k == "" || len(k) > MaxKeyBytes {
			t.Fatalf("kept %q", k)
		}
	}
	if _, ok := got["p049"]; ok { // "long" sorts before the p-names, so p049 is the 51st
		t.Fatal("kept past the first 50 by name")
	}
}
