package store_test

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/store"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.New(context.Background(), mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var queuedAt = time.Date(2026, 3, 1, 9, 30, 15, 123_000_000, time.UTC) // whole milliseconds, as Mongo keeps them

func task(tenant, id string, state engine.TaskState) *engine.Task {
	return &engine.Task{
		ID: id, Tenant: tenant, SessionID: "ss_" + id, ServiceID: "sales",
		Conversation: &messagingv1.ConversationRef{
			Channel: messagingv1.Channel_CHANNEL_WHATSAPP, CustomerAddress: "whatsapp:+15550100", BusinessAddress: "whatsapp:+15550199",
			ConversationSid: "CH0123456789abcdef0123456789abcdef",
		},
		CustomerName: "Dana", Priority: 2, QueuedAt: queuedAt, State: state,
		Parameters: map[string]string{"order": "A-1042", "language": "de", "note": "<b>urgent</b>"},
		Trace:      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		Service:    engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: 45 * time.Second, MaxParallelTasks: 3},
	}
}

func TestSaveAndLoadOpen(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	accepted := task("acme", "t1", engine.TaskAccepted)
	accepted.AgentID = "alice"
	for _, tk := range []*engine.Task{
		accepted,
		task("acme", "t2", engine.TaskQueued),
		task("acme", "t3", engine.TaskCompleted),
		task("acme", "t4", engine.TaskEnded),    // as earlier versions stored it
		task("globex", "t1", engine.TaskQueued), // same task id, other tenant
	} {
		if err := s.Save(ctx, tk); err != nil {
			t.Fatalf("Save(%s/%s): %v", tk.Tenant, tk.ID, err)
		}
	}
	// Saving again replaces the task's state.
	ended := task("acme", "t2", engine.TaskCanceled)
	if err := s.Save(ctx, ended); err != nil {
		t.Fatal(err)
	}

	open, err := s.LoadOpen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(open, func(i, j int) bool { return open[i].Tenant < open[j].Tenant })
	if len(open) != 2 || open[0].Tenant != "acme" || open[0].ID != "t1" || open[1].Tenant != "globex" || open[1].ID != "t1" {
		var got []string
		for _, o := range open {
			got = append(got, o.Tenant+"/"+o.ID+" "+string(o.State))
		}
		t.Fatalf("LoadOpen = %q, want acme/t1 and globex/t1", got)
	}
	got, want := open[0], accepted
	if !proto.Equal(got.Conversation, want.Conversation) {
		t.Errorf("conversation = %v, want %v", got.Conversation, want.Conversation)
	}
	got.Conversation, want.Conversation = nil, nil
	if !got.QueuedAt.Equal(want.QueuedAt) {
		t.Errorf("queued at = %v, want %v", got.QueuedAt, want.QueuedAt)
	}
	type fields struct {
		ID, Tenant, SessionID, ServiceID, CustomerName, AgentID string
		Priority                                                int32
		State                                                   engine.TaskState
		Service                                                 engine.ServiceInfo
	}
	of := func(t *engine.Task) fields {
		return fields{t.ID, t.Tenant, t.SessionID, t.ServiceID, t.CustomerName, t.AgentID, t.Priority, t.State, t.Service}
	}
	if !reflect.DeepEqual(of(got), of(want)) {
		t.Errorf("loaded task\n got  %+v\n want %+v", of(got), of(want))
	}
	if !maps.Equal(got.Parameters, want.Parameters) {
		t.Errorf("parameters = %v, want %v", got.Parameters, want.Parameters)
	}
}

