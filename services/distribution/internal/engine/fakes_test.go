package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

const tenant = "acme"

// entry is one thing the engine did, in the order it did it. The engine
// publishes and saves under its lock, so the log of a world is a
// linearization of the engine's decisions.
type entry struct {
	subject string
	msgID   string
	event   proto.Message // nil for store entries
	// Store entries.
	op                       string // "save", "mark-ended" or a test marker
	taskID, sessionID, agent string
	state                    engine.TaskState
}

// world is a fake Publisher and TaskStore sharing one log.
type world struct {
	mu       sync.Mutex
	log      []entry
	saved    map[string]engine.Task // tenant/task id -> last saved copy
	ended    map[string]bool        // tenant/session id
	failEmit map[string]int         // subject kind -> number of next emits that fail
	failSave int
	// afterSessionEnded runs after SessionEnded has read its answer and
	// before it returns it; tests use it to widen race windows.
	afterSessionEnded func(session string)
	published         map[string]entry // msg id -> first event published under it
	conflicts         []string
	// notify gets a copy of every event entry (non-blocking).
	notify map[string]chan entry // agent id -> channel
	// The KV buckets replicas share (see replica): open tasks with their
	// offers (DISTRIBUTION_TASKS) and agents (DISTRIBUTION_PRESENCE).
	openTasks *bucket[engine.Task]
	presence  *bucket[engine.PresenceRecord]
}

func newWorld() *world {
	return &world{saved: map[string]engine.Task{}, ended: map[string]bool{}, failEmit: map[string]int{}, published: map[string]entry{},
		openTasks: newBucket(stored), presence: newBucket(presenceCopy)}
}

type fakePub struct{ w *world }
type fakeStore struct{ w *world }

var (
	_ engine.Publisher = fakePub{}
	_ engine.TaskStore = fakeStore{}
)

var errInjected = errors.New("injected failure")

func (p fakePub) Emit(_ context.Context, subject string, ev proto.Message, msgID string) error {
	w := p.w
	w.mu.Lock()
	defer w.mu.Unlock()
	s, err := subjects.Parse(subject)
	if err != nil {
		return err
	}
	if w.failEmit[s.Kind()] > 0 {
		w.failEmit[s.Kind()]--
		return errInjected
	}
	en := entry{subject: subject, msgID: msgID, event: proto.Clone(ev)}
	// Like JetStream, drop a second publish under the same id. Two
	// different events under one id would lose the second: remember that.
	if prev, ok := w.published[msgID]; ok {
		if describe(prev.event) != describe(en.event) || prev.subject != subject {
			w.conflicts = append(w.conflicts, fmt.Sprintf("%s: %q and %q", msgID, describe(prev.event), describe(en.event)))
		}
		return nil
	}
	w.published[msgID] = en
	w.log = append(w.log, en)
	if ch := w.notify[agentOf(en.event)]; ch != nil {
		select {
		case ch <- en:
		default:
		}
	}
	return nil
}

func agentOf(ev proto.Message) string {
	switch ev := ev.(type) {
	case *distributionv1.TaskOffered:
		return ev.GetAgentId()
	case *distributionv1.TaskOfferTimedOut:
		return ev.GetAgentId()
	case *distributionv1.TaskWrapUpStarted:
		return ev.GetAgentId()
	}
	return ""
}

func (s fakeStore) Save(_ context.Context, t *engine.Task) error {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failSave > 0 {
		w.failSave--
		return errInjected
	}
	cp := *t
	w.saved[t.Tenant+"/"+t.ID] = cp
	w.log = append(w.log, entry{op: "save", taskID: t.ID, sessionID: t.SessionID, agent: t.AgentID, state: t.State})
	return nil
}

func (s fakeStore) Known(_ context.Context, tenant, taskID string) (bool, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	_, ok := s.w.saved[tenant+"/"+taskID]
	return ok, nil
}

func (s fakeStore) Get(_ context.Context, tenant, taskID string) (*engine.Task, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	t, ok := s.w.saved[tenant+"/"+taskID]
	if !ok {
		return nil, nil
	}
	return restored(t), nil
}

// restored is what a store gives back: the saved fields only.
func restored(t engine.Task) *engine.Task {
	return &engine.Task{
		ID: t.ID, Tenant: t.Tenant, SessionID: t.SessionID, ServiceID: t.ServiceID,
		Conversation: t.Conversation, CustomerName: t.CustomerName, Priority: t.Priority, RequiredSkills: t.RequiredSkills,
		QueuedAt: t.QueuedAt, State: t.State, AgentID: t.AgentID, AcceptedAt: t.AcceptedAt, WrapUntil: t.WrapUntil, Service: t.Service,
		Parks: t.Parks, ParkCounts: t.ParkCounts, PreferredAgent: t.PreferredAgent, PreferredUntil: t.PreferredUntil, Overflowed: t.Overflowed,
	}
}

