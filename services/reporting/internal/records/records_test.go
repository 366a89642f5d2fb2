package records_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

func newStore(t *testing.T) *records.Store {
	t.Helper()
	s, err := records.New(context.Background(), mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Whole milliseconds: what MongoDB keeps of a date.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

// event is one delivery: the subject and payload a consumer would see.
type event struct {
	subject string
	msg     proto.Message
}

func (e event) String() string { return e.subject }

// apply hands an event to the handler of the stream it comes from.
func apply(ctx context.Context, s *records.Store, e event) error {
	data, err := proto.Marshal(e.msg)
	if err != nil {
		return err
	}
	m := &bus.Message{Subject: e.subject, Data: data, Delivered: 1}
	switch {
	case m.Kind() == "":
		return fmt.Errorf("bad subject %q", e.subject)
	case strings.HasPrefix(e.subject, subjects.DomainSession+"."):
		return s.HandleSession(ctx, m)
	case strings.HasPrefix(e.subject, subjects.DomainDistribution+"."):
		return s.HandleDistribution(ctx, m)
	case strings.HasPrefix(e.subject, subjects.DomainWorkflow+"."):
		return s.HandleWorkflow(ctx, m)
	default:
		return s.HandleOutbound(ctx, m)
	}
}

// lifeOf is the whole life of a handled session: two inbound and one
// outbound message, an offer declined, one timed out, one accepted, one
// failed send, and the end.
func lifeOf(tenant, session string) []event {
	conv := &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_WHATSAPP, CustomerAddress: "whatsapp:+15550100", BusinessAddress: "whatsapp:+15550199"}
	task := "tk_" + session
	return []event{
		{subjects.SessionStarted(tenant), &sessionv1.SessionStarted{TenantId: tenant, SessionId: session, ServiceId: "sales", EntryId: "entry-1", Conversation: conv, StartedAt: at(0)}},
		{subjects.SessionMessageAdded(tenant), &sessionv1.MessageAdded{TenantId: tenant, SessionId: session, MessageId: "SM1", Direction: sessionv1.Direction_DIRECTION_INBOUND, OccurredAt: at(0), NumSegments: 2}},
		{subjects.SessionMessageAdded(tenant), &sessionv1.MessageAdded{TenantId: tenant, SessionId: session, MessageId: session + "-wf0", Direction: sessionv1.Direction_DIRECTION_OUTBOUND, OccurredAt: at(time.Second)}},
		{subjects.TaskQueued(tenant), &distributionv1.TaskQueued{TenantId: tenant, SessionId: session, TaskId: task, ServiceId: "sales", QueuedAt: at(2 * time.Second)}},
		{subjects.TaskOffered(tenant), &distributionv1.TaskOffered{TenantId: tenant, SessionId: session, TaskId: task, OfferId: "of1", AgentId: "bob"}},
		{subjects.TaskDeclined(tenant), &distributionv1.TaskDeclined{TenantId: tenant, SessionId: session, TaskId: task, OfferId: "of1", AgentId: "bob"}},
		{subjects.TaskOffered(tenant), &distributionv1.TaskOffered{TenantId: tenant, SessionId: session, TaskId: task, OfferId: "of2", AgentId: "carl"}},
		{subjects.TaskOfferTimedOut(tenant), &distributionv1.TaskOfferTimedOut{TenantId: tenant, SessionId: session, TaskId: task, OfferId: "of2", AgentId: "carl"}},
		{subjects.TaskOffered(tenant), &distributionv1.TaskOffered{TenantId: tenant, SessionId: session, TaskId: task, OfferId: "of3", AgentId: "alice"}},
		{subjects.TaskAccepted(tenant), &distributionv1.TaskAccepted{TenantId: tenant, SessionId: session, TaskId: task, OfferId: "of3", AgentId: "alice", AcceptedAt: at(40 * time.Second)}},
		{subjects.SessionMessageAdded(tenant), &sessionv1.MessageAdded{TenantId: tenant, SessionId: session, MessageId: "SM2", Direction: sessionv1.Direction_DIRECTION_INBOUND, OccurredAt: at(50 * time.Second), NumSegments: 1}},
		{subjects.OutboundFailed(tenant), &outboundv1.OutboundMessageFailed{TenantId: tenant, SessionId: session, RequestId: "rq1", ErrorCode: 63016}},
		{subjects.TaskCanceled(tenant), &distributionv1.TaskCanceled{TenantId: tenant, SessionId: session, TaskId: "tk_other"}}, // ignored
		// Segments of what was sent (the workflow's greeting and an agent's
		// reply), and the workflow's path.
		{subjects.OutboundSent(tenant), &outboundv1.OutboundMessageSent{TenantId: tenant, SessionId: session, RequestId: session + "-wf0", NumSegments: 1}},
		{subjects.OutboundSent(tenant), &outboundv1.OutboundMessageSent{TenantId: tenant, SessionId: session, RequestId: "rq2", NumSegments: 3}},
		{subjects.WorkflowStepCompleted(tenant), &workflowv1.StepCompleted{TenantId: tenant, SessionId: session, WorkflowId: "wf", Step: 2, Activity: "queue", ActivityType: "queue_task", Branch: "queued", OccurredAt: at(2 * time.Second), Duration: durationpb.New(time.Second)}},
		{subjects.WorkflowStepCompleted(tenant), &workflowv1.StepCompleted{TenantId: tenant, SessionId: session, WorkflowId: "wf", Step: 1, Activity: "hello", ActivityType: "message", ActivityLabel: "Greeting", Branch: "next", OccurredAt: at(time.Second), Duration: durationpb.New(1500 * time.Millisecond)}},
		// The transcript's count, as sessions sends it: SM1 (2 segments),
		// SM2 (1), the workflow's greeting.
		{subjects.SessionEnded(tenant), &sessionv1.SessionEnded{TenantId: tenant, SessionId: session, Outcome: sessionv1.Outcome_OUTCOME_HANDLED, Reason: "terminated by agent", AgentId: "alice", ServiceId: "sales", EndedAt: at(time.Minute),
			Messages: &sessionv1.MessageCounts{Inbound: 2, Outbound: 1, SegmentsIn: 3}}},
	}
}

// transferredLifeOf is lifeOf with alice transferring the chat to the vip
// service, where dora accepts it and ends it.
func transferredLifeOf(tenant, session string) []event {
	ev := lifeOf(tenant, session)
	task := "tk_" + session
	end := ev[len(ev)-1].msg.(*sessionv1.SessionEnded)
	end.AgentId = "dora"
	return append(ev[:len(ev)-1],
		event{subjects.TaskTransferred(tenant), &distributionv1.TaskTransferred{TenantId: tenant, SessionId: session, TaskId: task,
			FromServiceId: "sales", FromAgentId: "alice", ToServiceId: "vip", TransferredBy: "alice", TransferredAt: at(45 * time.Second), Transfer: 1}},
		event{subjects.TaskOffered(tenant), &distributionv1.TaskOffered{TenantId: tenant, SessionId: session, TaskId: task, OfferId: "of4", AgentId: "dora"}},
		event{subjects.TaskAccepted(tenant), &distributionv1.TaskAccepted{TenantId: tenant, SessionId: session, TaskId: task, ServiceId: "vip", OfferId: "of4", AgentId: "dora", AcceptedAt: at(48 * time.Second)}},
		ev[len(ev)-1])
}

func transferredRecord(tenant, session string) *reportingv1.SessionRecord {
	r := handledRecord(tenant, session)
	r.AgentId, r.Offers = "dora", 4
	r.Services, r.Agents = []string{"sales", "vip"}, []string{"alice", "dora"}
	return r
}

func handledRecord(tenant, session string) *reportingv1.SessionRecord {
	return &reportingv1.SessionRecord{
		TenantId: tenant, SessionId: session, ServiceId: "sales", EntryId: "entry-1",
		Channel: messagingv1.Channel_CHANNEL_WHATSAPP, CustomerAddress: "whatsapp:+15550100", BusinessAddress: "whatsapp:+15550199",
		State: reportingv1.SessionState_SESSION_STATE_ENDED, Outcome: sessionv1.Outcome_OUTCOME_HANDLED, EndReason: "terminated by agent",
		AgentId: "alice", StartedAt: at(0), QueuedAt: at(2 * time.Second), AcceptedAt: at(40 * time.Second), EndedAt: at(time.Minute),
		InboundMessages: 2, OutboundMessages: 1, Offers: 3, Declines: 1, Ronas: 1, FailedSends: 1,
		SegmentsIn: 3, SegmentsOut: 4, CustomerCountry: "US", Services: []string{"sales"}, Agents: []string{"alice"},
		Steps: []*reportingv1.WorkflowStep{
			{Step: 1, WorkflowId: "wf", ActivityId: "hello", ActivityType: "message", TypeName: "Message", Label: "Greeting", Branch: "next", CompletedAt: at(time.Second), Duration: durationpb.New(1500 * time.Millisecond)},
			{Step: 2, WorkflowId: "wf", ActivityId: "queue", ActivityType: "queue_task", TypeName: "Queue Task", Branch: "queued", CompletedAt: at(2 * time.Second), Duration: durationpb.New(time.Second)},
		},
	}
}

// orders returns the events in several orders, some with redeliveries.
func orders(events []event, seed uint64) map[string][]event {
	out := map[string][]event{"in order": events}
	rev := make([]event, len(events))
	for i, e := range events {
		rev[len(events)-1-i] = e
	}
	out["reversed"] = rev
	// The last event first, the start last: what a lagging SESSION consumer sees.
	out["last first, start last"] = append(append([]event{events[len(events)-1]}, events[1:len(events)-1]...), events[0])
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range 4 {
		sh := append([]event(nil), events...)
		rng.Shuffle(len(sh), func(a, b int) { sh[a], sh[b] = sh[b], sh[a] })
		out[fmt.Sprintf("shuffle %d", i)] = sh
	}
	// Every event delivered twice, the second copies in another order.
	dup := append([]event(nil), events...)
	again := append([]event(nil), events...)
	rng.Shuffle(len(again), func(a, b int) { again[a], again[b] = again[b], again[a] })
	out["everything twice"] = append(dup, again...)
	// Redeliveries interleaved with the first deliveries.
	var inter []event
	for _, e := range out["shuffle 0"] {
		inter = append(inter, e)
		if rng.IntN(2) == 0 {
			inter = append(inter, e)
		}
	}
	out["some twice"] = inter
	return out
}

func TestRecordsDoNotDependOnOrderOrRedelivery(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ctx := context.Background()
	s := newStore(t)
	for _, tc := range []struct {
		name string
		// events and the record they make, for a session id
		events func(session string) []event
		want   func(session string) *reportingv1.SessionRecord
	}{
		{"handled session", func(ss string) []event { return lifeOf("acme", ss) }, func(ss string) *reportingv1.SessionRecord { return handledRecord("acme", ss) }},
		{"session still going on", func(ss string) []event {
			ev := lifeOf("acme", ss)
			return ev[:len(ev)-1]
		}, func(ss string) *reportingv1.SessionRecord {
			r := handledRecord("acme", ss)
			r.State, r.Outcome, r.EndReason, r.EndedAt = reportingv1.SessionState_SESSION_STATE_ACTIVE, 0, "", nil
			return r
		}},
		// Both services in order and both agents; the agent is the one
		// the session ended with, whichever accept is applied last.
		{"transferred session", func(ss string) []event { return transferredLifeOf("acme", ss) }, func(ss string) *reportingv1.SessionRecord { return transferredRecord("acme", ss) }},
		{"transferred session still going on", func(ss string) []event {
			ev := transferredLifeOf("acme", ss)
			return ev[:len(ev)-1]
		}, func(ss string) *reportingv1.SessionRecord {
			r := transferredRecord("acme", ss)
			r.State, r.Outcome, r.EndReason, r.EndedAt = reportingv1.SessionState_SESSION_STATE_ACTIVE, 0, "", nil
			return r
		}},
	} {
		n := 0
		for name, evs := range orders(tc.events("x"), seed) {
			n++
			session := fmt.Sprintf("ss_%d_%d", len(tc.name), n) // one record per order
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				for _, e := range evs {
					// Re-address the event to this order's session.
					e = event{e.subject, proto.Clone(e.msg)}
					setSession(e.msg, session)
					if err := apply(ctx, s, e); err != nil {
						t.Fatalf("apply %s: %v", e, err)
					}
				}
				got, err := s.Get(ctx, "acme", session)
				if err != nil {
					t.Fatal(err)
				}
				want := tc.want(session)
				// An open session's messages are added up as their events
				// come: a redelivered one counts again until the session's
				// end brings the transcript's count.
				if want.GetState() == reportingv1.SessionState_SESSION_STATE_ACTIVE && strings.Contains(name, "twice") {
					if got.GetInboundMessages() < want.GetInboundMessages() || got.GetOutboundMessages() < want.GetOutboundMessages() || got.GetSegmentsIn() < want.GetSegmentsIn() {
						t.Errorf("messages %d in (%d segments), %d out: fewer than the %d (%d), %d delivered", got.GetInboundMessages(), got.GetSegmentsIn(), got.GetOutboundMessages(),
							want.GetInboundMessages(), want.GetSegmentsIn(), want.GetOutboundMessages())
					}
					want.InboundMessages, want.OutboundMessages, want.SegmentsIn = got.GetInboundMessages(), got.GetOutboundMessages(), got.GetSegmentsIn()
				}
				if !proto.Equal(got, want) {
					t.Errorf("record\n got  %v\n want %v", got, want)
				}
			})
		}
	}
}