// A task in after-call work comes back with everything the engine needs
// to resume it and validate its wrap-up.
func TestGetWrappingTask(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := task("acme", "t1", engine.TaskWrapping)
	w.AgentID, w.RequiredSkills = "alice", []string{"de", "fr"}
	w.AcceptedAt, w.WrapUntil = queuedAt.Add(time.Minute), queuedAt.Add(10*time.Minute)
	w.Service.AfterCallWork = 5 * time.Minute
	w.Service.ServiceCodes, w.Service.SalesCodes, w.Service.Tags = []string{"complaint"}, []string{"upgrade"}, []string{"vip"}
	if err := s.Save(ctx, w); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "acme", "t1")
	if err != nil || got == nil {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if !reflect.DeepEqual(got.Service, w.Service) || !reflect.DeepEqual(got.RequiredSkills, w.RequiredSkills) ||
		!got.AcceptedAt.Equal(w.AcceptedAt) || !got.WrapUntil.Equal(w.WrapUntil) || got.State != engine.TaskWrapping {
		t.Errorf("Get = %+v\n want %+v", got, w)
	}
	open, err := s.LoadOpen(ctx)
	if err != nil || len(open) != 1 || open[0].State != engine.TaskWrapping {
		t.Errorf("LoadOpen = %v, %v; want the wrapping task", open, err)
	}
	for _, id := range [][2]string{{"acme", "t2"}, {"globex", "t1"}} {
		if got, err := s.Get(ctx, id[0], id[1]); got != nil || err != nil {
			t.Errorf("Get(%s/%s) = %v, %v; want nil, nil", id[0], id[1], got, err)
		}
	}
}

func TestKnown(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Save(ctx, task("acme", "t1", engine.TaskEnded)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tenant, id string
		want       bool
	}{
		{"acme", "t1", true}, // ended tasks stay known: a redelivered request is not queued again
		{"acme", "t2", false},
		{"globex", "t1", false},
	} {
		got, err := s.Known(ctx, tc.tenant, tc.id)
		if err != nil || got != tc.want {
			t.Errorf("Known(%s, %s) = %v, %v; want %v", tc.tenant, tc.id, got, err, tc.want)
		}
	}
}

func TestEndedSessions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for range 2 { // marking twice is not an error
		if err := s.MarkSessionEnded(ctx, "acme", "ss_1"); err != nil {
			t.Fatalf("MarkSessionEnded: %v", err)
		}
	}
	for _, tc := range []struct {
		tenant, session string
		want            bool
	}{
		{"acme", "ss_1", true},
		{"acme", "ss_2", false},
		{"globex", "ss_1", false},
	} {
		got, err := s.SessionEnded(ctx, tc.tenant, tc.session)
		if err != nil || got != tc.want {
			t.Errorf("SessionEnded(%s, %s) = %v, %v; want %v", tc.tenant, tc.session, got, err, tc.want)
		}
	}
}

func TestNewIsRepeatable(t *testing.T) {
	db := mongotest.Database(t)
	for range 2 {
		if _, err := store.New(context.Background(), db); err != nil {
			t.Fatalf("New: %v", err)
		}
	}
}

type nopPub struct{}

func (nopPub) Emit(context.Context, string, proto.Message, string) error { return nil }

// The engine tests' service and its agents, one task at a time each.
var (
	salesSvc = engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: time.Hour, MaxParallelTasks: 1}
	alice    = engine.AgentInfo{ID: "alice", Eligible: true, Services: []string{"sales"}}
	bob      = engine.AgentInfo{ID: "bob", Eligible: true, Services: []string{"sales"}}
)

