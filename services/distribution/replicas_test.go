package distribution_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
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
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// anyConfig knows service "sales" (one task per agent, no RONA within a
// test) in every tenant, and every user whose id starts with "ag" as an
// IM agent of it.
type anyConfig struct {
	configv1.UnimplementedServiceServiceServer
	configv1.UnimplementedUserServiceServer
}

func (anyConfig) GetService(_ context.Context, r *configv1.GetServiceRequest) (*configv1.GetServiceResponse, error) {
	if r.GetId() != "sales" {
		return nil, status.Error(codes.NotFound, "no such service")
	}
	return &configv1.GetServiceResponse{Service: &configv1.Service{Id: "sales", TenantId: r.GetTenantId(), Name: "Sales",
		Distribution: &configv1.DistributionSettings{RonaTimeout: durationpb.New(time.Hour), MaxParallelTasks: 1}}}, nil
}

func (anyConfig) GetUser(_ context.Context, r *configv1.GetUserRequest) (*configv1.GetUserResponse, error) {
	if !strings.HasPrefix(r.GetId(), "ag") {
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &configv1.GetUserResponse{User: &configv1.User{Id: r.GetId(), TenantId: r.GetTenantId(), ImLicense: true,
		Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"sales"}}}, nil
}

// replica is one distribution process of a test: its own NATS connection
// and gRPC address.
type replica struct {
	name   string
	addr   string
	bus    *bus.Bus
	client distributionv1.DistributionServiceClient
	cancel context.CancelFunc
	done   chan error
}

// startReplicas runs n replicas over e's NATS and MongoDB, with config
// from anyConfig.
func (e *env) startReplicas(t *testing.T, n int) []*replica {
	t.Helper()
	cfgSrv := grpcserver.New(testLog(), e.keys)
	configv1.RegisterServiceServiceServer(cfgSrv.Server, anyConfig{})
	configv1.RegisterUserServiceServer(cfgSrv.Server, anyConfig{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- cfgSrv.Serve(sctx, lis) }()
	t.Cleanup(func() { stop(); <-served })
	cc, err := grpcserver.Dial(lis.Addr().String(), e.keys, distribution.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })

	var out []*replica
	for i := range n {
		r := &replica{name: fmt.Sprintf("r%d", i+1), done: make(chan error, 1)}
		r.bus, err = bus.Connect(e.bus.NC.ConnectedUrl(), t.Name()+"-"+r.name, testLog())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.bus.Close)
		glis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := e.cfg
		cfg.ReplicaID, cfg.Partitions, cfg.ReplicaTTL = r.name, 8, 2*time.Second
		deps := e.deps
		deps.Bus, deps.GRPCListener, deps.ConfigConn = r.bus, glis, cc
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go func() { r.done <- distribution.Run(ctx, cfg, deps, testLog().With("replica", r.name)) }()
		t.Cleanup(func() { cancel(); <-r.done })
		conn, err := grpcserver.Dial(glis.Addr().String(), e.keys, "sessions")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		r.client, r.addr = distributionv1.NewDistributionServiceClient(conn), glis.Addr().String()
		out = append(out, r)
	}
	return out
}

// ledger checks the DISTRIBUTION stream as it comes: a task has at most
// one outstanding offer, an agent holds at most one task (offered or
// accepted: capacity 1), and it counts the tasks accepted and completed.
type ledger struct {
	mu        sync.Mutex
	offerOf   map[string]string   // task -> outstanding offer
	holds     map[string][]string // tenant/agent -> tasks offered or accepted
	agentOf   map[string]string   // tenant/task -> tenant/agent
	accepted  map[string]bool
	completed map[string]bool
	active    map[string]bool // accepted, not completed
	problems  []string
}

func newLedger() *ledger {
	return &ledger{offerOf: map[string]string{}, holds: map[string][]string{}, agentOf: map[string]string{},
		accepted: map[string]bool{}, completed: map[string]bool{}, active: map[string]bool{}}
}

func (l *ledger) release(task string) {
	who := l.agentOf[task]
	delete(l.agentOf, task)
	var keep []string
	for _, x := range l.holds[who] {
		if x != task {
			keep = append(keep, x)
		}
	}
	l.holds[who] = keep
}

