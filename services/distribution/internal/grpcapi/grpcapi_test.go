package grpcapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
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

func (s *memStore) Get(context.Context, string, string) (*engine.Task, error) { return nil, nil }

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

// services answers like the directory.
type services map[string]engine.ServiceInfo

func (s services) Service(_ context.Context, tenant, id string) (engine.ServiceInfo, error) {
	info, ok := s[tenant+"/"+id]
	if !ok {
		return engine.ServiceInfo{}, fmt.Errorf("get service %q: %w", id, status.Error(codes.NotFound, "no such service"))
	}
	return info, nil
}

var wrapUpService = engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: time.Hour, MaxParallelTasks: 1,
	AfterCallWork: time.Hour, ServiceCodes: []string{"complaint"}, SalesCodes: []string{"upgrade"}, Tags: []string{"vip"}}

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
	distributionv1.RegisterDistributionServiceServer(srv.Server, &grpcapi.Server{Engine: eng, Services: services{
		"acme/sales":   wrapUpService,
		"acme/support": {ID: "support", Name: "Support", RONATimeout: time.Hour, MaxParallelTasks: 2},
		"globex/other": {ID: "other", Name: "Other", RONATimeout: time.Hour},
	}, Agents: agents{
		"globex/gina": {ID: "gina", Eligible: true, Services: []string{"other"}},
		"acme/alice":  {ID: "alice", Eligible: true, Services: []string{"sales"}},
		"acme/bob":    {ID: "bob", Eligible: true, Services: []string{"sales"}},
		"acme/carl":   {ID: "carl", Eligible: false, Services: []string{"sales"}}, // no IM license
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

func TestWhoMayCallWhat(t *testing.T) {
	h := start(t)
	forged, err := authn.NewKeys([]byte("ffffffffffffffffffffffffffffffff"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		ok  = codes.OK
		pd  = codes.PermissionDenied
		un  = codes.Unauthenticated
		fp  = codes.FailedPrecondition // an unknown offer, or a task not wrapping up
		nf  = codes.NotFound
		any = codes.Code(99)
	)
	ctx := context.Background()
	calls := []struct {
		name string
		call func(c distributionv1.DistributionServiceClient) error
	}{
		{"GetAgentState(alice)", func(c distributionv1.DistributionServiceClient) error {
			_, err := c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
			return err
		}},
		{"SetAgentPresence(alice)", func(c distributionv1.DistributionServiceClient) error {
			_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AWAY})
			return err
		}},
		{"AcceptTask(alice)", func(c distributionv1.DistributionServiceClient) error {
			_, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: "of_x"})
			return err
		}},
		{"SubmitWrapUp(alice)", func(c distributionv1.DistributionServiceClient) error {
			_, err := c.SubmitWrapUp(ctx, &distributionv1.SubmitWrapUpRequest{TenantId: "acme", AgentId: "alice", TaskId: "tk_x"})
			return err
		}},
		{"GetQueueStatistics", func(c distributionv1.DistributionServiceClient) error {
			_, err := c.GetQueueStatistics(ctx, &distributionv1.GetQueueStatisticsRequest{TenantId: "acme", ServiceId: "sales"})
			return err
		}},
		{"CancelTask", func(c distributionv1.DistributionServiceClient) error {
			_, err := c.CancelTask(ctx, &distributionv1.CancelTaskRequest{TenantId: "acme", TaskId: "tk_x"})
			return err
		}},
	}
	for _, tc := range []struct {
		name   string
		client distributionv1.DistributionServiceClient
		want   []codes.Code // per call above
	}{
		{"service", h.asService(t), []codes.Code{ok, ok, fp, nf, ok, nf}},
		{"the agent herself", h.withToken(t, h.token(t, h.keys, "acme", "alice", authn.RoleAgent)), []codes.Code{ok, ok, fp, nf, pd, pd}},
		{"another agent", h.withToken(t, h.token(t, h.keys, "acme", "bob", authn.RoleAgent)), []codes.Code{pd, pd, pd, pd, pd, pd}},
		{"supervisor", h.withToken(t, h.token(t, h.keys, "acme", "sue", authn.RoleSupervisor)), []codes.Code{ok, ok, pd, nf, ok, nf}},
		{"tenant admin", h.withToken(t, h.token(t, h.keys, "acme", "ann", authn.RoleAdmin)), []codes.Code{ok, ok, pd, nf, ok, nf}},
		{"admin of another tenant", h.withToken(t, h.token(t, h.keys, "globex", "gus", authn.RoleAdmin)), []codes.Code{pd, pd, pd, pd, pd, pd}},
		{"platform operator", h.withToken(t, h.token(t, h.keys, "", "op", authn.RolePlatform)), []codes.Code{pd, pd, pd, pd, pd, pd}},
		{"forged service token", h.withToken(t, h.token(t, forged, "", "service:sessions", authn.RoleService)), []codes.Code{un, un, un, un, un, un}},
		{"no token", h.withToken(t, ""), []codes.Code{un, un, un, un, un, un}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, c := range calls {
				err := c.call(tc.client)
				if got := code(err); got != tc.want[i] {
					t.Errorf("%s: code %v (%v), want %v", c.name, got, err, tc.want[i])
				}
				// A refusal names the role that would do (or the tenant).
				if code(err) == pd && !strings.Contains(err.Error(), "role") && !strings.Contains(err.Error(), "may not access tenant") {
					t.Errorf("%s: refusal %q does not say which role is needed", c.name, err)
				}
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
		{"statistics of an unknown service", func() error {
			_, err := c.GetQueueStatistics(ctx, &distributionv1.GetQueueStatisticsRequest{TenantId: "acme", ServiceId: "nope"})
			return err
		}, codes.NotFound},
		{"availability of another tenant's service", func() error {
			_, err := c.GetServiceAvailability(ctx, &distributionv1.GetServiceAvailabilityRequest{TenantId: "globex", ServiceId: "sales"})
			return err
		}, codes.NotFound},
		{"availability without a service", func() error {
			_, err := c.GetServiceAvailability(ctx, &distributionv1.GetServiceAvailabilityRequest{TenantId: "acme"})
			return err
		}, codes.InvalidArgument},
		{"task without an id", func() error {
			_, err := c.GetTask(ctx, &distributionv1.GetTaskRequest{TenantId: "acme"})
			return err
		}, codes.InvalidArgument},
		{"unknown task", func() error {
			_, err := c.GetQueuePosition(ctx, &distributionv1.GetQueuePositionRequest{TenantId: "acme", TaskId: "tk_nope"})
			return err
		}, codes.NotFound},
		{"negative priority", func() error {
			_, err := c.ReprioritizeTask(ctx, &distributionv1.ReprioritizeTaskRequest{TenantId: "acme", TaskId: "tk_1", Priority: -5})
			return err
		}, codes.InvalidArgument},
		{"absurd priority", func() error {
			_, err := c.ReprioritizeTask(ctx, &distributionv1.ReprioritizeTaskRequest{TenantId: "acme", TaskId: "tk_1", Priority: 1 << 30})
			return err
		}, codes.InvalidArgument},
		{"cancel an unknown task", func() error {
			_, err := c.CancelTask(ctx, &distributionv1.CancelTaskRequest{TenantId: "acme", TaskId: "tk_nope"})
			return err
		}, codes.NotFound},
		{"wrap-up naming task and session", func() error {
			_, err := c.SubmitWrapUp(ctx, &distributionv1.SubmitWrapUpRequest{TenantId: "acme", AgentId: "alice", TaskId: "tk_1", SessionId: "ss_1"})
			return err
		}, codes.InvalidArgument},
		{"wrap-up naming neither", func() error {
			_, err := c.SubmitWrapUp(ctx, &distributionv1.SubmitWrapUpRequest{TenantId: "acme", AgentId: "alice"})
			return err
		}, codes.InvalidArgument},
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

// The after-call work path through the API: codes are checked against the
// service's lists, a rejection changes nothing, and a supervisor reads the
// queue meanwhile.
func TestWrapUpOverTheAPI(t *testing.T) {
	h := start(t)
	c := h.asService(t)
	sup := h.withToken(t, h.token(t, h.keys, "acme", "sue", authn.RoleSupervisor))
	ctx := context.Background()
	if _, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AVAILABLE}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2"} {
		if err := h.eng.Enqueue(ctx, &engine.Task{ID: id, Tenant: "acme", SessionID: "ss_" + id, ServiceID: "sales", Service: wrapUpService}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
	if err != nil || len(st.GetState().GetOffers()) != 1 {
		t.Fatalf("alice = %v, %v; want one offer", st, err)
	}
	if _, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: st.GetState().GetOffers()[0].GetOfferId()}); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.EndSession(ctx, "acme", "ss_t1", "agent terminated"); err != nil {
		t.Fatal(err)
	}
	alice := h.withToken(t, h.token(t, h.keys, "acme", "alice", authn.RoleAgent))
	_, err = alice.SubmitWrapUp(ctx, &distributionv1.SubmitWrapUpRequest{TenantId: "acme", SessionId: "ss_t1", ServiceCodes: []string{"refund"}})
	if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "refund") {
		t.Errorf("a code not in the list: %v, want InvalidArgument naming it", err)
	}
	q, err := sup.GetQueuePosition(ctx, &distributionv1.GetQueuePositionRequest{TenantId: "acme", TaskId: "t2"})
	if err != nil || q.GetPosition() != 1 {
		t.Errorf("t2 = %v, %v; want still waiting first (alice wraps up)", q, err)
	}
	stats, err := sup.GetQueueStatistics(ctx, &distributionv1.GetQueueStatisticsRequest{TenantId: "acme", ServiceId: "sales"})
	if err != nil || stats.GetWaiting() != 1 || stats.GetAgentsWrapping() != 1 {
		t.Errorf("statistics = %v, %v; want 1 waiting and alice wrapping", stats, err)
	}
	res, err := alice.SubmitWrapUp(ctx, &distributionv1.SubmitWrapUpRequest{TenantId: "acme", SessionId: "ss_t1", ServiceCodes: []string{"complaint"}, Tags: []string{"vip"}})
	if err != nil || res.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_COMPLETED {
		t.Fatalf("SubmitWrapUp = %v, %v; want completed", res, err)
	}
	task, err := sup.GetTask(ctx, &distributionv1.GetTaskRequest{TenantId: "acme", TaskId: "t2"})
	if err != nil || task.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_OFFERED || task.GetTask().GetAgentId() != "alice" {
		t.Errorf("t2 = %v, %v; want offered to alice once she submitted", task, err)
	}
	// Another tenant's supervisor does not see it.
	gus := h.withToken(t, h.token(t, h.keys, "globex", "gus", authn.RoleSupervisor))
	if _, err := gus.GetTask(ctx, &distributionv1.GetTaskRequest{TenantId: "globex", TaskId: "t2"}); code(err) != codes.NotFound {
		t.Errorf("globex reads acme's task: %v, want NotFound", err)
	}
}