// setSession rewrites the session id of any of the events above.
func setSession(m proto.Message, session string) {
	f := m.ProtoReflect().Descriptor().Fields().ByName("session_id")
	m.ProtoReflect().Set(f, protoreflect.ValueOfString(session))
}

// The three consumers (SESSION, DISTRIBUTION, OUTBOUND) apply events to the
// same record at the same time. MongoDB updates a document atomically; the
// embedded FerretDB (SQLite) does not (FerretDB#3040), so the store must
// not depend on it.
func TestConcurrentConsumersLoseNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const sessions = 20
	var wg sync.WaitGroup
	errs := make(chan error, sessions*3)
	for i := range sessions {
		session := fmt.Sprintf("ss_c%02d", i)
		byStream := map[string][]event{}
		for _, e := range lifeOf("acme", session) {
			stream := strings.SplitN(e.subject, ".", 2)[0]
			byStream[stream] = append(byStream[stream], e)
		}
		for _, evs := range byStream {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, e := range evs {
					if err := apply(ctx, s, e); err != nil {
						// A consumer would redeliver; do the same.
						if err = apply(ctx, s, e); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("apply: %v", err)
	}
	for i := range sessions {
		session := fmt.Sprintf("ss_c%02d", i)
		got, err := s.Get(ctx, "acme", session)
		if err != nil {
			t.Fatal(err)
		}
		if want := handledRecord("acme", session); !proto.Equal(got, want) {
			t.Errorf("record\n got  %v\n want %v", got, want)
		}
	}
}

// Every event the store applies is consumed and keyed by its session, so
// one session's events apply in order.
func TestSessionKey(t *testing.T) {
	for _, e := range []event{
		{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: "s1"}},
		{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: "s1"}},
		{subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "s1"}},
		{subjects.TaskQueued("acme"), &distributionv1.TaskQueued{TenantId: "acme", SessionId: "s1"}},
		{subjects.TaskOffered("acme"), &distributionv1.TaskOffered{TenantId: "acme", SessionId: "s1"}},
		{subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", SessionId: "s1"}},
		{subjects.TaskDeclined("acme"), &distributionv1.TaskDeclined{TenantId: "acme", SessionId: "s1"}},
		{subjects.TaskOfferTimedOut("acme"), &distributionv1.TaskOfferTimedOut{TenantId: "acme", SessionId: "s1"}},
		{subjects.OutboundFailed("acme"), &outboundv1.OutboundMessageFailed{TenantId: "acme", SessionId: "s1"}},
		{subjects.OutboundSent("acme"), &outboundv1.OutboundMessageSent{TenantId: "acme", SessionId: "s1"}},
		{subjects.WorkflowStepCompleted("acme"), &workflowv1.StepCompleted{TenantId: "acme", SessionId: "s1"}},
	} {
		data, err := proto.Marshal(e.msg)
		if err != nil {
			t.Fatal(err)
		}
		m := &bus.Message{Subject: e.subject, Data: data}
		if got, err := records.SessionKey(m); err != nil || got != "acme/s1" {
			t.Errorf("%s: key = %q, %v; want acme/s1", e, got, err)
		}
		consumed := false
		for _, kinds := range records.Consumed {
			for _, k := range kinds {
				consumed = consumed || k == m.Kind()
			}
		}
		if !consumed {
			t.Errorf("%s is applied but not consumed", e)
		}
	}
}

