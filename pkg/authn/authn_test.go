package authn

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestMintVerifyAndRotation(t *testing.T) {
	old, err := NewKeys(key(1))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := old.Mint(Claims{Tenant: "acme", Roles: []string{RoleAgent}, RegisteredClaims: jwt.RegisteredClaims{Subject: "u1"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := NewKeys(key(2), key(1)) // new key signs, old still verifies
	c, err := rotated.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(old token) after rotation: %v", err)
	}
	if c.Tenant != "acme" || c.Subject != "u1" || !c.Has(RoleAgent) {
		t.Errorf("claims = %+v", c)
	}
	if !c.CanAccessTenant("acme") || c.CanAccessTenant("other") {
		t.Errorf("tenant access wrong for %+v", c)
	}
	onlyNew, _ := NewKeys(key(2))
	if _, err := onlyNew.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Verify with retired key = %v, want ErrUnauthenticated", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	k, _ := NewKeys(key(3))
	expired, _ := k.Mint(Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u"}}, -time.Minute)
	noSub, _ := k.Mint(Claims{}, time.Minute)
	good, _ := k.Mint(Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u"}}, time.Minute)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "u", Issuer: issuer, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, tok := range map[string]string{
		"expired":    expired,
		"no subject": noSub,
		"tampered":   good[:len(good)-2] + "xx",
		"alg none":   noneTok,
		"garbage":    "not-a-token",
	} {
		if _, err := k.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: Verify = %v, want ErrUnauthenticated", name, err)
		}
	}
}

func TestKeysValidation(t *testing.T) {
	if _, err := NewKeys([]byte("short")); err == nil {
		t.Error("NewKeys(short key) succeeded")
	}
	if _, err := ParseKeys("zz"); err == nil {
		t.Error("ParseKeys(non-hex) succeeded")
	}
	k, err := ParseKeys("0101010101010101010101010101010101010101010101010101010101010101, 0202020202020202020202020202020202020202020202020202020202020202")
	if err != nil || len(k.verify) != 2 {
		t.Errorf("ParseKeys(two keys) = %v, %v", k, err)
	}
}

func TestServiceTokenSource(t *testing.T) {
	k, _ := NewKeys(key(4))
	src := NewServiceTokenSource(k, "sessions")
	a, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := src.Token()
	if a != b {
		t.Error("token not cached")
	}
	c, err := k.Verify(a)
	if err != nil || !c.Has(RoleService) || !c.CanAccessTenant("any") {
		t.Errorf("service claims = %+v, %v", c, err)
	}
}
