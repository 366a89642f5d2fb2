package reporting_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// infra starts NATS and connects to the test database server; dbName and
// the databases named after it are dropped at the end.
func infra(t *testing.T) (*bus.Bus, *mongo.Client, string) {
	t.Helper()
	ns := natstest.Start(t)
	b, err := bus.Connect(ns.ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	mc, err := mongodb.Connect(context.Background(), mongotest.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	dbName := mongotest.DatabaseName(t)
	t.Cleanup(func() {
		for _, db := range []string{dbName, dbName + "_config"} {
			_ = mc.Database(db).Drop(context.Background())
		}
		_ = mc.Disconnect(context.Background())
	})
	return b, mc, dbName
}

// Run consumes all three streams into one record and serves it.
func TestRun(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	key := []byte("0123456789abcdef0123456789abcdef")
	keys, err := authn.NewKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	b, mc, dbName := infra(t)
	cfg := reporting.Defaults()
	cfg.Database = dbName
	cfg.AuthKeys = hex.EncodeToString(key)
	cfg.ConfigAddr = "" // no config: every tenant in UTC
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- reporting.Run(rctx, cfg, reporting.Deps{GRPCListener: lis, Bus: b, Mongo: mc, AuthKeys: keys}, log)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	tok, err := keys.Mint(authn.Claims{Tenant: "acme", Roles: []string{authn.RoleSupervisor}, RegisteredClaims: jwt.RegisteredClaims{Subject: "sue"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := reportingv1.NewReportingServiceClient(conn)

	// Run creates the streams; publish once they exist.
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range []string{subjects.StreamSession, subjects.StreamDistribution, subjects.StreamOutbound} {
		for {
			if _, err := b.JS.Stream(ctx, s); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %s not created", s)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, e := range []struct {
		subject string
		msg     proto.Message
	}{
		{subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_1", Outcome: sessionv1.Outcome_OUTCOME_HANDLED, AgentId: "alice", EndedAt: timestamppb.New(start.Add(time.Minute))}},
		{subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", SessionId: "ss_1", OfferId: "of1", AgentId: "alice", AcceptedAt: timestamppb.New(start.Add(time.Second))}},
		{subjects.OutboundFailed("acme"), &outboundv1.OutboundMessageFailed{TenantId: "acme", SessionId: "ss_1", RequestId: "rq1"}},
		{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: "ss_1", ServiceId: "sales", StartedAt: timestamppb.New(start)}},
	} {
		if _, err := b.Publish(ctx, e.subject, e.msg); err != nil {
			t.Fatal(err)
		}
	}
	want := &reportingv1.SessionRecord{TenantId: "acme", SessionId: "ss_1", ServiceId: "sales", State: reportingv1.SessionState_SESSION_STATE_ENDED,
		Outcome: sessionv1.Outcome_OUTCOME_HANDLED, AgentId: "alice", StartedAt: timestamppb.New(start), AcceptedAt: timestamppb.New(start.Add(time.Second)),
		EndedAt: timestamppb.New(start.Add(time.Minute)), FailedSends: 1, Agents: []string{"alice"}}
	var got *reportingv1.SessionRecord
	for !proto.Equal(got, want) {
		if time.Now().After(deadline) {
			t.Fatalf("record\n got  %v\n want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
		// NotFound until the first event is applied.
		res, _ := c.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "acme", SessionId: "ss_1"})
		got = res.GetSession()
	}
}