func (s fakeStore) LoadOpen(context.Context) ([]*engine.Task, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	var out []*engine.Task
	for _, t := range s.w.saved {
		if !t.State.Closed() {
			out = append(out, restored(t))
		}
	}
	return out, nil
}

func (s fakeStore) MarkSessionEnded(_ context.Context, tenant, sessionID string) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.ended[tenant+"/"+sessionID] = true
	s.w.log = append(s.w.log, entry{op: "mark-ended", sessionID: sessionID})
	return nil
}

func (s fakeStore) SessionEnded(_ context.Context, tenant, sessionID string) (bool, error) {
	s.w.mu.Lock()
	ended := s.w.ended[tenant+"/"+sessionID]
	hook := s.w.afterSessionEnded
	s.w.mu.Unlock()
	if hook != nil {
		hook(sessionID)
	}
	return ended, nil
}

func (w *world) pub() fakePub     { return fakePub{w} }
func (w *world) store() fakeStore { return fakeStore{w} }

// marker puts a test's own note in the log.
func (w *world) marker(op, agent, session string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, entry{op: op, agent: agent, sessionID: session})
}

func (w *world) entries() []entry { return w.entriesSince(0) }

// size is how many entries the log has.
func (w *world) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.log)
}

// entriesSince returns the log after its first n entries.
func (w *world) entriesSince(n int) []entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]entry(nil), w.log[min(n, len(w.log)):]...)
}

// events describes the published events, in order.
func (w *world) events() []string {
	var out []string
	for _, en := range w.entries() {
		if en.event != nil {
			out = append(out, describe(en.event))
		}
	}
	return out
}

// eventsSince returns the events after the first n.
func (w *world) eventsSince(n int) []string {
	all := w.events()
	if n > len(all) {
		return nil
	}
	return all[n:]
}

// offers returns every TaskOffered published so far.
func (w *world) offers() []*distributionv1.TaskOffered {
	var out []*distributionv1.TaskOffered
	for _, en := range w.entries() {
		if o, ok := en.event.(*distributionv1.TaskOffered); ok {
			out = append(out, o)
		}
	}
	return out
}

// lastOffer returns the newest offer of a task.
func (w *world) lastOffer(t *testing.T, taskID string) *distributionv1.TaskOffered {
	t.Helper()
	var last *distributionv1.TaskOffered
	for _, o := range w.offers() {
		if o.GetTaskId() == taskID {
			last = o
		}
	}
	if last == nil {
		t.Fatalf("task %s was never offered; events: %q", taskID, w.events())
	}
	return last
}

func (w *world) failNextEmit(kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failEmit[kind]++
}

