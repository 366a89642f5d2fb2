package distribution_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

var authKey = []byte("0123456789abcdef0123456789abcdef")

// fakeConfig serves the two config lookups distribution makes.
type fakeConfig struct {
	configv1.UnimplementedServiceServiceServer
	configv1.UnimplementedUserServiceServer
}

func (fakeConfig) GetService(_ context.Context, r *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	switch {
	case r.GetTenantId() == "acme" && r.GetId() == "sales":
		return &configv1.GetServiceResponse{Service: &configv1.Service{Id: "sales", TenantId: "acme", Name: "Sales",
			Distribution: &configv1.DistributionSettings{RonaTimeout: durationpb.New(time.Hour), MaxParallelTasks: 1}}}, nil
	case r.GetTenantId() == "acme" && r.GetId() == "care":
		// After-call work of a minute, as deploy/examples/tenant.yaml has it.
		return &configv1.GetServiceResponse{Service: &configv1.Service{Id: "care", TenantId: "acme", Name: "Care",
			Distribution: &configv1.DistributionSettings{RonaTimeout: durationpb.New(time.Hour), MaxParallelTasks: 3,
				AfterCallWork: durationpb.New(time.Minute), ServiceCodes: []string{"complaint"}, Tags: []string{"vip"}}}}, nil
	}
	return nil, status.Error(codes.NotFound, "no such service")
}

// fakeUsers are acme's users: alice and bob, IM agents of sales and care;
// nora, an IM agent of care only; carl, an agent of sales without an IM
// license.
var fakeUsers = map[string]*configv1.User{
	"alice": {Id: "alice", TenantId: "acme", ImLicense: true, Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"sales", "care"}},
	"bob":   {Id: "bob", TenantId: "acme", ImLicense: true, Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"sales", "care"}},
	"nora":  {Id: "nora", TenantId: "acme", ImLicense: true, Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"care"}},
	"carl":  {Id: "carl", TenantId: "acme", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"sales"}},
}