// salesTask is a task of salesSvc from an SMS customer.
func salesTask(id string) *engine.Task {
	return &engine.Task{ID: id, Tenant: "acme", SessionID: "ss_" + id, ServiceID: "sales", Service: salesSvc,
		Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550100"}}
}

// The engine's restart path over the real store: what was accepted stays
// with its agent, what was queued or on offer is offered again, and ended
// sessions and known tasks are not queued again.
func TestEngineRestoresFromTheStore(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	s, err := store.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	newTask := salesTask

	e1 := engine.New(nopPub{}, s, log)
	if _, err := e1.SetPresence(ctx, "acme", alice, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2", "t3"} {
		if err := e1.Enqueue(ctx, newTask(id)); err != nil {
			t.Fatal(err)
		}
	}
	offers := e1.State("acme", "alice").GetOffers()
	if len(offers) != 1 {
		t.Fatalf("alice's offers = %v, want one", offers)
	}
	if _, err := e1.Accept(ctx, "acme", "alice", offers[0].GetOfferId()); err != nil {
		t.Fatal(err)
	}
	if err := e1.EndSession(ctx, "acme", "ss_t3", "customer left"); err != nil {
		t.Fatal(err)
	}
	e1.Close()

	// Restart against a second Store over the same database.
	s2, err := store.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	e2 := engine.New(nopPub{}, s2, log)
	defer e2.Close()
	n, err := e2.Restore(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Restore = %d, %v; want 2 open tasks", n, err)
	}
	for _, id := range []string{"t1", "t2", "t3"} { // redelivered requests
		if err := e2.Enqueue(ctx, newTask(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e2.SetPresence(ctx, "acme", alice, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	if st := e2.State("acme", "alice"); st.GetActiveTasks() != 1 || len(st.GetOffers()) != 0 {
		t.Errorf("restored alice: active %d offers %v; want t1 active and no offers", st.GetActiveTasks(), st.GetOffers())
	}
	st, err := e2.SetPresence(ctx, "acme", bob, distributionv1.Presence_PRESENCE_AVAILABLE)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetOffers()) != 1 || st.GetOffers()[0].GetTaskId() != "t2" || st.GetOffers()[0].GetServiceName() != "Sales" {
		t.Errorf("bob's offers after restore = %v, want t2 of Sales", st.GetOffers())
	}
}

// offersPub keeps the TaskOffered events an engine publishes.
type offersPub struct {
	mu     sync.Mutex
	offers []*distributionv1.TaskOffered
}

func (p *offersPub) Emit(_ context.Context, _ string, ev proto.Message, _ string) error {
	if o, ok := ev.(*distributionv1.TaskOffered); ok {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.offers = append(p.offers, proto.Clone(o).(*distributionv1.TaskOffered))
	}
	return nil
}

func (p *offersPub) last(t *testing.T, taskID string) *distributionv1.TaskOffered {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.offers) - 1; i >= 0; i-- {
		if p.offers[i].GetTaskId() == taskID {
			return p.offers[i]
		}
	}
	t.Fatalf("task %s was not offered", taskID)
	return nil
}

// What the workflow collected goes with the task to its offers, and a
// replica that takes the tenant over from the store offers it with them
// too: the open offer it keeps and a new offer of a task that waited.
func TestParametersSurviveATakeOver(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	s, err := store.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	params := map[string]map[string]string{
		"t1": {"order": "A-1042", "language": "de"},
		"t2": {"booking": "B-7", "bot_reason": "needs an agent"},
	}
	newTask := func(id string) *engine.Task {
		tk := salesTask(id)
		tk.Parameters = maps.Clone(params[id])
		return tk
	}

	pub1 := &offersPub{}
	e1 := engine.New(pub1, s, log)
	if _, err := e1.SetPresence(ctx, "acme", alice, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2"} {
		if err := e1.Enqueue(ctx, newTask(id)); err != nil {
			t.Fatal(err)
		}
	}
	if got := pub1.last(t, "t1").GetParameters(); !maps.Equal(got, params["t1"]) {
		t.Errorf("TaskOffered parameters = %v, want %v", got, params["t1"])
	}
	e1.Close() // dies with t1 on offer to alice and t2 waiting

	s2, err := store.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	pub2 := &offersPub{}
	e2 := engine.New(pub2, s2, log)
	defer e2.Close()
	if n, err := e2.Restore(ctx); err != nil || n != 2 {
		t.Fatalf("Restore = %d, %v; want 2 open tasks", n, err)
	}
	if _, err := e2.SetPresence(ctx, "acme", alice, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	for _, o := range e2.State("acme", "alice").GetOffers() {
		if want := params[o.GetTaskId()]; !maps.Equal(o.GetParameters(), want) {
			t.Errorf("alice's restored offer of %s carries %v, want %v", o.GetTaskId(), o.GetParameters(), want)
		}
	}
	if _, err := e2.SetPresence(ctx, "acme", bob, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
		t.Fatal(err)
	}
	// t1 or t2 (whichever the restored engine offers to bob, the other
	// being alice's) carries its parameters.
	pub2.mu.Lock()
	offered := slices.Clone(pub2.offers)
	pub2.mu.Unlock()
	if len(offered) == 0 {
		t.Fatal("the restored engine offered nothing")
	}
	for _, o := range offered {
		if want := params[o.GetTaskId()]; !maps.Equal(o.GetParameters(), want) {
			t.Errorf("TaskOffered of %s after the take-over carries %v, want %v", o.GetTaskId(), o.GetParameters(), want)
		}
	}
}
