package revocation_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/revocation"
)

func claims(tenant, subject string, issued time.Time) *authn.Claims {
	return &authn.Claims{Tenant: tenant, IssuedMS: issued.UnixMilli(), RegisteredClaims: jwt.RegisteredClaims{Subject: subject}}
}

func TestRevokeReachesEveryList(t *testing.T) {
	srv := natstest.Start(t)
	b, err := bus.Connect(srv.ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	writer, err := revocation.Open(ctx, b.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := revocation.Open(ctx, b.JS, 1) // another replica or service
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	before, after := claims("acme", "alice", at.Add(-time.Minute)), claims("acme", "alice", at.Add(time.Millisecond))
	if reader.Revoked(before) {
		t.Fatal("revoked before any revocation")
	}
	if err := writer.Revoke(ctx, "acme", "alice", at); err != nil {
		t.Fatal(err)
	}
	if !writer.Revoked(before) {
		t.Error("writer: token issued before the revocation is not revoked")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !reader.Revoked(before) {
		if time.Now().After(deadline) {
			t.Fatal("reader never saw the revocation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if reader.Revoked(after) {
		t.Error("token issued after the revocation is revoked")
	}
	if reader.Revoked(claims("beta", "alice", at.Add(-time.Minute))) {
		t.Error("another tenant's alice is revoked")
	}
	// Subjects with characters a KV key cannot hold still work.
	if err := writer.Revoke(ctx, "acme", "switchboardctl:admin+x", at); err != nil {
		t.Fatal(err)
	}
	if !writer.Revoked(claims("acme", "switchboardctl:admin+x", at.Add(-time.Second))) {
		t.Error("odd subject not revoked")
	}

	// A list opened later loads what is stored.
	late, err := revocation.Open(ctx, b.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !late.Revoked(before) {
		t.Error("a list opened after the revocation does not know it")
	}
}
