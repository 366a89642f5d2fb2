package grpcapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/grpcapi"
)

// memStore is a TaskStore in memory; failSave makes the next Save fail.
type memStore struct {
	mu       sync.Mutex
	known    map[string]bool
	ended    map[string]bool
	failSave bool
}

func (s *memStore) Save(_ context.Context, t *engine.Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failSave {
		s.failSave = false
		return errors.New("database unreachable")
	}
	s.known[t.Tenant+"/"+t.ID] = true
	return nil
}

func (s *memStore) Known(_ context.Context, tenant, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.known[tenant+"/"+id], nil
}

func (s *memStore) LoadOpen(context.Context) ([]*engine.Task, error) { return nil, nil }

func (s *memStore) MarkSessionEnded(_ context.Context, tenant, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended[tenant+"/"+id] = true
	return nil
}

func (s *memStore) SessionEnded(_ context.Context, tenant, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended[tenant+"/"+id], nil
}

type nopPub struct{}

func (nopPub) Emit(context.Context, string, proto.Message, string) error { return nil }

// agents answers like the directory: a wrapped gRPC status from config.
type agents map[string]engine.AgentInfo

func (a agents) Agent(_ context.Context, tenant, id string) (engine.AgentInfo, error) {
	if id == "config-down" {
		return engine.AgentInfo{}, fmt.Errorf("get user %q: %w", id, status.Error(codes.Unavailable, "connection refused"))
	}
	info, ok := a[tenant+"/"+id]
	if !ok {
		return engine.AgentInfo{}, fmt.Errorf("get user %q: %w", id, status.Error(codes.NotFound, "no such user"))
	}
	return info, nil
}

type harness struct {
	eng   *engine.Engine
	store *memStore
	keys  *authn.Keys
	addr  string
}