// Every event of a session at once, some twice, as EventKey's lanes apply
// them: they meet in the writer's batches and are merged into single
// updates, and the records come out the same as one at a time.
func TestEventsAtOnceMergeIntoTheSameRecord(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const sessions = 20
	var wg sync.WaitGroup
	errs := make(chan error, sessions*40)
	for i := range sessions {
		evs := lifeOf("acme", fmt.Sprintf("ss_m%02d", i))
		evs = append(evs, evs[i%len(evs)], evs[(i*7)%len(evs)])
		for _, e := range evs {
			wg.Go(func() {
				if err := apply(ctx, s, e); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("apply: %v", err)
	}
	for i := range sessions {
		session := fmt.Sprintf("ss_m%02d", i)
		got, err := s.Get(ctx, "acme", session)
		if err != nil {
			t.Fatal(err)
		}
		if want := handledRecord("acme", session); !proto.Equal(got, want) {
			t.Errorf("record\n got  %v\n want %v", got, want)
		}
		d, err := s.Raw(ctx, "acme", session)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.DeclinedBy) != 1 || d.DeclinedBy[0] != (records.AgentOffer{Agent: "bob", Offer: "of1"}) || len(d.RonaBy) != 1 || d.RonaBy[0].Agent != "carl" {
			t.Errorf("%s: declined by %v, RONA by %v", session, d.DeclinedBy, d.RonaBy)
		}
	}
}

func TestMerge(t *testing.T) {
	t1, t2 := t0, t0.Add(time.Second)
	got := records.Merge(
		bson.M{"$setOnInsert": bson.M{"tenant": "acme", "state": int32(1)}, "$addToSet": bson.M{"inbound": "m1"}, "$min": bson.M{"queued_at": t2}},
		bson.M{"$set": bson.M{"state": int32(2)}, "$addToSet": bson.M{"inbound": bson.M{"$each": []any{"m2", "m3"}}}, "$min": bson.M{"queued_at": t1}},
	)
	want := bson.M{"$setOnInsert": bson.M{"tenant": "acme"}, "$set": bson.M{"state": int32(2)},
		"$addToSet": bson.M{"inbound": bson.M{"$each": []any{"m1", "m2", "m3"}}}, "$min": bson.M{"queued_at": t1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	got = records.Merge(
		bson.M{"$inc": bson.M{"live.in": int64(1), "live.seg_in": int64(2)}, "$max": bson.M{"counted.in": int64(3)}},
		bson.M{"$inc": bson.M{"live.in": int64(1), "live.out": int64(1)}, "$max": bson.M{"counted.in": int64(5)}},
	)
	want = bson.M{"$inc": bson.M{"live.in": int64(2), "live.seg_in": int64(2), "live.out": int64(1)}, "$max": bson.M{"counted.in": int64(5)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if records.Merge(bson.M{"$push": bson.M{"n": 1}}, bson.M{"$set": bson.M{"x": 1}}) != nil {
		t.Error("an unknown operator was merged")
	}
	if records.Merge(bson.M{"$inc": bson.M{"n": 1}}, bson.M{"$inc": bson.M{"n": int64(1)}}) != nil {
		t.Error("an $inc of another type than int64 was merged")
	}
}

// Messages are counted, not listed. An open session's counts come from its
// message events; its end's own count (the transcript's) replaces them, the
// larger of two ends wins, and an end without one (from a sessions release
// before it) leaves the events' count. Records from before counting
// (message ids listed) add up with what came after.
func TestMessagesCountedFromEventsThenFromTheEnd(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	msg := func(session, id string, dir sessionv1.Direction, segs int32) event {
		return event{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: session, MessageId: id, Direction: dir, NumSegments: segs}}
	}
	end := func(session string, n *sessionv1.MessageCounts) event {
		return event{subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: session, Outcome: sessionv1.Outcome_OUTCOME_HANDLED, EndedAt: at(time.Minute), Messages: n}}
	}
	in, out := sessionv1.Direction_DIRECTION_INBOUND, sessionv1.Direction_DIRECTION_OUTBOUND
	counts := func(session string) (int32, int32, int32) {
		t.Helper()
		r, err := s.Get(ctx, "acme", session)
		if err != nil {
			t.Fatal(err)
		}
		return r.GetInboundMessages(), r.GetOutboundMessages(), r.GetSegmentsIn()
	}
	for _, e := range []event{msg("ss_a", "SM1", in, 2), msg("ss_a", "SM2", in, 1), msg("ss_a", "rq1", out, 0), msg("ss_a", "SM2", in, 1)} {
		if err := apply(ctx, s, e); err != nil {
			t.Fatal(err)
		}
	}
	if i, o, g := counts("ss_a"); i != 3 || o != 1 || g != 4 {
		t.Errorf("open, SM2 delivered twice: %d in (%d segments), %d out; want 3 (4), 1", i, g, o)
	}
	for _, e := range []event{end("ss_a", &sessionv1.MessageCounts{Inbound: 2, Outbound: 1, SegmentsIn: 3}), end("ss_a", &sessionv1.MessageCounts{Inbound: 1, Outbound: 1, SegmentsIn: 2})} {
		if err := apply(ctx, s, e); err != nil {
			t.Fatal(err)
		}
	}
	if i, o, g := counts("ss_a"); i != 2 || o != 1 || g != 3 {
		t.Errorf("ended, the transcript counted 2 in (3 segments), 1 out: %d in (%d), %d out", i, g, o)
	}
	for _, e := range []event{msg("ss_b", "SM1", in, 1), end("ss_b", nil)} {
		if err := apply(ctx, s, e); err != nil {
			t.Fatal(err)
		}
	}
	if i, o, g := counts("ss_b"); i != 1 || o != 0 || g != 1 {
		t.Errorf("ended without a count: %d in (%d segments), %d out; want the event's 1 (1), 0", i, g, o)
	}
	old := records.Doc{Inbound: []string{"SM1", "SM2"}, Outbound: []string{"rq1"}, SegmentsIn: []records.MessageSegments{{Message: "SM1", Segments: 2}, {Message: "SM2", Segments: 1}},
		Live: records.MessageCounts{In: 1, Out: 1, SegIn: 1}}
	if got := old.Messages(); got != (records.MessageCounts{In: 3, Out: 2, SegIn: 4}) {
		t.Errorf("a record listed before counting, then counted: %+v", got)
	}
}