func (l *ledger) handle(_ context.Context, m *bus.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch m.Kind() {
	case subjects.KindTaskOffered:
		var ev distributionv1.TaskOffered
		if err := m.Decode(&ev); err != nil {
			return err
		}
		task, who := ev.GetTenantId()+"/"+ev.GetTaskId(), ev.GetTenantId()+"/"+ev.GetAgentId()
		if prev, ok := l.offerOf[task]; ok && prev != ev.GetOfferId() {
			l.problems = append(l.problems, fmt.Sprintf("task %s offered to %s (%s) while offer %s is outstanding", task, who, ev.GetOfferId(), prev))
		}
		if l.active[task] {
			l.problems = append(l.problems, fmt.Sprintf("task %s offered to %s while accepted", task, who))
		}
		if l.completed[task] {
			l.problems = append(l.problems, fmt.Sprintf("task %s offered to %s after it completed", task, who))
		}
		if held := l.holds[who]; len(held) > 0 && l.agentOf[task] != who {
			l.problems = append(l.problems, fmt.Sprintf("agent %s offered %s while holding %v (capacity 1)", who, task, held))
		}
		if l.agentOf[task] != who {
			l.holds[who] = append(l.holds[who], task)
		}
		l.offerOf[task], l.agentOf[task] = ev.GetOfferId(), who
	case subjects.KindTaskAccepted:
		var ev distributionv1.TaskAccepted
		if err := m.Decode(&ev); err != nil {
			return err
		}
		task := ev.GetTenantId() + "/" + ev.GetTaskId()
		delete(l.offerOf, task)
		l.accepted[task], l.active[task] = true, true
	case subjects.KindTaskDeclined, subjects.KindTaskOfferTimedOut:
		var ev distributionv1.TaskDeclined // the same fields as TaskOfferTimedOut
		if err := m.Decode(&ev); err != nil {
			return err
		}
		task := ev.GetTenantId() + "/" + ev.GetTaskId()
		delete(l.offerOf, task)
		l.release(task)
	case subjects.KindTaskCompleted, subjects.KindTaskCanceled:
		var ev distributionv1.TaskCompleted
		if err := m.Decode(&ev); err != nil {
			return err
		}
		task := ev.GetTenantId() + "/" + ev.GetTaskId()
		delete(l.offerOf, task)
		delete(l.active, task)
		l.release(task)
		if m.Kind() == subjects.KindTaskCompleted {
			l.completed[task] = true
		}
	}
	return nil
}

func (l *ledger) counts() (accepted, completed int, problems []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted), len(l.completed), append([]string(nil), l.problems...)
}

