package grpcapi_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/grpcapi"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

type harness struct {
	keys *authn.Keys
	addr string
	// rollups: startReports's store, for tests that add to it.
	rollups *rollup.Store
}

func start(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	keys, err := authn.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := records.New(ctx, mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	// Three acme sessions and one of globex.
	for i, s := range []struct{ tenant, session string }{{"acme", "ss_1"}, {"acme", "ss_2"}, {"acme", "ss_3"}, {"globex", "ss_g"}} {
		data, err := proto.Marshal(&sessionv1.SessionStarted{TenantId: s.tenant, SessionId: s.session, ServiceId: "sales",
			Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS},
			StartedAt:    timestamppb.New(time.Date(2026, 3, 1, 9, i, 0, 0, time.UTC))})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.HandleSession(ctx, &bus.Message{Subject: subjects.SessionStarted(s.tenant), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	srv := grpcserver.New(slog.New(slog.DiscardHandler), keys)
	reportingv1.RegisterReportingServiceServer(srv.Server, &grpcapi.Server{Records: st})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{keys: keys, addr: lis.Addr().String()}
}

func (h *harness) client(t *testing.T, token string) reportingv1.ReportingServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(grpcserver.BearerToken(token)))
	}
	conn, err := grpc.NewClient(h.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return reportingv1.NewReportingServiceClient(conn)
}

func (h *harness) token(t *testing.T, tenant, subject string, roles ...string) string {
	t.Helper()
	tok, err := h.keys.Mint(authn.Claims{Tenant: tenant, Roles: roles, RegisteredClaims: jwt.RegisteredClaims{Subject: subject}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestWhoMayRead(t *testing.T) {
	h := start(t)
	svc, err := authn.NewServiceTokenSource(h.keys, "devstack").Token()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"admin", h.token(t, "acme", "ann", authn.RoleAdmin), codes.OK},
		{"supervisor", h.token(t, "acme", "sue", authn.RoleSupervisor), codes.OK},
		{"platform operator", h.token(t, "", "op", authn.RolePlatform), codes.OK},
		{"service", svc, codes.OK},
		{"agent", h.token(t, "acme", "alice", authn.RoleAgent), codes.PermissionDenied},
		{"admin of another tenant", h.token(t, "globex", "gus", authn.RoleAdmin), codes.PermissionDenied},
		{"user without roles", h.token(t, "acme", "nobody"), codes.PermissionDenied},
		{"no token", "", codes.Unauthenticated},
		{"garbage token", "not-a-jwt", codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.client(t, tc.token)
			ctx := context.Background()
			got, err := c.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "acme", SessionId: "ss_1"})
			if code := status.Code(err); code != tc.want {
				t.Errorf("GetSession: code %v (%v), want %v", code, err, tc.want)
			} else if err == nil && (got.GetSession().GetSessionId() != "ss_1" || got.GetSession().GetTenantId() != "acme") {
				t.Errorf("GetSession = %v, want acme's ss_1", got)
			}
			list, err := c.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "acme"})
			if code := status.Code(err); code != tc.want {
				t.Errorf("ListSessions: code %v (%v), want %v", code, err, tc.want)
			} else if err == nil && len(list.GetSessions()) != 3 {
				t.Errorf("ListSessions returned %d sessions, want acme's 3", len(list.GetSessions()))
			}
		})
	}
}

func TestRequests(t *testing.T) {
	h := start(t)
	c := h.client(t, h.token(t, "acme", "ann", authn.RoleAdmin))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"get without session", func() error {
			_, err := c.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "acme"})
			return err
		}, codes.InvalidArgument},
		{"get without tenant", func() error {
			_, err := c.GetSession(ctx, &reportingv1.GetSessionRequest{SessionId: "ss_1"})
			return err
		}, codes.InvalidArgument},
		{"get with an invalid tenant id", func() error {
			_, err := c.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "Acme Corp", SessionId: "ss_1"})
			return err
		}, codes.InvalidArgument},
		{"get a session that does not exist", func() error {
			_, err := c.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "acme", SessionId: "ss_nope"})
			return err
		}, codes.NotFound},
		{"list with a negative page size", func() error {
			_, err := c.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "acme", PageSize: -1})
			return err
		}, codes.InvalidArgument},
		{"list with a page size over 500", func() error {
			_, err := c.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "acme", PageSize: 501})
			return err
		}, codes.InvalidArgument},
		{"list with the largest page size", func() error {
			_, err := c.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "acme", PageSize: 500})
			return err
		}, codes.OK},
		{"list with a bad page token", func() error {
			_, err := c.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "acme", PageToken: "garbage!"})
			return err
		}, codes.InvalidArgument},
	} {
		if got := status.Code(tc.call()); got != tc.want {
			t.Errorf("%s: code %v, want %v", tc.name, got, tc.want)
		}
	}

	// Paging through the API: newest first, filters applied.
	var got []string
	token := ""
	for {
		res, err := c.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "acme", PageSize: 2, PageToken: token, ServiceId: "sales",
			Channel: messagingv1.Channel_CHANNEL_SMS, State: reportingv1.SessionState_SESSION_STATE_ACTIVE})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range res.GetSessions() {
			got = append(got, s.GetSessionId())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	if want := []string{"ss_3", "ss_2", "ss_1"}; !slices.Equal(got, want) {
		t.Errorf("sessions = %q, want %q", got, want)
	}
	res, err := c.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "acme", ServiceId: "support"})
	if err != nil || len(res.GetSessions()) != 0 || res.GetNextPageToken() != "" {
		t.Errorf("ListSessions(support) = %v, %v; want empty", res, err)
	}
}