// describe renders an event compactly for sequence assertions.
func describe(ev proto.Message) string {
	switch ev := ev.(type) {
	case *distributionv1.TaskQueued:
		return fmt.Sprintf("queued %s pos=%d", ev.GetTaskId(), ev.GetPosition())
	case *distributionv1.TaskOffered:
		switch {
		case ev.GetPreferred():
			return fmt.Sprintf("offered %s to %s (preferred)", ev.GetTaskId(), ev.GetAgentId())
		case ev.GetOverflowed():
			return fmt.Sprintf("offered %s to %s (overflowed)", ev.GetTaskId(), ev.GetAgentId())
		}
		return fmt.Sprintf("offered %s to %s", ev.GetTaskId(), ev.GetAgentId())
	case *distributionv1.TaskOverflowed:
		return fmt.Sprintf("overflowed %s %v->%v", ev.GetTaskId(), ev.GetPreviousSkills(), ev.GetRequiredSkills())
	case *distributionv1.TaskAccepted:
		return fmt.Sprintf("accepted %s by %s", ev.GetTaskId(), ev.GetAgentId())
	case *distributionv1.TaskDeclined:
		return fmt.Sprintf("declined %s by %s", ev.GetTaskId(), ev.GetAgentId())
	case *distributionv1.TaskOfferTimedOut:
		return fmt.Sprintf("rona %s by %s", ev.GetTaskId(), ev.GetAgentId())
	case *distributionv1.TaskCanceled:
		if ev.GetAgentId() != "" {
			return fmt.Sprintf("canceled %s offered to %s", ev.GetTaskId(), ev.GetAgentId())
		}
		return fmt.Sprintf("canceled %s", ev.GetTaskId())
	case *distributionv1.TaskCompleted:
		return fmt.Sprintf("completed %s by %s", ev.GetTaskId(), ev.GetAgentId())
	case *distributionv1.TaskWrapUpStarted:
		return fmt.Sprintf("wrapping %s by %s", ev.GetTaskId(), ev.GetAgentId())
	case *distributionv1.TaskWrapUpEnded:
		if !ev.GetSubmitted() {
			return fmt.Sprintf("wrap-up of %s by %s ran out", ev.GetTaskId(), ev.GetAgentId())
		}
		return fmt.Sprintf("wrapped %s by %s %v %v %v", ev.GetTaskId(), ev.GetAgentId(), ev.GetServiceCodes(), ev.GetSalesCodes(), ev.GetTags())
	case *distributionv1.TaskReprioritized:
		return fmt.Sprintf("reprioritized %s %d->%d", ev.GetTaskId(), ev.GetPreviousPriority(), ev.GetPriority())
	case *distributionv1.TaskTransferred:
		if ev.GetToAgentId() != "" {
			return fmt.Sprintf("transferred %s from %s to agent %s", ev.GetTaskId(), ev.GetFromAgentId(), ev.GetToAgentId())
		}
		return fmt.Sprintf("transferred %s from %s to service %s", ev.GetTaskId(), ev.GetFromAgentId(), ev.GetToServiceId())
	case *distributionv1.TaskReplyOverdue:
		if ev.GetRequeued() {
			return fmt.Sprintf("reply overdue %s by %s requeued", ev.GetTaskId(), ev.GetAgentId())
		}
		return fmt.Sprintf("reply overdue %s by %s", ev.GetTaskId(), ev.GetAgentId())
	case *distributionv1.TaskParked:
		return fmt.Sprintf("parked %s of %s by %s counts=%v", ev.GetTaskId(), ev.GetAgentId(), ev.GetParkedBy(), ev.GetCountsTowardCapacity())
	case *distributionv1.TaskResumed:
		return fmt.Sprintf("resumed %s of %s by %s", ev.GetTaskId(), ev.GetAgentId(), ev.GetResumedBy())
	}
	return fmt.Sprintf("%T", ev)
}

// clock is a fake clock: every reading is 1ms after the previous one, so
// arrival order and "waited longest" are strict without real waiting.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// peek reads the clock without moving it.
func (c *clock) peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Services used by the tests. Offers of slow services never time out
// within a test.
var (
	sales   = engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: time.Hour, MaxParallelTasks: 1}
	support = engine.ServiceInfo{ID: "support", Name: "Support", RONATimeout: time.Hour, MaxParallelTasks: 3}
	fast    = engine.ServiceInfo{ID: "fast", Name: "Fast", RONATimeout: 50 * time.Millisecond, MaxParallelTasks: 1}
)

func newTask(id string, svc engine.ServiceInfo) *engine.Task {
	return &engine.Task{
		ID: id, Tenant: tenant, SessionID: "ss_" + id, ServiceID: svc.ID, Service: svc,
		CustomerName: "Customer " + id,
		Conversation: &messagingv1.ConversationRef{
			Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550100" + id, BusinessAddress: "+15550199",
		},
	}
}

func agentInfo(id string, capacity int, services ...string) engine.AgentInfo {
	return engine.AgentInfo{ID: id, Eligible: true, Services: services, Capacity: capacity}
}

// newEngine returns an engine over w with a fake clock.
func newEngine(t *testing.T, w *world) (*engine.Engine, *clock) {
	t.Helper()
	e := engine.New(w.pub(), w.store(), slog.New(slog.DiscardHandler))
	c := newClock()
	engine.SetClock(e, c.Now)
	closeAtCleanup(t, w, e)
	return e, c
}

// closeAtCleanup closes e when the test ends, and fails it if two
// different events were published under one msg id.
func closeAtCleanup(t *testing.T, w *world, e *engine.Engine) {
	t.Cleanup(func() {
		e.Close()
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.conflicts) > 0 {
			t.Errorf("different events published under one msg id (the second would be dropped): %q", w.conflicts)
		}
	})
}

func mustEnqueue(t *testing.T, e *engine.Engine, tasks ...*engine.Task) {
	t.Helper()
	for _, task := range tasks {
		if err := e.Enqueue(context.Background(), task); err != nil {
			t.Fatalf("Enqueue(%s): %v", task.ID, err)
		}
	}
}

