// Package authn issues and checks Switchboard's bearer tokens: HMAC-SHA256
// signed JWTs that carry a tenant, a subject and roles. Users get them from
// sign-in, services mint short-lived ones for their own calls. Several keys
// may verify at once so a key can be rotated; the first one signs.
package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles.
const (
	// Tenant roles.
	RoleAdmin      = "admin"
	RoleSupervisor = "supervisor"
	RoleAgent      = "agent"
	// RoleAnalyst reads a tenant's reports and transcripts, nothing else.
	RoleAnalyst = "analyst"
	// RoleService is a Switchboard service calling another; it may act for
	// any tenant.
	RoleService = "service"
	// RolePlatform is a platform operator: manages tenants themselves.
	RolePlatform = "platform"
)

const issuer = "switchboard"

// Claims of a token.
type Claims struct {
	// Tenant the subject belongs to; empty for services and platform operators.
	Tenant string   `json:"tid,omitempty"`
	Roles  []string `json:"roles"`
	Name   string   `json:"name,omitempty"`
	// IssuedMS is when the token was minted, in Unix milliseconds: finer
	// than iat, so a sign-in right after a revocation is not caught by it.
	IssuedMS int64 `json:"iat_ms,omitempty"`
	jwt.RegisteredClaims
}

// Issued is when the token was minted.
func (c *Claims) Issued() time.Time {
	if c.IssuedMS > 0 {
		return time.UnixMilli(c.IssuedMS)
	}
	if c.IssuedAt != nil {
		return c.IssuedAt.Time
	}
	return time.Time{}
}

// Has reports whether the claims carry role.
func (c *Claims) Has(role string) bool { return slices.Contains(c.Roles, role) }

// CanAccessTenant reports whether the caller may act within tenant.
func (c *Claims) CanAccessTenant(tenant string) bool {
	return c.Has(RoleService) || c.Has(RolePlatform) || (c.Tenant != "" && c.Tenant == tenant)
}

// MaxTTL caps every token's lifetime: Mint refuses a longer one and
// Verify refuses a token whose expiry is further than this from its
// issue time, whoever signed it.
const MaxTTL = 24 * time.Hour

// clockSkew is how far in the future an issue time may lie.
const clockSkew = time.Minute

// Revoker tells whether a token was revoked after it was issued (its
// subject deleted, disabled, stripped of a role or given a new password).
type Revoker interface {
	Revoked(c *Claims) bool
}

// Keys sign and verify tokens.
type Keys struct {
	signing []byte
	kid     string
	verify  map[string][]byte
	revoker Revoker
}

// WithRevocations returns keys whose Verify and Recheck also refuse revoked
// tokens.
func (k *Keys) WithRevocations(r Revoker) *Keys {
	c := *k
	c.revoker = r
	return &c
}

// HasRevocations reports whether k checks a revocation list.
func (k *Keys) HasRevocations() bool { return k.revoker != nil }

// MinKeyLen is the shortest accepted key.
const MinKeyLen = 32

// NewKeys: the first key signs; all verify.
func NewKeys(keys ...[]byte) (*Keys, error) {
	if len(keys) == 0 {
		return nil, errors.New("authn: no key")
	}
	k := &Keys{verify: map[string][]byte{}}
	for i, key := range keys {
		if len(key) < MinKeyLen {
			return nil, fmt.Errorf("authn: key %d is %d bytes, want at least %d", i+1, len(key), MinKeyLen)
		}
		id := keyID(key)
		k.verify[id] = key
		if i == 0 {
			k.signing, k.kid = key, id
		}
	}
	return k, nil
}

// ParseKeys reads a comma-separated list of hex-encoded keys.
func ParseKeys(s string) (*Keys, error) {
	var keys [][]byte
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		b, err := hex.DecodeString(part)
		if err != nil {
			return nil, fmt.Errorf("authn: key %d is not hex", i+1)
		}
		keys = append(keys, b)
	}
	return NewKeys(keys...)
}

func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// Mint signs claims valid for ttl, at most MaxTTL.
func (k *Keys) Mint(c Claims, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxTTL {
		return "", fmt.Errorf("authn: token lifetime %v is not within (0, %v]", ttl, MaxTTL)
	}
	now := time.Now()
	c.Issuer = issuer
	c.IssuedAt = jwt.NewNumericDate(now)
	c.IssuedMS = now.UnixMilli()
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = k.kid
	return t.SignedString(k.signing)
}

// ErrUnauthenticated is returned for a missing, malformed, expired or forged token.
var ErrUnauthenticated = errors.New("unauthenticated")

// Verify checks a token and returns its claims.
func (k *Keys) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, ok := k.verify[kid]
		if !ok {
			return nil, errors.New("unknown key id")
		}
		return key, nil
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(issuer), jwt.WithExpirationRequired())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: token has no subject", ErrUnauthenticated)
	}
	if c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: token has no issue time", ErrUnauthenticated)
	}
	if life := c.ExpiresAt.Sub(c.Issued()); life > MaxTTL+time.Second {
		return nil, fmt.Errorf("%w: token lifetime %v exceeds the %v cap", ErrUnauthenticated, life.Round(time.Second), MaxTTL)
	}
	if c.Issued().After(time.Now().Add(clockSkew)) {
		return nil, fmt.Errorf("%w: token is issued in the future", ErrUnauthenticated)
	}
	if err := k.Recheck(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ErrRevoked is returned for a token revoked after it was issued.
var ErrRevoked = fmt.Errorf("%w: access was revoked; sign in again", ErrUnauthenticated)

// Recheck tells whether verified claims still hold: not expired, not
// revoked since. Long-lived connections call it to drop a caller whose
// access ended after they connected.
func (k *Keys) Recheck(c *Claims) error {
	if c.ExpiresAt != nil && !time.Now().Before(c.ExpiresAt.Time) {
		return fmt.Errorf("%w: token has expired; sign in again", ErrUnauthenticated)
	}
	if k.revoker != nil && k.revoker.Revoked(c) {
		return ErrRevoked
	}
	return nil
}

type ctxKey struct{}

// WithClaims stores claims in ctx.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the caller's claims, or nil.
func FromContext(ctx context.Context) *Claims {
	c, _ := ctx.Value(ctxKey{}).(*Claims)
	return c
}

// ServiceTokenSource mints and caches a service token for outgoing calls.
type ServiceTokenSource struct {
	keys    *Keys
	service string

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewServiceTokenSource returns a source of tokens for the named service.
func NewServiceTokenSource(keys *Keys, service string) *ServiceTokenSource {
	return &ServiceTokenSource{keys: keys, service: service}
}

const serviceTokenTTL = 10 * time.Minute

// Token returns a valid service token, minting a new one when the cached one
// is past half its life.
func (s *ServiceTokenSource) Token() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Until(s.expires) > serviceTokenTTL/2 {
		return s.token, nil
	}
	tok, err := s.keys.Mint(Claims{
		Roles:            []string{RoleService},
		Name:             s.service,
		RegisteredClaims: jwt.RegisteredClaims{Subject: "service:" + s.service},
	}, serviceTokenTTL)
	if err != nil {
		return "", err
	}
	s.token, s.expires = tok, time.Now().Add(serviceTokenTTL)
	return tok, nil
}
