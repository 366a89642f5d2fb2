package distribution_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// recorder keeps the DISTRIBUTION stream's events with the fields a
// started task's events are checked on (the offer id of an accept too).
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) handle(_ context.Context, m *bus.Message) error {
	var s string
	switch m.Kind() {
	case subjects.KindTaskQueued:
		var ev distributionv1.TaskQueued
		if err := m.Decode(&ev); err != nil {
			return err
		}
		s = fmt.Sprintf("queued %s of %s in %s", ev.GetTaskId(), ev.GetSessionId(), ev.GetServiceId())
	case subjects.KindTaskOffered:
		var ev distributionv1.TaskOffered
		if err := m.Decode(&ev); err != nil {
			return err
		}
		s = fmt.Sprintf("offered %s to %s", ev.GetTaskId(), ev.GetAgentId())
	case subjects.KindTaskAccepted:
		var ev distributionv1.TaskAccepted
		if err := m.Decode(&ev); err != nil {
			return err
		}
		s = fmt.Sprintf("accepted %s of %s by %s offer %q", ev.GetTaskId(), ev.GetSessionId(), ev.GetAgentId(), ev.GetOfferId())
	case subjects.KindTaskCompleted:
		var ev distributionv1.TaskCompleted
		if err := m.Decode(&ev); err != nil {
			return err
		}
		s = fmt.Sprintf("completed %s by %s", ev.GetTaskId(), ev.GetAgentId())
	default:
		s = m.Kind()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
	return nil
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// expect waits for as many events as want holds and compares them all
// (a publish made before the last of them is among them: the engine
// publishes in decision order).
func (r *recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d events", len(want)), func() bool { return len(r.events()) >= len(want) })
	if got := r.events(); !slices.Equal(got, want) {
		t.Fatalf("DISTRIBUTION events:\n got  %q\n want %q", got, want)
	}
}

// record follows the DISTRIBUTION stream (made by the running service).
func (e *env) record(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.bus.Consume(ctx, bus.ConsumerSpec{Stream: subjects.StreamDistribution, Durable: "test-recorder"}, r.handle)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// as connects to the process run started last with a token of acme.
func (e *env) as(t *testing.T, subject string, roles ...string) distributionv1.DistributionServiceClient {
	t.Helper()
	tok, err := e.keys.Mint(authn.Claims{Tenant: "acme", Roles: roles, RegisteredClaims: jwt.RegisteredClaims{Subject: subject}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return distributionv1.NewDistributionServiceClient(conn)
}

func setPresence(t *testing.T, c distributionv1.DistributionServiceClient, agent string, p distributionv1.Presence) {
	t.Helper()
	if _, err := c.SetAgentPresence(context.Background(), &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: agent, Presence: p}); err != nil {
		t.Fatalf("%s %v: %v", agent, p, err)
	}
}

func start(ctx context.Context, c distributionv1.DistributionServiceClient, service, session, agent string) (string, error) {
	res, err := c.StartAgentTask(ctx, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: service, SessionId: session, AgentId: agent})
	return res.GetTaskId(), err
}

// getTask waits until the running process answers for the task (it may
// still be taking the tenant over).
func getTask(t *testing.T, c distributionv1.DistributionServiceClient, id string) *distributionv1.Task {
	t.Helper()
	var task *distributionv1.Task
	waitFor(t, "task "+id, func() bool {
		res, err := c.GetTask(context.Background(), &distributionv1.GetTaskRequest{TenantId: "acme", TaskId: id})
		task = res.GetTask()
		return err == nil
	})
	return task
}

func agentState(t *testing.T, c distributionv1.DistributionServiceClient, agent string) *distributionv1.AgentState {
	t.Helper()
	res, err := c.GetAgentState(context.Background(), &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: agent})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetState()
}

// An agent starts a conversation: its task is accepted by them at once
// (TaskQueued, then TaskAccepted without an offer), uses their capacity (a
// waiting task of the service is not offered to them), survives a
// restart, is answered again for a retry without a new event, and the
// session's end completes it and frees them for the waiting task.
func TestStartAgentTask(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c, stop := e.run(t)
	setAvailable(t, c)
	rec := e.record(t)

	id, err := start(ctx, c, "sales", "ss_s1", "alice")
	if err != nil {
		t.Fatalf("StartAgentTask: %v", err)
	}
	if id == "" {
		t.Fatal("StartAgentTask answered no task id")
	}
	started := []string{"queued " + id + " of ss_s1 in sales", "accepted " + id + " of ss_s1 by alice offer \"\""}
	rec.expect(t, started...)
	task := getTask(t, c, id)
	if task.GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || task.GetAgentId() != "alice" || task.GetSessionId() != "ss_s1" ||
		task.GetServiceId() != "sales" || task.GetAcceptedAt() == nil || task.GetPosition() != 0 || task.GetPriority() != 0 {
		t.Errorf("GetTask = %v, want accepted by alice in sales, never waiting", task)
	}
	if st := agentState(t, c, "alice"); st.GetActiveTasks() != 1 || len(st.GetOffers()) != 0 {
		t.Errorf("alice = %v, want one active task", st)
	}

	// A retry, by the sessions gateway or by alice herself, gets the same
	// task.
	for _, who := range []struct {
		name string
		c    distributionv1.DistributionServiceClient
	}{{"the gateway", c}, {"alice", e.as(t, "alice", authn.RoleAgent)}} {
		again, err := start(ctx, who.c, "sales", "ss_s1", "alice")
		if err != nil || again != id {
			t.Errorf("StartAgentTask again by %s = %q, %v; want %s", who.name, again, err, id)
		}
	}

	// A restart: the new process loads the task accepted by alice.
	stop()
	c2, _ := e.run(t)
	if task := getTask(t, c2, id); task.GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || task.GetAgentId() != "alice" {
		t.Errorf("after a restart GetTask = %v, want accepted by alice", task)
	}
	if again, err := start(ctx, c2, "sales", "ss_s1", "alice"); err != nil || again != id {
		t.Errorf("StartAgentTask after a restart = %q, %v; want %s", again, err, id)
	}
	// Alice parks it and resumes it, as any accepted task.
	alice := e.as(t, "alice", authn.RoleAgent)
	if res, err := alice.ParkTask(ctx, &distributionv1.ParkTaskRequest{TenantId: "acme", TaskId: id}); err != nil || res.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_PARKED {
		t.Errorf("ParkTask = %v, %v; want parked", res, err)
	}
	if res, err := alice.ResumeTask(ctx, &distributionv1.ResumeTaskRequest{TenantId: "acme", TaskId: id}); err != nil || res.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED {
		t.Errorf("ResumeTask = %v, %v; want accepted", res, err)
	}
	started = append(started, subjects.KindTaskParked, subjects.KindTaskResumed)

	// Sales has one task per agent: alice is full, the next task waits.
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_q", "ss_q", "sales"), "req-q")
	if q := getTask(t, c2, "tk_q"); q.GetState() != distributionv1.TaskState_TASK_STATE_QUEUED {
		t.Errorf("tk_q = %v, want queued (alice is at capacity)", q)
	}
	if st := agentState(t, c2, "alice"); st.GetActiveTasks() != 1 || len(st.GetOffers()) != 0 {
		t.Errorf("alice = %v, want one active task and no offer", st)
	}
	// Nothing but the park, the resume and tk_q's arrival since the
	// start: the retries (and the restart) published nothing new.
	rec.expect(t, append(slices.Clone(started), "queued tk_q of ss_q in sales")...)

	// The session ends: the task completes and alice takes tk_q.
	e.publish(t, subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_s1", Reason: "agent terminated"}, "end-s1")
	offerOf(t, c2, "tk_q")
	rec.expect(t, append(slices.Clone(started), "queued tk_q of ss_q in sales", "completed "+id+" by alice", "offered tk_q to alice")...)
	if task := getTask(t, c2, id); task.GetState() != distributionv1.TaskState_TASK_STATE_COMPLETED {
		t.Errorf("after the session's end GetTask = %v, want completed", task)
	}
	if again, err := start(ctx, c2, "sales", "ss_s1", "alice"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("StartAgentTask for the ended session = %q, %v; want FailedPrecondition", again, err)
	}
}

// Every refusal says what was wrong, with the code the contract names,
// and leaves no task, event or agent changed. An agent who is away may
// start a conversation.
func TestStartAgentTaskRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c, _ := e.run(t)
	setAvailable(t, c)
	setPresence(t, c, "nora", distributionv1.Presence_PRESENCE_AVAILABLE)
	setPresence(t, c, "carl", distributionv1.Presence_PRESENCE_AWAY)
	rec := e.record(t)

	id, err := start(ctx, c, "sales", "ss_1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	// A session whose task waits for an agent (nobody free in sales).
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_w", "ss_w", "sales"), "req-w")
	if w := getTask(t, c, "tk_w"); w.GetState() != distributionv1.TaskState_TASK_STATE_QUEUED {
		t.Fatalf("tk_w = %v, want queued", w)
	}

	sup := e.as(t, "sue", authn.RoleSupervisor)
	bob := e.as(t, "bob", authn.RoleAgent)
	for _, tc := range []struct {
		name   string
		client distributionv1.DistributionServiceClient
		req    *distributionv1.StartAgentTaskRequest
		want   codes.Code
		says   string
	}{
		{"no tenant", c, &distributionv1.StartAgentTaskRequest{ServiceId: "sales", SessionId: "ss_2", AgentId: "alice"}, codes.InvalidArgument, "tenant_id"},
		{"no agent", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_2"}, codes.InvalidArgument, "agent_id"},
		{"no service", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", SessionId: "ss_2", AgentId: "alice"}, codes.InvalidArgument, "service_id"},
		{"no session", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", AgentId: "alice"}, codes.InvalidArgument, "session_id"},
		{"unknown service", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "nope", SessionId: "ss_2", AgentId: "alice"}, codes.NotFound, `"nope"`},
		{"unknown agent", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_2", AgentId: "zed"}, codes.NotFound, `"zed"`},
		{"not a member", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_2", AgentId: "nora"}, codes.PermissionDenied, "nora is not a member of service sales"},
		{"no IM license", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_2", AgentId: "carl"}, codes.PermissionDenied, "IM license"},
		{"offline", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_2", AgentId: "bob"}, codes.FailedPrecondition, "bob is offline"},
		{"at capacity", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_2", AgentId: "alice"}, codes.ResourceExhausted, "alice is at capacity (1 of 1 tasks)"},
		{"another agent's session", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_1", AgentId: "bob"}, codes.FailedPrecondition, "of agent alice"},
		{"a session whose task waits", c, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_w", AgentId: "alice"}, codes.FailedPrecondition, "tk_w"},
		{"a supervisor for alice", sup, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_2", AgentId: "alice"}, codes.PermissionDenied, "role"},
		{"bob for alice", bob, &distributionv1.StartAgentTaskRequest{TenantId: "acme", ServiceId: "sales", SessionId: "ss_2", AgentId: "alice"}, codes.PermissionDenied, "role"},
	} {
		_, err := tc.client.StartAgentTask(ctx, tc.req)
		if status.Code(err) != tc.want || !strings.Contains(status.Convert(err).Message(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}

	// Nothing changed: the events are those of ss_1's start and of the
	// waiting tasks (tk_m marks the end), the bucket of open tasks holds
	// those tasks only, nothing closed, and the agents hold what they held.
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_m", "ss_m", "sales"), "req-m")
	rec.expect(t, "queued "+id+" of ss_1 in sales", "accepted "+id+" of ss_1 by alice offer \"\"", "queued tk_w of ss_w in sales", "queued tk_m of ss_m in sales")
	keys, err := kvcas.Keys(ctx, e.bus.JS, subjects.BucketDistributionTasks)
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, k := range keys {
		if strings.HasPrefix(k, "acme.") {
			open = append(open, k)
		}
	}
	slices.Sort(open)
	if want := []string{"acme." + id, "acme.tk_m", "acme.tk_w"}; !slices.Equal(open, want) {
		t.Errorf("open tasks = %q, want %q", open, want)
	}
	if n, err := e.deps.Mongo.Database(e.db).Collection("tasks").CountDocuments(ctx, bson.M{}); err != nil || n != 0 {
		t.Errorf("%d task records (%v), want none", n, err)
	}
	for agent, active := range map[string]int32{"alice": 1, "bob": 0, "nora": 0, "carl": 0} {
		if st := agentState(t, c, agent); st.GetActiveTasks() != active || len(st.GetOffers()) != 0 {
			t.Errorf("%s = %v, want %d active tasks and no offer", agent, st, active)
		}
	}
	if st := agentState(t, c, "bob"); st.GetPresence() != distributionv1.Presence_PRESENCE_OFFLINE {
		t.Errorf("bob = %v, want still offline", st)
	}

	// Away is enough to start one (only offline refuses).
	setPresence(t, c, "nora", distributionv1.Presence_PRESENCE_AWAY)
	nid, err := start(ctx, c, "care", "ss_n", "nora")
	if err != nil {
		t.Fatalf("nora, away, starts a conversation: %v", err)
	}
	if task := getTask(t, c, nid); task.GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || task.GetAgentId() != "nora" {
		t.Errorf("nora's task = %v, want accepted by her", task)
	}
	// It moves on as an accepted task does: nora transfers it to sales,
	// where it waits (nobody there is free).
	nora := e.as(t, "nora", authn.RoleAgent)
	res, err := nora.TransferTask(ctx, &distributionv1.TransferTaskRequest{TenantId: "acme", TaskId: nid, ToServiceId: "sales", Note: "a sales question"})
	if err != nil || res.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_QUEUED || res.GetTask().GetServiceId() != "sales" {
		t.Errorf("TransferTask of nora's task = %v, %v; want queued in sales", res, err)
	}
	rec.expect(t, "queued "+id+" of ss_1 in sales", "accepted "+id+" of ss_1 by alice offer \"\"", "queued tk_w of ss_w in sales", "queued tk_m of ss_m in sales",
		"queued "+nid+" of ss_n in care", "accepted "+nid+" of ss_n by nora offer \"\"", subjects.KindTaskTransferred)
	if st := agentState(t, c, "nora"); st.GetActiveTasks() != 0 {
		t.Errorf("nora = %v, want no task once she transferred it", st)
	}
}

// Through any replica: a replica that does not hold the tenant forwards
// StartAgentTask to the one that does.
func TestStartAgentTaskThroughEveryReplica(t *testing.T) {
	e := newEnv(t)
	reps := e.startReplicas(t, 2)
	ctx := context.Background()
	call := func(f func(context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return f(c)
	}
	for _, ag := range []string{"ag1", "ag2"} {
		waitFor(t, "presence of "+ag, func() bool {
			return call(func(c context.Context) error {
				_, err := reps[0].client.SetAgentPresence(c, &distributionv1.SetAgentPresenceRequest{TenantId: "north", AgentId: ag, Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
				return err
			}) == nil
		})
	}
	for i, r := range reps {
		ag, session := fmt.Sprintf("ag%d", i+1), fmt.Sprintf("ss_fw%d", i+1)
		var id string
		var err error
		// Unavailable: a hand-over under way, which a caller retries.
		waitFor(t, "StartAgentTask through "+r.name, func() bool {
			err = call(func(c context.Context) error {
				res, err := r.client.StartAgentTask(c, &distributionv1.StartAgentTaskRequest{TenantId: "north", ServiceId: "sales", SessionId: session, AgentId: ag})
				id = res.GetTaskId()
				return err
			})
			return status.Code(err) != codes.Unavailable
		})
		if err != nil {
			t.Fatalf("StartAgentTask for %s through %s: %v", ag, r.name, err)
		}
		other := reps[(i+1)%len(reps)]
		waitFor(t, "GetTask through "+other.name, func() bool {
			err = call(func(c context.Context) error {
				res, err := other.client.GetTask(c, &distributionv1.GetTaskRequest{TenantId: "north", TaskId: id})
				if err == nil && (res.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || res.GetTask().GetAgentId() != ag) {
					err = fmt.Errorf("task %v, want accepted by %s", res.GetTask(), ag)
				}
				return err
			})
			return status.Code(err) != codes.Unavailable
		})
		if err != nil {
			t.Errorf("task started through %s, read through %s: %v", r.name, other.name, err)
		}
	}
}