func available(t *testing.T, e *engine.Engine, agents ...engine.AgentInfo) {
	t.Helper()
	for _, a := range agents {
		if _, err := e.SetPresence(context.Background(), tenant, a, distributionv1.Presence_PRESENCE_AVAILABLE); err != nil {
			t.Fatalf("SetPresence(%s, available): %v", a.ID, err)
		}
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A replica's stores, as internal/store and internal/presence keep them
// in production: open tasks with their offers, and agents, in KV buckets
// every replica shares, each write naming the revision this replica last
// read or wrote; a task's record (w.saved) written once it closed; ended
// sessions in w.ended. A replica that takes a tenant over (replica) loads
// the tenant from the buckets.

// bucket is a JetStream KV bucket in memory: every write takes the
// bucket's next revision. Values go in and come out as copies (the real
// buckets hold JSON).
type bucket[V any] struct {
	mu    sync.Mutex
	seq   uint64
	vals  map[string]revised[V]
	clone func(V) V
}

type revised[V any] struct {
	v   V
	rev uint64
}

func newBucket[V any](clone func(V) V) *bucket[V] {
	return &bucket[V]{vals: map[string]revised[V]{}, clone: clone}
}

func (b *bucket[V]) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.vals)
}

// view is one replica's handle on a bucket: the revisions it last saw.
type view[V any] struct {
	b    *bucket[V]
	mu   sync.Mutex
	revs map[string]uint64
}

func newView[V any](b *bucket[V]) *view[V] { return &view[V]{b: b, revs: map[string]uint64{}} }

// write puts val, or with del removes the key, if the key is as this
// view last saw it: at the revision it saw, or, none seen, absent for a
// put (kvcas.Put with 0) and anything for a delete. Else
// engine.ErrConflict, and the revision is forgotten.
func (v *view[V]) write(key string, val V, del bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.b
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, ok := b.vals[key]
	if seen, checked := v.revs[key]; (checked && (!ok || cur.rev != seen)) || (!checked && ok && !del) {
		delete(v.revs, key)
		return fmt.Errorf("write %s: %w", key, engine.ErrConflict)
	}
	b.seq++
	if del {
		delete(b.vals, key)
		delete(v.revs, key)
		return nil
	}
	b.vals[key] = revised[V]{b.clone(val), b.seq}
	v.revs[key] = b.seq
	return nil
}

// loadTenants reads the values of the tenants match accepts (keys
// <tenant>.<id>) and remembers their revisions.
func (v *view[V]) loadTenants(match func(tenant string) bool) []V {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.b
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []V
	for k, val := range b.vals {
		if tenant, _, _ := strings.Cut(k, "."); match(tenant) {
			v.revs[k] = val.rev
			out = append(out, b.clone(val.v))
		}
	}
	return out
}

// kvStore is a replica's task store (internal/store with its bucket of
// open tasks).
type kvStore struct {
	fakeStore
	open *view[engine.Task]
}

var _ engine.OpenTaskStore = kvStore{}

// Save writes the task to the bucket of open tasks, and its record once
// it closed.
func (s kvStore) Save(ctx context.Context, t *engine.Task) error {
	if err := s.SaveOpen(ctx, t); err != nil {
		return err
	}
	if !t.State.Closed() {
		return nil
	}
	return s.fakeStore.Save(ctx, t)
}

func (s kvStore) SaveOpen(_ context.Context, t *engine.Task) error {
	return s.open.write(t.Tenant+"."+t.ID, *t, false)
}

func (s kvStore) RemoveOpen(_ context.Context, t *engine.Task) error {
	return s.open.write(t.Tenant+"."+t.ID, engine.Task{}, true)
}

func (s kvStore) LoadOpenOf(_ context.Context, match func(string) bool) ([]*engine.Task, error) {
	var out []*engine.Task
	for _, t := range s.open.loadTenants(match) {
		out = append(out, &t)
	}
	return out, nil
}

// kvPresence is a replica's presence store (internal/presence).
type kvPresence struct{ *view[engine.PresenceRecord] }

var _ engine.PresenceLoader = kvPresence{}

func (p kvPresence) SavePresence(_ context.Context, r engine.PresenceRecord) error {
	return p.write(r.Tenant+"."+r.Agent, r, false)
}

func (p kvPresence) LoadPresence(ctx context.Context) ([]engine.PresenceRecord, error) {
	return p.LoadPresenceOf(ctx, func(string) bool { return true })
}

func (p kvPresence) LoadPresenceOf(_ context.Context, match func(string) bool) ([]engine.PresenceRecord, error) {
	return p.loadTenants(match), nil
}