func (fakeConfig) GetUser(_ context.Context, r *configv1.GetUserRequest) (*configv1.GetUserResponse, error) {
	u, ok := fakeUsers[r.GetId()]
	if r.GetTenantId() != "acme" || !ok {
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &configv1.GetUserResponse{User: u}, nil
}

type env struct {
	bus    *bus.Bus
	keys   *authn.Keys
	deps   distribution.Deps
	cfg    distribution.Config
	db     string
	events *observer
	// addr: the gRPC address of the process run started last.
	addr string
}

// observer records the DISTRIBUTION stream.
type observer struct {
	mu  sync.Mutex
	got []string
}

func (o *observer) handle(_ context.Context, m *bus.Message) error {
	var s string
	switch m.Kind() {
	case subjects.KindTaskQueued:
		var ev distributionv1.TaskQueued
		_ = m.Decode(&ev)
		s = "queued " + ev.GetTaskId()
	case subjects.KindTaskOffered:
		var ev distributionv1.TaskOffered
		_ = m.Decode(&ev)
		s = "offered " + ev.GetTaskId() + " to " + ev.GetAgentId()
	case subjects.KindTaskAccepted:
		var ev distributionv1.TaskAccepted
		_ = m.Decode(&ev)
		s = "accepted " + ev.GetTaskId() + " by " + ev.GetAgentId()
	case subjects.KindTaskCanceled:
		var ev distributionv1.TaskCanceled
		_ = m.Decode(&ev)
		s = "canceled " + ev.GetTaskId()
	default:
		s = m.Kind()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, s)
	return nil
}

func (o *observer) events() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	keys, err := authn.NewKeys(authKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t)
	b, err := bus.Connect(srv.ClientURL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	mc, err := mongodb.Connect(ctx, mongotest.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	db := mongotest.DatabaseName(t)
	t.Cleanup(func() {
		_ = mc.Database(db).Drop(context.Background())
		_ = mc.Disconnect(context.Background())
	})

	cfgSrv := grpcserver.New(log, keys)
	configv1.RegisterServiceServiceServer(cfgSrv.Server, fakeConfig{})
	configv1.RegisterUserServiceServer(cfgSrv.Server, fakeConfig{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- cfgSrv.Serve(sctx, lis) }()
	t.Cleanup(func() { stop(); <-served })
	cc, err := grpcserver.Dial(lis.Addr().String(), keys, distribution.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })

	cfg := distribution.Defaults()
	cfg.Database = db
	cfg.AuthKeys = hex.EncodeToString(authKey)
	return &env{bus: b, keys: keys, cfg: cfg, db: db, deps: distribution.Deps{Bus: b, Mongo: mc, ConfigConn: cc, AuthKeys: keys}}
}

// run starts distribution on a fresh listener and returns a client acting
// as the sessions gateway; the returned func stops it.
func (e *env) run(t *testing.T) (distributionv1.DistributionServiceClient, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deps := e.deps
	deps.GRPCListener = lis
	e.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- distribution.Run(ctx, e.cfg, deps, testLog()) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	conn, err := grpcserver.Dial(lis.Addr().String(), e.keys, "sessions")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return distributionv1.NewDistributionServiceClient(conn), stop
}

func (e *env) observe(t *testing.T) {
	t.Helper()
	e.events = &observer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.bus.Consume(ctx, bus.ConsumerSpec{Stream: subjects.StreamDistribution, Durable: "test-observer"}, e.events.handle)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (e *env) publish(t *testing.T, subject string, ev proto.Message, msgID string) {
	t.Helper()
	if _, err := e.bus.Publish(context.Background(), subject, ev, bus.MsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

func request(task, session, service string) *workflowv1.TaskRequested {
	return &workflowv1.TaskRequested{TenantId: "acme", TaskId: task, SessionId: session, ServiceId: service, RequestedAt: timestamppb.Now()}
}

func setAvailable(t *testing.T, c distributionv1.DistributionServiceClient) {
	t.Helper()
	// The first call also waits for the service to be up.
	waitFor(t, "SetAgentPresence to succeed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
		return err == nil
	})
}

func offerOf(t *testing.T, c distributionv1.DistributionServiceClient, task string) *distributionv1.Offer {
	t.Helper()
	var offer *distributionv1.Offer
	waitFor(t, "an offer of "+task, func() bool {
		res, err := c.GetAgentState(context.Background(), &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
		if err != nil {
			return false
		}
		for _, o := range res.GetState().GetOffers() {
			if o.GetTaskId() == task {
				offer = o
			}
		}
		return offer != nil
	})
	return offer
}

func TestRunEndToEnd(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c, stop := e.run(t)
	setAvailable(t, c)
	e.observe(t)

	// A task request, redelivered outside JetStream's dedupe window (a
	// different msg id), is queued and offered once.
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_a", "ss_a", "sales"), "req-a-1")
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_a", "ss_a", "sales"), "req-a-2")
	offer := offerOf(t, c, "tk_a")
	if _, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: offer.GetOfferId()}); err != nil {
		t.Fatalf("AcceptTask: %v", err)
	}
	// The session ends: alice is free again.
	e.publish(t, subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_a", Reason: "done"}, "end-a")
	waitFor(t, "alice to be free", func() bool {
		res, err := c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
		return err == nil && res.GetState().GetActiveTasks() == 0
	})

	// A session that ended before its task request arrived is not queued.
	e.publish(t, subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_b", Reason: "customer left"}, "end-b")
	waitFor(t, "ss_b recorded as ended", func() bool {
		n, err := e.deps.Mongo.Database(e.db).Collection("ended_sessions").CountDocuments(ctx, bson.M{"_id": "acme/ss_b"})
		return err == nil && n == 1
	})
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_b", "ss_b", "sales"), "req-b")
	// A request without a service is dead-lettered, and does not block the
	// one behind it.
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_bad", "ss_bad", ""), "req-bad")
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_c", "ss_c", "sales"), "req-c")
	first := offerOf(t, c, "tk_c")
	want := []string{"queued tk_a", "offered tk_a to alice", "accepted tk_a by alice", subjects.KindTaskCompleted, "queued tk_c", "offered tk_c to alice"}
	waitFor(t, "the events", func() bool { return len(e.events.events()) >= len(want) })
	if got := e.events.events(); !slices.Equal(got, want) {
		t.Errorf("DISTRIBUTION events:\n got  %q\n want %q", got, want)
	}
	dl, err := e.bus.JS.Stream(ctx, subjects.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dl.GetLastMsgForSubject(ctx, subjects.DeadLetter(subjects.ConsumerDistributionTasks))
	if err != nil {
		t.Fatalf("no dead letter from %s: %v", subjects.ConsumerDistributionTasks, err)
	}
	var bad workflowv1.TaskRequested
	if err := proto.Unmarshal(msg.Data, &bad); err != nil || bad.GetTaskId() != "tk_bad" {
		t.Errorf("dead letter holds %v (%v), want tk_bad", &bad, err)
	}

	// A restart: the offer of tk_c was stored before alice learnt of it,
	// so the new process keeps it and alice may still accept it.
	stop()
	c2, _ := e.run(t)
	second := offerOf(t, c2, "tk_c")
	if second.GetOfferId() != first.GetOfferId() {
		t.Errorf("offer after a restart = %s, want the stored %s", second.GetOfferId(), first.GetOfferId())
	}
	if _, err := c2.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: first.GetOfferId()}); err != nil {
		t.Errorf("AcceptTask after restart: %v", err)
	}
	waitFor(t, "tk_c accepted", func() bool { return slices.Contains(e.events.events(), "accepted tk_c by alice") })
}

// With after-call work configured, the agent who ends a session gets no
// offer until they submit their wrap-up (or it runs out), however much
// capacity they have.
func TestAfterCallWorkBlocksOffers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c, _ := e.run(t)
	setAvailable(t, c)
	e.observe(t)

	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_1", "ss_1", "care"), "req-1")
	offer := offerOf(t, c, "tk_1")
	if _, err := c.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: offer.GetOfferId()}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_1", Reason: "agent terminated"}, "end-1")
	// Session ends and task requests come through different consumers:
	// let the end be handled first, as it is when a customer writes again
	// after the agent terminated.
	waitFor(t, "the wrap-up to start", func() bool { return slices.Contains(e.events.events(), subjects.KindTaskWrapUpStarted) })
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_2", "ss_2", "care"), "req-2")
	waitFor(t, "tk_2 queued", func() bool { return slices.Contains(e.events.events(), "queued tk_2") })
	res, err := c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	st := res.GetState()
	if len(st.GetOffers()) != 0 || st.GetActivity() != distributionv1.AgentActivity_AGENT_ACTIVITY_WRAPPING {
		t.Fatalf("alice after Terminate = %v, want wrapping with no offer", st)
	}
	if until := st.GetWrapUpUntil().AsTime(); time.Until(until) < 30*time.Second {
		t.Errorf("wrap-up ends at %v, want about a minute from the end of the session", until)
	}
	if _, err := c.SubmitWrapUp(ctx, &distributionv1.SubmitWrapUpRequest{TenantId: "acme", AgentId: "alice", SessionId: "ss_1", ServiceCodes: []string{"complaint"}}); err != nil {
		t.Fatal(err)
	}
	offerOf(t, c, "tk_2")
	want := []string{"queued tk_1", "offered tk_1 to alice", "accepted tk_1 by alice", subjects.KindTaskWrapUpStarted, "queued tk_2",
		subjects.KindTaskWrapUpEnded, subjects.KindTaskCompleted, "offered tk_2 to alice"}
	waitFor(t, "the events", func() bool { return len(e.events.events()) >= len(want) })
	if got := e.events.events(); !slices.Equal(got, want) {
		t.Errorf("DISTRIBUTION events:\n got  %q\n want %q", got, want)
	}
}

// testLog discards unless DISTRIBUTION_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("DISTRIBUTION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
