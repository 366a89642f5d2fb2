package revocation_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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

// A service started while its cluster cannot answer yet (one node of
// three up) waits for the revocation list, saying so, and has it once the
// cluster forms; a revocation then reaches it. (It used to exit: a
// sessions process restarted during a NATS fault in the chaos run did.)
func TestOpenWaitingWaitsForTheCluster(t *testing.T) {
	cluster := natstest.NewCluster(t, 3)
	first := cluster.Node(0)
	var logs natstest.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b, err := bus.Connect(first.ClientURL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	wait, stopWaiting := context.WithTimeout(ctx, 2*time.Minute)
	defer stopWaiting()
	type opened struct {
		l   *revocation.List
		err error
	}
	done := make(chan opened, 1)
	go func() {
		l, err := revocation.OpenWaiting(wait, ctx, b.JS, 3, log)
		done <- opened{l, err}
	}()
	logs.WaitForLog(t, "revocation list not ready", func() error {
		select {
		case o := <-done:
			return fmt.Errorf("OpenWaiting ended with one node of three up: %v", o.err)
		default:
			return nil
		}
	})
	cluster.Node(1)
	cluster.Node(2)
	o := <-done
	if o.err != nil {
		t.Fatalf("OpenWaiting once the cluster formed: %v", o.err)
	}
	now := time.Now()
	if err := o.l.Revoke(ctx, "acme", "u1", now); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !o.l.Revoked(claims("acme", "u1", now.Add(-time.Minute))) {
		if time.Now().After(deadline) {
			t.Fatal("the revocation did not reach the list")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// When waiting ends first, OpenWaiting says why, with the broker's answer.
func TestOpenWaitingGivesUp(t *testing.T) {
	cluster := natstest.NewCluster(t, 3)
	b, err := bus.Connect(cluster.Node(0).ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	wait, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	_, err = revocation.OpenWaiting(wait, context.Background(), b.JS, 3, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "revocation list was not ready") {
		t.Fatalf("OpenWaiting with no quorum, 3 s to wait: %v; want it to say the list was not ready", err)
	}
}