// Three replicas share four tenants; agents answer offers through any
// replica; one replica dies (its connection is cut, it never leaves the
// group) in the middle of the offers. Every task is offered, accepted and
// completed, none is ever offered twice at once, no agent holds more than
// its capacity, and every replica answers for every tenant.
func TestReplicasShareTenantsAndSurviveOneDying(t *testing.T) {
	e := newEnv(t)
	reps := e.startReplicas(t, 3)

	tenants := []string{"north", "south", "east", "west"}
	agents := []string{"ag1", "ag2", "ag3"}
	const perTenant = 15
	// The tenants fall in more than one partition.
	parts := map[int]bool{}
	for _, tn := range tenants {
		parts[engine.PartitionOf(tn, 8)] = true
	}
	if len(parts) < 2 {
		t.Fatalf("tenants %v all in one partition", tenants)
	}

	var live atomic.Pointer[[]*replica]
	live.Store(&reps)
	anyClient := func() distributionv1.DistributionServiceClient {
		rs := *live.Load()
		return rs[rand.IntN(len(rs))].client
	}
	ctx := context.Background()
	call := func(f func(context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return f(c)
	}

	// Every agent available, through whichever replica (most calls are
	// forwarded: two replicas in three do not hold a given tenant).
	for _, tn := range tenants {
		for _, ag := range agents {
			waitFor(t, "presence of "+tn+"/"+ag, func() bool {
				return call(func(c context.Context) error {
					_, err := anyClient().SetAgentPresence(c, &distributionv1.SetAgentPresenceRequest{TenantId: tn, AgentId: ag, Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
					return err
				}) == nil
			})
		}
	}
	// Each replica answers for each tenant, itself or by forwarding.
	for _, r := range reps {
		for _, tn := range tenants {
			err := call(func(c context.Context) error {
				res, err := r.client.GetAgentState(c, &distributionv1.GetAgentStateRequest{TenantId: tn, AgentId: "ag1"})
				if err == nil && res.GetState().GetPresence() != distributionv1.Presence_PRESENCE_AVAILABLE {
					err = fmt.Errorf("ag1 is %v", res.GetState().GetPresence())
				}
				return err
			})
			if err != nil {
				t.Errorf("GetAgentState of %s through %s: %v", tn, r.name, err)
			}
		}
	}

	// The DISTRIBUTION stream exists now (the replicas made it).
	led := newLedger()
	octx, ocancel := context.WithCancel(context.Background())
	odone := make(chan error, 1)
	go func() {
		odone <- e.bus.Consume(octx, bus.ConsumerSpec{Stream: subjects.StreamDistribution, Durable: "test-ledger"}, led.handle)
	}()
	t.Cleanup(func() {
		ocancel()
		if err := <-odone; err != nil {
			t.Errorf("ledger: %v", err)
		}
	})

	// The agents: accept whatever they are offered, then the session ends.
	actx, acancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, tn := range tenants {
		for _, ag := range agents {
			wg.Go(func() {
				for actx.Err() == nil {
					var offers []*distributionv1.Offer
					_ = call(func(c context.Context) error {
						res, err := anyClient().GetAgentState(c, &distributionv1.GetAgentStateRequest{TenantId: tn, AgentId: ag})
						offers = res.GetState().GetOffers()
						return err
					})
					for _, o := range offers {
						// As a console does: an accept whose answer was lost
						// (a replica going away) is asked again, for as long
						// as the hand-over takes (on a loaded machine that
						// outlasted a fixed number of tries, and the task was
						// left accepted with nobody ending its session);
						// accepting is idempotent.
						var err error
						for actx.Err() == nil {
							err = call(func(c context.Context) error {
								_, err := anyClient().AcceptTask(c, &distributionv1.AcceptTaskRequest{TenantId: tn, AgentId: ag, OfferId: o.GetOfferId()})
								return err
							})
							if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded && c != codes.Canceled {
								break
							}
							time.Sleep(50 * time.Millisecond)
						}
						if err == nil {
							_, err = e.bus.Publish(ctx, subjects.SessionEnded(tn), &sessionv1.SessionEnded{TenantId: tn, SessionId: o.GetSessionId(), Reason: "done"}, bus.MsgID("end-"+tn+"-"+o.GetSessionId()))
							if err != nil {
								t.Errorf("publish session end: %v", err)
							}
						}
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
	}
	defer func() { acancel(); wg.Wait() }()

	request := func(from, to int) {
		for i := from; i < to; i++ {
			for _, tn := range tenants {
				id := fmt.Sprintf("tk_%s_%02d", tn, i) // task ids are unique across tenants (events' msg ids name them alone)
				e.publish(t, subjects.WorkflowTaskRequested(tn), &workflowv1.TaskRequested{TenantId: tn, TaskId: id, SessionId: "ss_" + id, ServiceId: "sales", RequestedAt: timestamppb.Now()}, "req-"+tn+"-"+id)
			}
		}
	}
	// Half the requests now, the rest once r2 is dead, so its tenants have
	// work the survivors must take over however fast the first half goes.
	request(0, perTenant/2)
	total := perTenant * len(tenants)
	waitFor(t, "a third of the tasks accepted", func() bool {
		a, _, _ := led.counts()
		return a >= total/3
	})

	// r2 dies: its connection is cut and it never leaves the group; the
	// others drop it once its key ages out and take its partitions over.
	dead := reps[1]
	rest := []*replica{reps[0], reps[2]}
	live.Store(&rest)
	dead.bus.NC.Close() // at once, not drained: it cannot leave
	dead.cancel()
	request(perTenant/2, perTenant)

	deadline := time.Now().Add(120 * time.Second)
	for {
		a, c, _ := led.counts()
		if a == total && c == total {
			break
		}
		if time.Now().After(deadline) {
			led.mu.Lock()
			var open []string
			for _, tn := range tenants {
				for i := range perTenant {
					task := fmt.Sprintf("%s/tk_%s_%02d", tn, tn, i)
					if !led.completed[task] {
						open = append(open, fmt.Sprintf("%s (accepted %v)", task, led.accepted[task]))
					}
				}
			}
			led.mu.Unlock()
			t.Fatalf("after a replica died: %d of %d tasks accepted, %d completed; not completed: %v", a, total, c, open)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, _, problems := led.counts(); len(problems) > 0 {
		t.Errorf("%d violations, first ones:\n%s", len(problems), strings.Join(problems[:min(len(problems), 10)], "\n"))
	}
	// The survivors still answer for every tenant (Unavailable: a
	// hand-over still under way, which a caller retries).
	for _, r := range rest {
		for _, tn := range tenants {
			var err error
			waitFor(t, "an answer for "+tn+" through "+r.name, func() bool {
				err = call(func(c context.Context) error {
					_, err := r.client.GetQueueStatistics(c, &distributionv1.GetQueueStatisticsRequest{TenantId: tn, ServiceId: "sales"})
					return err
				})
				return status.Code(err) != codes.Unavailable
			})
			if err != nil {
				t.Errorf("GetQueueStatistics of %s through %s: %v", tn, r.name, err)
			}
		}
	}
}

// A forwarded call is checked again by the replica that answers it: a
// caller of one tenant gets nothing of another's through any replica, and
// a call put on the forwarding subject by hand gets no further than a
// direct one.
func TestForwardedCallsKeepTenantIsolation(t *testing.T) {
	e := newEnv(t)
	reps := e.startReplicas(t, 2)
	ctx := context.Background()
	for _, tn := range []string{"north", "south"} {
		waitFor(t, "presence in "+tn, func() bool {
			_, err := reps[0].client.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: tn, AgentId: "ag1", Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
			return err == nil
		})
	}
	mint := func(tenant, subject string, roles ...string) string {
		tok, err := e.keys.Mint(authn.Claims{Tenant: tenant, Roles: roles, RegisteredClaims: jwt.RegisteredClaims{Subject: subject}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sup := mint("north", "sup-north", authn.RoleSupervisor)
	agent := mint("north", "ag1", authn.RoleAgent)
	for _, r := range reps {
		conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(sup)))
		if err != nil {
			t.Fatal(err)
		}
		c := distributionv1.NewDistributionServiceClient(conn)
		// The second replica's start may still be moving partitions
		// (Unavailable: a hand-over): asked again until it is done.
		var err2 error
		waitFor(t, "north's statistics through "+r.name, func() bool {
			_, err2 = c.GetQueueStatistics(ctx, &distributionv1.GetQueueStatisticsRequest{TenantId: "north", ServiceId: "sales"})
			return status.Code(err2) != codes.Unavailable
		})
		if err2 != nil {
			t.Errorf("north's supervisor on north through %s: %v", r.name, err2)
		}
		_, err = c.GetQueueStatistics(ctx, &distributionv1.GetQueueStatisticsRequest{TenantId: "south", ServiceId: "sales"})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("north's supervisor on south through %s: %v, want PermissionDenied", r.name, err)
		}
		_ = conn.Close()
		conn, err = grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(agent)))
		if err != nil {
			t.Fatal(err)
		}
		c = distributionv1.NewDistributionServiceClient(conn)
		waitFor(t, "an answer for ag2's presence through "+r.name, func() bool {
			_, err = c.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "north", AgentId: "ag2", Presence: distributionv1.Presence_PRESENCE_AWAY})
			return status.Code(err) != codes.Unavailable
		})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("agent ag1 setting ag2's presence through %s: %v, want PermissionDenied", r.name, err)
		}
		_ = conn.Close()
	}

	// WatchQueues through every replica: the holder streams its own
	// snapshots, the others the holder's.
	for _, r := range reps {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		stream, err := r.client.WatchQueues(wctx, &distributionv1.WatchQueuesRequest{TenantId: "north", ServiceIds: []string{"sales"}})
		if err == nil {
			var res *distributionv1.WatchQueuesResponse
			if res, err = stream.Recv(); err == nil && len(res.GetServices()) != 1 {
				err = fmt.Errorf("got %v, want sales's statistics", res)
			}
		}
		cancel()
		if err != nil {
			t.Errorf("WatchQueues of north through %s: %v", r.name, err)
		}
	}

	// By hand on the forwarding subject of south's partition.
	ask := func(token string) (codes.Code, string) {
		data, err := proto.Marshal(&distributionv1.GetQueueStatisticsRequest{TenantId: "south", ServiceId: "sales"})
		if err != nil {
			t.Fatal(err)
		}
		msg := nats.NewMsg(subjects.DistributionForward(engine.PartitionOf("south", 8)))
		msg.Data = data
		msg.Header.Set("Sb-Method", "GetQueueStatistics")
		if token != "" {
			msg.Header.Set("Authorization", "Bearer "+token)
		}
		var reply *nats.Msg
		waitFor(t, "an answer on the forwarding subject", func() bool {
			reply, err = e.bus.NC.RequestMsg(msg, 5*time.Second)
			return err == nil
		})
		n, _ := strconv.Atoi(reply.Header.Get("Sb-Status-Code"))
		return codes.Code(n), reply.Header.Get("Sb-Status-Message")
	}
	if code, msg := ask(""); code != codes.Unauthenticated {
		t.Errorf("no token: %v %q, want Unauthenticated", code, msg)
	}
	if code, msg := ask(sup); code != codes.PermissionDenied {
		t.Errorf("north's token for south: %v %q, want PermissionDenied", code, msg)
	}
	if code, msg := ask(sup + "x"); code != codes.Unauthenticated {
		t.Errorf("a forged token: %v %q, want Unauthenticated", code, msg)
	}
}
