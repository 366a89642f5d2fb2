package secretbox

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func keyOf(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpen(t *testing.T) {
	kr, err := New(keyOf(1))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := kr.Seal("s3cret-token-value", "connector/demo/a#auth_token")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "s3cret") {
		t.Errorf("sealed value %q contains the plaintext", sealed)
	}
	got, err := kr.Open(sealed, "connector/demo/a#auth_token")
	if err != nil || got != "s3cret-token-value" {
		t.Errorf("Open = %q, %v; want the plaintext", got, err)
	}
	if _, err := kr.Open(sealed, "connector/demo/b#auth_token"); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with other aad: err = %v, want ErrOpen", err)
	}
	if s, _ := kr.Seal("", "x"); s != "" {
		t.Errorf("Seal(\"\") = %q, want empty", s)
	}
}

func TestRotation(t *testing.T) {
	old, _ := New(keyOf(1))
	sealed, _ := old.Seal("value", "aad")

	rotated, err := New(keyOf(2), keyOf(1))
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Current(sealed) {
		t.Errorf("Current(old value) = true after rotation, want false")
	}
	got, err := rotated.Open(sealed, "aad")
	if err != nil || got != "value" {
		t.Fatalf("rotated keyring Open(old value) = %q, %v", got, err)
	}
	resealed, _ := rotated.Seal(got, "aad")
	if !rotated.Current(resealed) {
		t.Errorf("Current(resealed) = false, want true")
	}
	retired, _ := New(keyOf(2))
	if _, err := retired.Open(sealed, "aad"); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with the old key retired: err = %v, want ErrOpen", err)
	}
	if got, err := retired.Open(resealed, "aad"); err != nil || got != "value" {
		t.Errorf("Open(resealed) after retiring old key = %q, %v", got, err)
	}
}

func TestParse(t *testing.T) {
	secretHex := strings.Repeat("ab", 32)
	if _, err := Parse(secretHex + "," + strings.Repeat("cd", 32)); err != nil {
		t.Errorf("Parse(two keys): %v", err)
	}
	for _, bad := range []string{"", "zz", strings.Repeat("ab", 16), secretHex + "," + secretHex} {
		_, err := Parse(bad)
		if err == nil {
			t.Errorf("Parse(%q) = nil error, want one", bad)
			continue
		}
		if strings.Contains(err.Error(), "abab") {
			t.Errorf("Parse error %q reveals key material", err)
		}
	}
}

func TestHint(t *testing.T) {
	for in, want := range map[string]string{"": "", "short": "…", "0123456789abcdef": "…cdef"} {
		if got := Hint(in); got != want {
			t.Errorf("Hint(%q) = %q, want %q", in, got, want)
		}
	}
}