// stored is a task as the bucket of open tasks gives it back: the fields
// internal/store writes (its doc), nothing shared with the writer.
func stored(t engine.Task) engine.Task {
	conv := &messagingv1.ConversationRef{}
	if t.Conversation != nil {
		conv = proto.Clone(t.Conversation).(*messagingv1.ConversationRef)
	}
	svc := t.Service
	out := engine.Task{
		ID: t.ID, Tenant: t.Tenant, SessionID: t.SessionID, ServiceID: t.ServiceID, Conversation: conv, CustomerName: t.CustomerName,
		Priority: t.Priority, RequiredSkills: slices.Clone(t.RequiredSkills), QueuedAt: t.QueuedAt, State: t.State, AgentID: t.AgentID,
		AcceptedAt: t.AcceptedAt, WrapUntil: t.WrapUntil, Note: t.Note, Transfers: t.Transfers,
		ReplyDue: t.ReplyDue, Replied: t.Replied, Overdue: t.Overdue, OfferID: t.OfferID, OfferExpires: t.OfferExpires, AcceptedOffer: t.AcceptedOffer,
		Parks: t.Parks, ParkCounts: t.ParkCounts, PreferredAgent: t.PreferredAgent, PreferredUntil: t.PreferredUntil, Overflowed: t.Overflowed,
		Service: engine.ServiceInfo{
			ID: t.ServiceID, Name: svc.Name, RONATimeout: svc.RONATimeout, MaxParallelTasks: svc.MaxParallelTasks,
			AfterCallWork: svc.AfterCallWork, ServiceCodes: slices.Clone(svc.ServiceCodes), SalesCodes: slices.Clone(svc.SalesCodes), Tags: slices.Clone(svc.Tags),
			FirstReplyTimeout: svc.FirstReplyTimeout, FirstReplyRequeue: svc.FirstReplyRequeue, ParkedCounts: svc.ParkedCounts,
			OverflowAfter: svc.OverflowAfter, OverflowSkills: slices.Clone(svc.OverflowSkills),
		},
	}
	for _, ev := range t.Outbox {
		out.Outbox = append(out.Outbox, engine.Event{Subject: ev.Subject, Message: proto.Clone(ev.Message), MsgID: ev.MsgID})
	}
	return out
}

// presenceCopy is an agent's record as the presence bucket gives it back:
// nothing shared with the writer.
func presenceCopy(r engine.PresenceRecord) engine.PresenceRecord {
	r.Info.Services, r.Info.Skills = slices.Clone(r.Info.Services), slices.Clone(r.Info.Skills)
	return r
}

// timers runs an engine's timers on a test's clock: a timer runs when
// run finds it due and not stopped, never on its own.
type timers struct {
	c       *clock
	mu      sync.Mutex
	pending []pendingTimer
}

type pendingTimer struct {
	due time.Time
	// timer never fires; the engine stops it, and Stop tells run so.
	timer *time.Timer
	f     func()
}

func (s *timers) afterFunc(d time.Duration, f func()) *time.Timer {
	tm := time.AfterFunc(100*365*24*time.Hour, func() {})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, pendingTimer{due: s.c.peek().Add(d), timer: tm, f: f})
	return tm
}

// run runs the timers due by the clock, earliest first (those they start
// too, when due), and returns how many ran.
func (s *timers) run() int {
	n := 0
	for {
		s.mu.Lock()
		now, next := s.c.peek(), -1
		for i, p := range s.pending {
			if !p.due.After(now) && (next < 0 || p.due.Before(s.pending[next].due)) {
				next = i
			}
		}
		if next < 0 {
			s.mu.Unlock()
			return n
		}
		p := s.pending[next]
		s.pending = slices.Delete(s.pending, next, next+1)
		s.mu.Unlock()
		if p.timer.Stop() {
			p.f()
			n++
		}
	}
}

// replica starts an engine that holds the tenant (partition 0 of 1) over
// w's shared buckets, with stores of its own (the revisions it saw), the
// clock c and timers run by the returned timers: a replica starting, or
// taking the tenant over from one that stopped or died. It returns how
// many tasks it loaded.
func replica(t *testing.T, w *world, c *clock) (*engine.Engine, *timers, int) {
	t.Helper()
	e := engine.New(w.pub(), kvStore{fakeStore: w.store(), open: newView(w.openTasks)}, slog.New(slog.DiscardHandler))
	tm := &timers{c: c}
	engine.SetClock(e, c.Now)
	engine.SetAfterFunc(e, tm.afterFunc)
	e.SetPresenceOptions(engine.PresenceOptions{Store: kvPresence{newView(w.presence)}})
	e.SetPartitions(1)
	closeAtCleanup(t, w, e)
	tasks, _, err := e.Acquire(context.Background(), []int{0})
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return e, tm, tasks
}
