package authn

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signRaw signs claims as Mint would, without its lifetime check, the way
// anyone holding the key (or a buggy tool) could.
func signRaw(t *testing.T, k *Keys, c Claims) string {
	t.Helper()
	c.Issuer = issuer
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.signing)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenLifetimeIsCapped(t *testing.T) {
	k, _ := NewKeys(key(1))
	base := Claims{Tenant: "acme", Roles: []string{RoleAgent}, RegisteredClaims: jwt.RegisteredClaims{Subject: "u1"}}
	if _, err := k.Mint(base, 100*365*24*time.Hour); err == nil {
		t.Error("Mint for 100 years succeeded, want an error")
	}
	if _, err := k.Mint(base, MaxTTL); err != nil {
		t.Errorf("Mint(MaxTTL) = %v, want a token", err)
	}

	now := time.Now()
	centennial := base
	centennial.IssuedAt = jwt.NewNumericDate(now)
	centennial.ExpiresAt = jwt.NewNumericDate(now.Add(100 * 365 * 24 * time.Hour))
	if _, err := k.Verify(signRaw(t, k, centennial)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Verify(token for 100 years) = %v, want ErrUnauthenticated", err)
	}
	noIat := base
	noIat.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
	if _, err := k.Verify(signRaw(t, k, noIat)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Verify(token without iat) = %v, want ErrUnauthenticated", err)
	}
	future := base
	future.IssuedAt = jwt.NewNumericDate(now.Add(2 * time.Hour))
	future.ExpiresAt = jwt.NewNumericDate(now.Add(3 * time.Hour))
	if _, err := k.Verify(signRaw(t, k, future)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Verify(token issued in the future) = %v, want ErrUnauthenticated", err)
	}
}

type revokeAfter map[string]time.Time

func (r revokeAfter) Revoked(c *Claims) bool {
	at, ok := r[c.Tenant+"/"+c.Subject]
	return ok && c.Issued().Before(at)
}

func TestRevokedTokensAreRefused(t *testing.T) {
	list := revokeAfter{}
	k, _ := NewKeys(key(1))
	k = k.WithRevocations(list)
	mint := func() string {
		tok, err := k.Mint(Claims{Tenant: "acme", Roles: []string{RoleAgent}, RegisteredClaims: jwt.RegisteredClaims{Subject: "u1"}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	old := mint()
	c, err := k.Verify(old)
	if err != nil {
		t.Fatalf("Verify before revocation: %v", err)
	}
	time.Sleep(2 * time.Millisecond) // tokens carry millisecond issue times
	list["acme/u1"] = time.Now()
	if _, err := k.Verify(old); !errors.Is(err, ErrRevoked) {
		t.Errorf("Verify(revoked token) = %v, want ErrRevoked", err)
	}
	if err := k.Recheck(c); !errors.Is(err, ErrRevoked) {
		t.Errorf("Recheck(revoked claims) = %v, want ErrRevoked", err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := k.Verify(mint()); err != nil {
		t.Errorf("Verify(token issued after the revocation) = %v, want ok", err)
	}
	other := *c
	other.Subject = "u2"
	if err := k.Recheck(&other); err != nil {
		t.Errorf("Recheck(another user) = %v, want ok", err)
	}
}
