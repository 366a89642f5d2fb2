package distribution

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/directory"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

type recPub struct {
	mu     sync.Mutex
	events []proto.Message
}

func (p *recPub) Emit(_ context.Context, _ string, ev proto.Message, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, proto.Clone(ev))
	return nil
}

func (p *recPub) all() []proto.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proto.Message(nil), p.events...)
}

type memStore struct {
	mu           sync.Mutex
	known, ended map[string]bool
}

func (s *memStore) Save(_ context.Context, t *engine.Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
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

// configClients answer GetService and GetUser from maps; the embedded
// interfaces panic on anything else.
type configClients struct {
	configv1.ServiceServiceClient
	configv1.UserServiceClient
	services map[string]*configv1.Service
	users    map[string]*configv1.User
}

func (c configClients) GetService(_ context.Context, r *configv1.GetServiceRequest, _ ...grpc.CallOption) (*configv1.GetServiceResponse, error) {
	if r.GetId() == "config-down" {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	s, ok := c.services[r.GetTenantId()+"/"+r.GetId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such service")
	}
	return &configv1.GetServiceResponse{Service: s}, nil
}

func (c configClients) GetUser(_ context.Context, r *configv1.GetUserRequest, _ ...grpc.CallOption) (*configv1.GetUserResponse, error) {
	u, ok := c.users[r.GetTenantId()+"/"+r.GetId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &configv1.GetUserResponse{User: u}, nil
}

func newHandlers(t *testing.T) (handlers, *recPub) {
	t.Helper()
	cc := configClients{
		services: map[string]*configv1.Service{"acme/sales": {
			Id: "sales", TenantId: "acme", Name: "Sales",
			Distribution: &configv1.DistributionSettings{RonaTimeout: durationpb.New(time.Hour), MaxParallelTasks: 2},
		}},
	}
	pub := &recPub{}
	eng := engine.New(pub, &memStore{known: map[string]bool{}, ended: map[string]bool{}}, slog.New(slog.DiscardHandler))
	t.Cleanup(eng.Close)
	return handlers{eng: eng, dir: directory.New(cc, cc, time.Minute)}, pub
}

func message(t *testing.T, subject string, ev proto.Message) *bus.Message {
	t.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &bus.Message{Subject: subject, Data: data, Delivered: 1}
}

var requestedAt = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func taskRequest(mod func(*workflowv1.TaskRequested)) *workflowv1.TaskRequested {
	ev := &workflowv1.TaskRequested{
		TenantId: "acme", TaskId: "tk_1_1", SessionId: "ss_1", ServiceId: "sales", Priority: 1, CustomerName: "Dana", RequiredSkills: []string{"de"},
		Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550100"},
		RequestedAt:  timestamppb.New(requestedAt),
	}
	if mod != nil {
		mod(ev)
	}
	return ev
}

func TestTaskRequested(t *testing.T) {
	ctx := context.Background()
	h, pub := newHandlers(t)
	if err := h.taskRequested(ctx, message(t, subjects.WorkflowTaskRequested("acme"), taskRequest(nil))); err != nil {
		t.Fatalf("taskRequested: %v", err)
	}
	if _, err := h.eng.SetPresence(ctx, "acme", engine.AgentInfo{ID: "alice", Eligible: true, Services: []string{"sales"}, Skills: []string{"de"}}, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	evs := pub.all()
	if len(evs) != 2 {
		t.Fatalf("events = %v, want TaskQueued and TaskOffered", evs)
	}
	q, ok1 := evs[0].(*distributionv1.TaskQueued)
	o, ok2 := evs[1].(*distributionv1.TaskOffered)
	if !ok1 || !ok2 {
		t.Fatalf("events = %T, %T; want TaskQueued, TaskOffered", evs[0], evs[1])
	}
	// The task is queued as of the request, and the offer carries what the
	// config service says about the service.
	if !q.GetQueuedAt().AsTime().Equal(requestedAt) || q.GetTaskId() != "tk_1_1" || q.GetSessionId() != "ss_1" ||
		q.GetPriority() != 1 || len(q.GetRequiredSkills()) != 1 || q.GetRequiredSkills()[0] != "de" {
		t.Errorf("queued = %v, want task tk_1_1 of ss_1 queued at %v", q, requestedAt)
	}
	if o.GetServiceName() != "Sales" || o.GetCustomerName() != "Dana" || o.GetConversation().GetCustomerAddress() != "+15550100" {
		t.Errorf("offered = %v, want Sales, Dana, +15550100", o)
	}
	if got := o.GetExpiresAt().AsTime().Sub(o.GetOfferedAt().AsTime()); got != time.Hour {
		t.Errorf("offer lasts %v, want the service's RONA timeout 1h", got)
	}
}

func TestBadTaskRequests(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		msg       func(t *testing.T) *bus.Message
		permanent bool
	}{
		{"undecodable", func(*testing.T) *bus.Message {
			return &bus.Message{Subject: subjects.WorkflowTaskRequested("acme"), Data: []byte{0xff, 0xff}}
		}, true},
		{"no task id", func(t *testing.T) *bus.Message {
			return message(t, subjects.WorkflowTaskRequested("acme"), taskRequest(func(e *workflowv1.TaskRequested) { e.TaskId = "" }))
		}, true},
		{"no session id", func(t *testing.T) *bus.Message {
			return message(t, subjects.WorkflowTaskRequested("acme"), taskRequest(func(e *workflowv1.TaskRequested) { e.SessionId = "" }))
		}, true},
		{"no service id", func(t *testing.T) *bus.Message {
			return message(t, subjects.WorkflowTaskRequested("acme"), taskRequest(func(e *workflowv1.TaskRequested) { e.ServiceId = "" }))
		}, true},
		{"tenant differs from subject", func(t *testing.T) *bus.Message {
			return message(t, subjects.WorkflowTaskRequested("globex"), taskRequest(nil))
		}, true},
		{"config service down", func(t *testing.T) *bus.Message {
			return message(t, subjects.WorkflowTaskRequested("acme"), taskRequest(func(e *workflowv1.TaskRequested) { e.ServiceId = "config-down" }))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, pub := newHandlers(t)
			err := h.taskRequested(ctx, tc.msg(t))
			if err == nil || bus.IsPermanent(err) != tc.permanent {
				t.Errorf("taskRequested: err = %v, want an error with permanent=%v", err, tc.permanent)
			}
			if evs := pub.all(); len(evs) != 0 {
				t.Errorf("published %v for a bad request", evs)
			}
		})
	}
}

func TestSessionEndedHandler(t *testing.T) {
	ctx := context.Background()
	h, pub := newHandlers(t)
	if err := h.taskRequested(ctx, message(t, subjects.WorkflowTaskRequested("acme"), taskRequest(nil))); err != nil {
		t.Fatal(err)
	}
	end := &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_1", Reason: "customer left"}
	for _, tc := range []struct {
		name    string
		subject string
		ev      *sessionv1.SessionEnded
	}{
		{"no session id", subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme"}},
		{"tenant differs from subject", subjects.SessionEnded("globex"), end},
	} {
		if err := h.sessionEnded(ctx, message(t, tc.subject, tc.ev)); !bus.IsPermanent(err) {
			t.Errorf("%s: err = %v, want permanent", tc.name, err)
		}
	}
	if err := h.sessionEnded(ctx, &bus.Message{Subject: subjects.SessionEnded("acme"), Data: []byte{0xff}}); !bus.IsPermanent(err) {
		t.Errorf("undecodable: err = %v, want permanent", err)
	}
	for range 2 { // redelivered
		if err := h.sessionEnded(ctx, message(t, subjects.SessionEnded("acme"), end)); err != nil {
			t.Fatalf("sessionEnded: %v", err)
		}
	}
	evs := pub.all()
	if len(evs) != 2 {
		t.Fatalf("events = %v, want TaskQueued, TaskCanceled", evs)
	}
	if c, ok := evs[1].(*distributionv1.TaskCanceled); !ok || c.GetTaskId() != "tk_1_1" || c.GetReason() != "customer left" {
		t.Errorf("second event = %v, want tk_1_1 canceled because the customer left", evs[1])
	}
	// The request redelivered after the end is not queued again.
	if err := h.taskRequested(ctx, message(t, subjects.WorkflowTaskRequested("acme"), taskRequest(nil))); err != nil {
		t.Fatal(err)
	}
	if got := len(pub.all()); got != 2 {
		t.Errorf("%d events after a redelivered request of an ended session, want still 2", got)
	}
}

func TestDirectory(t *testing.T) {
	ctx := context.Background()
	cc := configClients{
		services: map[string]*configv1.Service{"acme/sales": {Id: "sales", Name: "Sales", Distribution: &configv1.DistributionSettings{
			RonaTimeout: durationpb.New(45 * time.Second), MaxParallelTasks: 3, AfterCallWork: durationpb.New(time.Minute),
			ServiceCodes: []string{"complaint"}, SalesCodes: []string{"upgrade"}, Tags: []string{"vip"}}}},
		users: map[string]*configv1.User{
			"acme/alice": {Id: "alice", ImLicense: true, Roles: []configv1.Role{configv1.Role_ROLE_AGENT}, ServiceIds: []string{"sales"}, Capacity: 2, Skills: []string{"de"}},
			"acme/ann":   {Id: "ann", ImLicense: true, Roles: []configv1.Role{configv1.Role_ROLE_ADMIN}},
			"acme/bob":   {Id: "bob", Roles: []configv1.Role{configv1.Role_ROLE_AGENT}},
		},
	}
	d := directory.New(cc, cc, time.Minute)
	for _, tc := range []struct {
		id       string
		eligible bool
	}{{"alice", true}, {"ann", false}, {"bob", false}} {
		info, err := d.Agent(ctx, "acme", tc.id)
		if err != nil {
			t.Fatalf("Agent(%s): %v", tc.id, err)
		}
		if info.Eligible != tc.eligible {
			t.Errorf("Agent(%s).Eligible = %v, want %v (agent role and IM license)", tc.id, info.Eligible, tc.eligible)
		}
	}
	info, _ := d.Agent(ctx, "acme", "alice")
	if info.Capacity != 2 || len(info.Services) != 1 || info.Services[0] != "sales" || len(info.Skills) != 1 || info.Skills[0] != "de" {
		t.Errorf("alice = %+v, want capacity 2 in sales, skill de", info)
	}
	svc, err := d.Service(ctx, "acme", "sales")
	if err != nil || svc.Name != "Sales" || svc.RONATimeout != 45*time.Second || svc.MaxParallelTasks != 3 || svc.AfterCallWork != time.Minute ||
		len(svc.ServiceCodes) != 1 || len(svc.SalesCodes) != 1 || len(svc.Tags) != 1 {
		t.Errorf("Service(sales) = %+v, %v; want Sales, 45s, 3, a minute of after-call work and one code of each list", svc, err)
	}
	if _, err := d.Agent(ctx, "acme", "zed"); status.Code(err) != codes.NotFound {
		t.Errorf("Agent(zed): err = %v, want NotFound", err)
	}
}

func TestAgentRepliesStopTheFirstReplyTimer(t *testing.T) {
	ctx := context.Background()
	h, pub := newHandlers(t)
	h.dir.FirstReply = time.Minute // FIRST_REPLY_TIMEOUT
	if err := h.taskRequested(ctx, message(t, subjects.WorkflowTaskRequested("acme"), taskRequest(nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.SetPresence(ctx, "acme", engine.AgentInfo{ID: "alice", Eligible: true, Services: []string{"sales"}, Skills: []string{"de"}}, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	var offer string
	for _, ev := range pub.all() {
		if o, ok := ev.(*distributionv1.TaskOffered); ok {
			offer = o.GetOfferId()
		}
	}
	if _, err := h.eng.Accept(ctx, "acme", "alice", offer); err != nil {
		t.Fatal(err)
	}
	due := func() bool {
		t.Helper()
		task, err := h.eng.GetTask(ctx, "acme", "tk_1_1")
		if err != nil {
			t.Fatal(err)
		}
		return task.GetReplyDueAt() != nil
	}
	if !due() {
		t.Fatal("no first reply due after the accept with FIRST_REPLY_TIMEOUT set")
	}
	// Not replies of the agent: a workflow's message, another tenant's
	// session, a request without a session.
	for _, ev := range []*outboundv1.OutboundMessageRequested{
		{TenantId: "acme", SessionId: "ss_1", Origin: outboundv1.Origin_ORIGIN_WORKFLOW},
		{TenantId: "globex", SessionId: "ss_1", Origin: outboundv1.Origin_ORIGIN_AGENT, AgentId: "alice"},
		{TenantId: "acme", Origin: outboundv1.Origin_ORIGIN_AGENT, AgentId: "alice"},
	} {
		if err := h.outboundRequested(ctx, message(t, subjects.OutboundRequested("acme"), ev)); err != nil {
			t.Fatal(err)
		}
		if !due() {
			t.Fatalf("%v stopped the first-reply timer", ev)
		}
	}
	reply := &outboundv1.OutboundMessageRequested{TenantId: "acme", SessionId: "ss_1", Origin: outboundv1.Origin_ORIGIN_AGENT, AgentId: "alice"}
	if err := h.outboundRequested(ctx, message(t, subjects.OutboundRequested("acme"), reply)); err != nil {
		t.Fatal(err)
	}
	if due() {
		t.Error("alice's reply did not stop the first-reply timer")
	}
}