func start(t *testing.T) *harness {
	t.Helper()
	keys, err := authn.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{known: map[string]bool{}, ended: map[string]bool{}}
	eng := engine.New(nopPub{}, st, slog.New(slog.DiscardHandler))
	t.Cleanup(eng.Close)
	srv := grpcserver.New(slog.New(slog.DiscardHandler), keys)
	distributionv1.RegisterDistributionServiceServer(srv.Server, &grpcapi.Server{Engine: eng, Agents: agents{
		"acme/alice": {ID: "alice", Eligible: true, Services: []string{"sales"}},
		"acme/bob":   {ID: "bob", Eligible: true, Services: []string{"sales"}},
		"acme/carl":  {ID: "carl", Eligible: false, Services: []string{"sales"}}, // no IM license
	}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{eng: eng, store: st, keys: keys, addr: lis.Addr().String()}
}

// asService is the sessions gateway's connection.
func (h *harness) asService(t *testing.T) distributionv1.DistributionServiceClient {
	t.Helper()
	conn, err := grpcserver.Dial(h.addr, h.keys, "sessions")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return distributionv1.NewDistributionServiceClient(conn)
}

// withToken connects with a fixed bearer token ("" sends none).
func (h *harness) withToken(t *testing.T, token string) distributionv1.DistributionServiceClient {
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
	return distributionv1.NewDistributionServiceClient(conn)
}

func (h *harness) token(t *testing.T, keys *authn.Keys, tenant, subject string, roles ...string) string {
	t.Helper()
	tok, err := keys.Mint(authn.Claims{Tenant: tenant, Roles: roles, RegisteredClaims: jwt.RegisteredClaims{Subject: subject}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func code(err error) codes.Code { return status.Code(err) }

func TestOnlyServicesMayCall(t *testing.T) {
	h := start(t)
	forged, err := authn.NewKeys([]byte("ffffffffffffffffffffffffffffffff"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		client distributionv1.DistributionServiceClient
		want   codes.Code
	}{
		{"service", h.asService(t), codes.OK},
		{"the agent herself", h.withToken(t, h.token(t, h.keys, "acme", "alice", authn.RoleAgent)), codes.PermissionDenied},
		{"tenant admin", h.withToken(t, h.token(t, h.keys, "acme", "ann", authn.RoleAdmin, authn.RoleSupervisor)), codes.PermissionDenied},
		{"admin of another tenant", h.withToken(t, h.token(t, h.keys, "globex", "gus", authn.RoleAdmin)), codes.PermissionDenied},
		{"platform operator", h.withToken(t, h.token(t, h.keys, "", "op", authn.RolePlatform)), codes.PermissionDenied},
		{"forged service token", h.withToken(t, h.token(t, forged, "", "service:sessions", authn.RoleService)), codes.Unauthenticated},
		{"no token", h.withToken(t, ""), codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			_, err := tc.client.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
			if got := code(err); got != tc.want {
				t.Errorf("GetAgentState: code %v (%v), want %v", got, err, tc.want)
			}
			_, err = tc.client.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AWAY})
			if got := code(err); got != tc.want {
				t.Errorf("SetAgentPresence: code %v (%v), want %v", got, err, tc.want)
			}
			_, err = tc.client.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: "of_x"})
			if want := tc.want; want == codes.OK {
				if got := code(err); got != codes.FailedPrecondition {
					t.Errorf("AcceptTask of an unknown offer: code %v, want FailedPrecondition", got)
				}
			} else if got := code(err); got != want {
				t.Errorf("AcceptTask: code %v (%v), want %v", got, err, want)
			}
		})
	}
}

func TestInvalidRequests(t *testing.T) {
	h := start(t)
	c := h.asService(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"accept without tenant", func() error {
			_, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{AgentId: "alice", OfferId: "of_1"})
			return err
		}, codes.InvalidArgument},
		{"accept without agent", func() error {
			_, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", OfferId: "of_1"})
			return err
		}, codes.InvalidArgument},
		{"accept without offer", func() error {
			_, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice"})
			return err
		}, codes.InvalidArgument},
		{"decline without offer", func() error {
			_, err := c.DeclineTask(ctx, &distributionv1.DeclineTaskRequest{TenantId: "acme", AgentId: "alice"})
			return err
		}, codes.InvalidArgument},
		{"presence unspecified", func() error {
			_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice"})
			return err
		}, codes.InvalidArgument},
		{"presence out of range", func() error {
			_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: 42})
			return err
		}, codes.InvalidArgument},
		{"unknown agent", func() error {
			_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "zed", Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
			return err
		}, codes.NotFound},
		{"agent of another tenant", func() error {
			_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "globex", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
			return err
		}, codes.NotFound},
		{"agent without IM license becomes available", func() error {
			_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "carl", Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
			return err
		}, codes.PermissionDenied},
		{"agent without IM license goes away", func() error {
			_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "carl", Presence: distributionv1.Presence_PRESENCE_AWAY})
			return err
		}, codes.OK},
		{"config service down", func() error {
			_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "config-down", Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
			return err
		}, codes.Unavailable},
	} {
		if got := code(tc.call()); got != tc.want {
			t.Errorf("%s: code %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOfferAnswers(t *testing.T) {
	h := start(t)
	c := h.asService(t)
	ctx := context.Background()
	for _, a := range []string{"alice", "bob"} {
		res, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: a, Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
		if err != nil {
			t.Fatal(err)
		}
		if st := res.GetState(); st.GetAgentId() != a || st.GetPresence() != distributionv1.Presence_PRESENCE_AVAILABLE {
			t.Errorf("SetAgentPresence(%s) state = %v, want available", a, st)
		}
	}
	svc := engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: time.Hour, MaxParallelTasks: 1}
	for _, id := range []string{"t1", "t2", "t3"} {
		if err := h.eng.Enqueue(ctx, &engine.Task{ID: id, Tenant: "acme", SessionID: "ss_" + id, ServiceID: "sales", Service: svc}); err != nil {
			t.Fatal(err)
		}
	}
	offerOf := func(agent string) *distributionv1.Offer {
		t.Helper()
		res, err := c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: agent})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.GetState().GetOffers()) != 1 {
			t.Fatalf("%s's offers = %v, want one", agent, res.GetState().GetOffers())
		}
		return res.GetState().GetOffers()[0]
	}
	alices, bobs := offerOf("alice"), offerOf("bob")

	// Someone else's offer.
	_, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "bob", OfferId: alices.GetOfferId()})
	if code(err) != codes.PermissionDenied {
		t.Errorf("bob accepts alice's offer: code %v, want PermissionDenied", code(err))
	}
	_, err = c.DeclineTask(ctx, &distributionv1.DeclineTaskRequest{TenantId: "acme", AgentId: "bob", OfferId: alices.GetOfferId()})
	if code(err) != codes.PermissionDenied {
		t.Errorf("bob declines alice's offer: code %v, want PermissionDenied", code(err))
	}
	// A failure to record the answer is retryable, and the offer stays.
	h.store.mu.Lock()
	h.store.failSave = true
	h.store.mu.Unlock()
	_, err = c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: alices.GetOfferId()})
	if code(err) != codes.Unavailable {
		t.Errorf("accept while the store fails: code %v, want Unavailable", code(err))
	}
	res, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: alices.GetOfferId()})
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	if res.GetTaskId() != alices.GetTaskId() || res.GetSessionId() != alices.GetSessionId() {
		t.Errorf("accept = %v, want task %s session %s", res, alices.GetTaskId(), alices.GetSessionId())
	}
	// A closed offer.
	_, err = c.DeclineTask(ctx, &distributionv1.DeclineTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: alices.GetOfferId()})
	if code(err) != codes.FailedPrecondition {
		t.Errorf("decline after accept: code %v, want FailedPrecondition", code(err))
	}
	if _, err := c.DeclineTask(ctx, &distributionv1.DeclineTaskRequest{TenantId: "acme", AgentId: "bob", OfferId: bobs.GetOfferId()}); err != nil {
		t.Fatalf("bob declines: %v", err)
	}
	_, err = c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "bob", OfferId: bobs.GetOfferId()})
	if code(err) != codes.FailedPrecondition {
		t.Errorf("accept after decline: code %v, want FailedPrecondition", code(err))
	}

	st, err := c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetState().GetActiveTasks() != 1 || len(st.GetState().GetOffers()) != 0 {
		t.Errorf("alice: %v, want one active task and no offers", st.GetState())
	}
	// An agent distribution never heard of is offline, not an error.
	st, err = c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "nobody"})
	if err != nil || st.GetState().GetPresence() != distributionv1.Presence_PRESENCE_OFFLINE {
		t.Errorf("GetAgentState(nobody) = %v, %v; want offline", st, err)
	}
}
