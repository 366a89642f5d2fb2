// Package records builds session records from events. Every event becomes
// one upsert by _id ("<tenant>/<session>", the filter FerretDB serves from
// its index and MongoDB from its primary key) with operators that commute
// ($setOnInsert, $min, $max, $addToSet, $inc, guarded $set), so records
// come out right whatever order the three consumers and their redeliveries
// apply them in, and no event needs the record read first. Upserts are
// group-committed (mongodb.GroupWriter).
//
// Messages are counted, not listed: a record that kept every message id
// grew with its session, and FerretDB rewrites a document whole on each
// update, so long sessions slowed every write. An open session's counts
// are added as messages come ($inc: a message event redelivered after a
// crash counts again); its end brings the transcript's own counts
// (SessionEnded.messages), which replace them.
package records

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/pricing"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// ErrNotFound: no record for that session.
var ErrNotFound = errors.New("session not found")

// ErrBadPageToken: the page token is not one this service issued.
var ErrBadPageToken = errors.New("page_token is invalid")

// Store holds session records.
type Store struct {
	c *mongo.Collection
	// w writes every upsert of this process. MongoDB applies an update to
	// a document atomically, but the embedded FerretDB 1.24 (SQLite
	// backend) reads, modifies and writes the document without a
	// transaction (FerretDB#3040), so two consumers updating the same
	// session at once could lose one update; the single writer applies
	// them one after another. One reporting process is all that ever runs
	// against FerretDB.
	w *mongodb.GroupWriter
}

// New opens the store.
func New(ctx context.Context, db *mongo.Database) (*Store, error) {
	err := mongodb.EnsureIndexes(ctx, db, mongodb.Index{
		Collection: "sessions", Name: "tenant_started",
		Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "started_at", Value: -1}, {Key: "_id", Value: -1}},
	})
	if err != nil {
		return nil, err
	}
	c := db.Collection("sessions")
	return &Store{c: c, w: mongodb.NewGroupWriter(c, "session record", mongodb.WithMergedUpserts(Merge))}, nil
}

// Merge combines two of the store's updates of one record into one with
// the effect of both, whatever their order (the operators commute):
// $addToSet values are unioned ($each), $min keeps the least, $max the
// greatest, $inc adds up (int64 only), $set and
// $setOnInsert fields are united (a field in $set leaves $setOnInsert, as
// MongoDB refuses both). It returns nil for an operator it does not know.
func Merge(a, b bson.M) bson.M {
	out := bson.M{}
	for _, u := range []bson.M{a, b} {
		for op, v := range u {
			fields, ok := v.(bson.M)
			if !ok {
				return nil
			}
			have, _ := out[op].(bson.M)
			if have == nil {
				have = bson.M{}
				out[op] = have
			}
			for f, x := range fields {
				switch op {
				case "$set":
					have[f] = x
				case "$setOnInsert":
					if _, ok := have[f]; !ok {
						have[f] = x
					}
				case "$min":
					if y, ok := have[f]; !ok || less(x, y) {
						have[f] = x
					}
				case "$max":
					if y, ok := have[f]; !ok || less(y, x) {
						have[f] = x
					}
				case "$inc":
					a, _ := have[f].(int64)
					b, ok := x.(int64)
					if !ok {
						return nil
					}
					have[f] = a + b
				case "$addToSet":
					have[f] = bson.M{"$each": append(each(have[f]), each(x)...)}
				default:
					return nil
				}
			}
		}
	}
	if set, _ := out["$set"].(bson.M); set != nil {
		if ins, _ := out["$setOnInsert"].(bson.M); ins != nil {
			for f := range set {
				delete(ins, f)
			}
		}
	}
	return out
}

// each is the values an $addToSet field adds.
func each(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case bson.M:
		if e, ok := x["$each"].([]any); ok {
			return e
		}
	}
	return []any{v}
}

func less(x, y any) bool {
	switch a := x.(type) {
	case time.Time:
		b, ok := y.(time.Time)
		return ok && a.Before(b)
	case int64:
		b, ok := y.(int64)
		return ok && a < b
	}
	return false
}

// Close stops the writer; call it after the consumers have stopped.
func (s *Store) Close() { s.w.Close() }

// Doc is a stored session record.
type Doc struct {
	ID         string    `bson:"_id"`
	Tenant     string    `bson:"tenant"`
	SessionID  string    `bson:"session_id"`
	ServiceID  string    `bson:"service_id,omitempty"`
	EntryID    string    `bson:"entry_id,omitempty"`
	Channel    int32     `bson:"channel,omitempty"`
	Customer   string    `bson:"customer,omitempty"`
	Business   string    `bson:"business,omitempty"`
	State      int32     `bson:"state,omitempty"`
	Outcome    int32     `bson:"outcome,omitempty"`
	EndReason  string    `bson:"end_reason,omitempty"`
	AgentID    string    `bson:"agent_id,omitempty"`
	StartedAt  time.Time `bson:"started_at,omitempty"`
	QueuedAt   time.Time `bson:"queued_at,omitempty"`
	AcceptedAt time.Time `bson:"accepted_at,omitempty"`
	EndedAt    time.Time `bson:"ended_at,omitempty"`
	// Inbound and Outbound list message ids: records written before
	// messages were counted (Counted, Live) have them.
	Inbound  []string `bson:"inbound,omitempty"`
	Outbound []string `bson:"outbound,omitempty"`
	// Counted is the transcript's count when the session ended (nil
	// before, or from a sessions release that did not count); Live counts
	// the messages as their events came.
	Counted     *MessageCounts `bson:"counted,omitempty"`
	Live        MessageCounts  `bson:"live,omitempty"`
	Offers      []string       `bson:"offers,omitempty"`
	Declines    []string       `bson:"declines,omitempty"`
	Ronas       []string       `bson:"ronas,omitempty"`
	FailedSends []string       `bson:"failed_sends,omitempty"`
	// FirstReplyAt is the first agent message's time.
	FirstReplyAt time.Time `bson:"first_reply_at,omitempty"`
	// DeclinedBy and RonaBy name who declined or let each offer time out.
	DeclinedBy []AgentOffer `bson:"declined_by,omitempty"`
	RonaBy     []AgentOffer `bson:"rona_by,omitempty"`
	// SegmentsIn and SegmentsOut are the Twilio segments of each customer
	// message and of each message Twilio accepted for sending, by message
	// (so a redelivery adds nothing); StepsDone the workflow's completed
	// steps.
	SegmentsIn  []MessageSegments `bson:"segments_in,omitempty"`
	SegmentsOut []MessageSegments `bson:"segments_out,omitempty"`
	StepsDone   []Step            `bson:"steps,omitempty"`
	// Queues are the services the session was queued in (the first
	// queue's, then each transfer's); Accepts who accepted it and when.
	Queues  []ServiceAt `bson:"services,omitempty"`
	Accepts []AgentAt   `bson:"accepts,omitempty"`
	// RolledUp is the SESSION stream sequence of the SessionEnded the
	// session was rolled up at (the first, should it end twice).
	RolledUp int64 `bson:"rolled_up,omitempty"`

	// StartedByAgentID is the agent who started the session (a
	// business-initiated conversation, SessionStarted's
	// started_by_agent_id); empty for one a customer's message opened.
	// SessionRecord has no field for it: it stays in the stored record,
	// and the rollups count such sessions apart (rollup.StartedByAgent).
	StartedByAgentID string `bson:"started_by_agent_id,omitempty"`
}

// AgentOffer is an offer and the agent it went to.
type AgentOffer struct {
	Agent string `bson:"a"`
	Offer string `bson:"o"`
}

// MessageCounts are a session's messages from the customer (In, with
// their Twilio segments SegIn) and to the customer (Out).
type MessageCounts struct {
	In    int64 `bson:"in"`
	Out   int64 `bson:"out"`
	SegIn int64 `bson:"seg_in"`
}

// Messages are the session's message counts: the transcript's from its
// end when the record has them, else what came as events (counted, and
// listed by records written before counting).
func (d *Doc) Messages() MessageCounts {
	if d.Counted != nil {
		return *d.Counted
	}
	return MessageCounts{
		In: int64(len(d.Inbound)) + d.Live.In, Out: int64(len(d.Outbound)) + d.Live.Out,
		SegIn: sumSegments(d.SegmentsIn) + d.Live.SegIn,
	}
}

// FromEnd is what SessionEnded says of the session's messages, nil when
// it does not say.
func FromEnd(ev *sessionv1.SessionEnded) *MessageCounts {
	m := ev.GetMessages()
	if m == nil {
		return nil
	}
	return &MessageCounts{In: int64(m.GetInbound()), Out: int64(m.GetOutbound()), SegIn: m.GetSegmentsIn()}
}

// MessageSegments is one message's segments.
type MessageSegments struct {
	Message  string `bson:"m"`
	Segments int32  `bson:"n"`
}

func messageSegments(id string, n int32) bson.D {
	return bson.D{{Key: "m", Value: id}, {Key: "n", Value: n}}
}

// sumSegments adds each message's segments once (the most said of it).
func sumSegments(list []MessageSegments) int64 {
	by := map[string]int32{}
	for _, m := range list {
		by[m.Message] = max(by[m.Message], m.Segments)
	}
	var n int64
	for _, v := range by {
		n += int64(v)
	}
	return n
}

// Segments are the session's segments in and out, each message once.
func (d *Doc) Segments() (in, out int64) {
	return d.Messages().SegIn, sumSegments(d.SegmentsOut)
}

// Step is one completed step of the session's workflow, as
// workflow.step.completed says it (the same event gives the same value,
// so $addToSet keeps it once).
type Step struct {
	Step       int64     `bson:"s"`
	Workflow   string    `bson:"w,omitempty"`
	Activity   string    `bson:"a"`
	Type       string    `bson:"t"`
	Label      string    `bson:"l,omitempty"`
	Branch     string    `bson:"b,omitempty"`
	At         time.Time `bson:"at"`
	DurationMS int64     `bson:"d"`
}

// Steps are the workflow's steps in order, one per step number (the
// earliest, should a step have been told twice differently).
func (d *Doc) Steps() []Step {
	out := slices.Clone(d.StepsDone)
	slices.SortStableFunc(out, func(a, b Step) int {
		if c := cmp.Compare(a.Step, b.Step); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
	return slices.CompactFunc(out, func(a, b Step) bool { return a.Step == b.Step })
}

// ServiceAt is a service the session was queued in: by its first queue
// (Transfer 0) or by a transfer (its 1-based number).
type ServiceAt struct {
	Service  string    `bson:"s"`
	Transfer int32     `bson:"n"`
	At       time.Time `bson:"at"`
}

// AgentAt is an agent's accept of the session.
type AgentAt struct {
	Agent string    `bson:"a"`
	At    time.Time `bson:"at"`
}

// Services are the services the session was queued in, in order, a
// service once in a row (a second queue of the same service, or a
// redelivered event at another time, adds nothing).
func (d *Doc) Services() []string {
	return inOrder(d.Queues, func(x ServiceAt) time.Time { return x.At },
		func(a, b ServiceAt) int { return cmp.Compare(a.Transfer, b.Transfer) }, func(x ServiceAt) string { return x.Service })
}

// Agents are the agents who accepted the session, in order, an agent
// once in a row.
func (d *Doc) Agents() []string {
	return inOrder(d.Accepts, func(x AgentAt) time.Time { return x.At },
		func(a, b AgentAt) int { return cmp.Compare(a.Agent, b.Agent) }, func(x AgentAt) string { return x.Agent })
}

// inOrder names items sorted by time (then by tie), each name once in a
// row.
func inOrder[T any](items []T, at func(T) time.Time, tie func(a, b T) int, name func(T) string) []string {
	items = slices.Clone(items)
	slices.SortStableFunc(items, func(a, b T) int {
		if c := at(a).Compare(at(b)); c != 0 {
			return c
		}
		return tie(a, b)
	})
	var out []string
	for _, x := range items {
		if n := name(x); len(out) == 0 || out[len(out)-1] != n {
			out = append(out, n)
		}
	}
	return out
}

// Agent is the session's agent: the one it ended with (SessionEnded's),
// else the last who accepted it. Accepts do not set agent_id themselves:
// two of them (a transfer) and the end would leave whichever was applied
// last.
func (d *Doc) Agent() string {
	if d.AgentID != "" {
		return d.AgentID
	}
	if a := d.Agents(); len(a) > 0 {
		return a[len(a)-1]
	}
	return ""
}

func agentOffer(agent, offer string) bson.D {
	return bson.D{{Key: "a", Value: agent}, {Key: "o", Value: offer}}
}

func key(tenant, session string) string { return tenant + "/" + session }

func (s *Store) upsert(ctx context.Context, tenant, session string, update bson.M) error {
	set, _ := update["$setOnInsert"].(bson.M)
	if set == nil {
		set = bson.M{}
	}
	set["tenant"], set["session_id"] = tenant, session
	// Whichever event creates the record, the session is going on until
	// SessionEnded says otherwise. (Only SessionStarted used to set this,
	// so a record created by an earlier-arriving event had no state.)
	if sets, _ := update["$set"].(bson.M); sets["state"] == nil {
		set["state"] = int32(reportingv1.SessionState_SESSION_STATE_ACTIVE)
	}
	update["$setOnInsert"] = set
	return s.w.Upsert(ctx, key(tenant, session), update)
}

// Consumed names the events each consumer applies, so the others are not
// delivered at all.
var Consumed = map[string][]string{
	subjects.StreamSession: {subjects.KindSessionStarted, subjects.KindSessionMessageAdded, subjects.KindSessionEnded},
	subjects.StreamDistribution: {subjects.KindTaskQueued, subjects.KindTaskOffered, subjects.KindTaskAccepted,
		subjects.KindTaskDeclined, subjects.KindTaskOfferTimedOut, subjects.KindTaskTransferred},
	subjects.StreamOutbound: {subjects.KindOutboundFailed, subjects.KindOutboundSent},
	subjects.StreamWorkflow: {subjects.KindWorkflowStepCompleted},
}

// EventKey spreads events over the lanes by their stream sequence: the
// store's operators commute, so a session's events need no order, and
// several of them in flight at once land in one batch of the writer,
// which merges them into one update of the record (Merge).
func EventKey(m *bus.Message) (string, error) { return strconv.FormatUint(m.Sequence, 10), nil }

// SessionKey orders events by the session they name: one session's events
// of one consumer apply in order, different sessions' at once. Every event
// the store applies has a session_id; one without goes by its subject.
func SessionKey(m *bus.Message) (string, error) {
	var ev interface{ GetSessionId() string }
	switch m.Kind() {
	case subjects.KindSessionStarted:
		ev = &sessionv1.SessionStarted{}
	case subjects.KindSessionMessageAdded:
		ev = &sessionv1.MessageAdded{}
	case subjects.KindSessionEnded:
		ev = &sessionv1.SessionEnded{}
	case subjects.KindTaskQueued:
		ev = &distributionv1.TaskQueued{}
	case subjects.KindTaskOffered:
		ev = &distributionv1.TaskOffered{}
	case subjects.KindTaskAccepted:
		ev = &distributionv1.TaskAccepted{}
	case subjects.KindTaskDeclined:
		ev = &distributionv1.TaskDeclined{}
	case subjects.KindTaskOfferTimedOut:
		ev = &distributionv1.TaskOfferTimedOut{}
	case subjects.KindTaskTransferred:
		ev = &distributionv1.TaskTransferred{}
	case subjects.KindOutboundFailed:
		ev = &outboundv1.OutboundMessageFailed{}
	case subjects.KindOutboundSent:
		ev = &outboundv1.OutboundMessageSent{}
	case subjects.KindWorkflowStepCompleted:
		ev = &workflowv1.StepCompleted{}
	default:
		return m.Subject, nil
	}
	if err := m.Decode(ev.(proto.Message)); err != nil {
		return "", err
	}
	if id := ev.GetSessionId(); id != "" {
		return m.Tenant() + "/" + id, nil
	}
	return m.Subject, nil
}

func valid(m *bus.Message, tenant, session string) error {
	if session == "" || tenant != m.Tenant() {
		return bus.Permanentf("event on %s lacks a session id or names another tenant", m.Subject)
	}
	return nil
}

// HandleSession applies SESSION events.
func (s *Store) HandleSession(ctx context.Context, m *bus.Message) error {
	switch m.Kind() {
	case subjects.KindSessionStarted:
		var ev sessionv1.SessionStarted
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		c := ev.GetConversation()
		set := bson.M{
			"service_id": ev.GetServiceId(), "entry_id": ev.GetEntryId(), "channel": int32(c.GetChannel()),
			"customer": c.GetCustomerAddress(), "business": c.GetBusinessAddress(),
			"started_at": when(ev.GetStartedAt()),
		}
		if a := ev.GetStartedByAgentId(); a != "" {
			set["started_by_agent_id"] = a
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{"$set": set})
	case subjects.KindSessionMessageAdded:
		var ev sessionv1.MessageAdded
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		inc := bson.M{"live.out": int64(1)}
		if ev.GetDirection() == sessionv1.Direction_DIRECTION_INBOUND {
			inc = bson.M{"live.in": int64(1)}
			if n := ev.GetNumSegments(); n > 0 {
				inc["live.seg_in"] = int64(n)
			}
		}
		update := bson.M{"$inc": inc}
		if ev.GetDirection() == sessionv1.Direction_DIRECTION_OUTBOUND && ev.GetSender() == sessionv1.SenderKind_SENDER_KIND_AGENT && ev.GetOccurredAt() != nil {
			update["$min"] = bson.M{"first_reply_at": ev.GetOccurredAt().AsTime()}
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), update)
	case subjects.KindSessionEnded:
		var ev sessionv1.SessionEnded
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		set := bson.M{
			"state": int32(reportingv1.SessionState_SESSION_STATE_ENDED), "outcome": int32(ev.GetOutcome()),
			"end_reason": ev.GetReason(), "ended_at": when(ev.GetEndedAt()),
		}
		if ev.GetAgentId() != "" {
			set["agent_id"] = ev.GetAgentId()
		}
		update := bson.M{"$set": set}
		if c := FromEnd(&ev); c != nil {
			// A session's end announced again later counts a transcript
			// that can only have grown: the most wins.
			update["$max"] = bson.M{"counted.in": c.In, "counted.out": c.Out, "counted.seg_in": c.SegIn}
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), update)
	}
	return nil
}

// HandleDistribution applies DISTRIBUTION events.
func (s *Store) HandleDistribution(ctx context.Context, m *bus.Message) error {
	switch m.Kind() {
	case subjects.KindTaskQueued:
		var ev distributionv1.TaskQueued
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		at := when(ev.GetQueuedAt())
		update := bson.M{"$min": bson.M{"queued_at": at}}
		if ev.GetServiceId() != "" {
			update["$addToSet"] = bson.M{"services": serviceAt(ev.GetServiceId(), 0, at)}
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), update)
	case subjects.KindTaskOffered:
		var ev distributionv1.TaskOffered
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{"$addToSet": bson.M{"offers": ev.GetOfferId()}})
	case subjects.KindTaskAccepted:
		var ev distributionv1.TaskAccepted
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		at := when(ev.GetAcceptedAt())
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{
			"$min":      bson.M{"accepted_at": at},
			"$addToSet": bson.M{"accepts": bson.D{{Key: "a", Value: ev.GetAgentId()}, {Key: "at", Value: at}}},
		})
	case subjects.KindTaskTransferred:
		var ev distributionv1.TaskTransferred
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		if ev.GetToServiceId() == "" { // to an agent: the service stays
			return nil
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{"$addToSet": bson.M{
			"services": serviceAt(ev.GetToServiceId(), ev.GetTransfer(), when(ev.GetTransferredAt())),
		}})
	case subjects.KindTaskDeclined:
		var ev distributionv1.TaskDeclined
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{"$addToSet": bson.M{
			"declines": ev.GetOfferId(), "declined_by": agentOffer(ev.GetAgentId(), ev.GetOfferId()),
		}})
	case subjects.KindTaskOfferTimedOut:
		var ev distributionv1.TaskOfferTimedOut
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{"$addToSet": bson.M{
			"ronas": ev.GetOfferId(), "rona_by": agentOffer(ev.GetAgentId(), ev.GetOfferId()),
		}})
	}
	return nil
}

func serviceAt(service string, transfer int32, at time.Time) bson.D {
	return bson.D{{Key: "s", Value: service}, {Key: "n", Value: transfer}, {Key: "at", Value: at}}
}

// HandleOutbound applies OUTBOUND events.
func (s *Store) HandleOutbound(ctx context.Context, m *bus.Message) error {
	if m.Kind() == subjects.KindOutboundSent {
		var ev outboundv1.OutboundMessageSent
		if err := m.Decode(&ev); err != nil {
			return err
		}
		if ev.GetSessionId() == "" || ev.GetNumSegments() <= 0 {
			return nil
		}
		if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
			return err
		}
		return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{"$addToSet": bson.M{
			"segments_out": messageSegments(ev.GetRequestId(), ev.GetNumSegments()),
		}})
	}
	if m.Kind() != subjects.KindOutboundFailed {
		return nil
	}
	var ev outboundv1.OutboundMessageFailed
	if err := m.Decode(&ev); err != nil {
		return err
	}
	if ev.GetSessionId() == "" {
		return nil
	}
	if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
		return err
	}
	return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{"$addToSet": bson.M{"failed_sends": ev.GetRequestId()}})
}

// HandleWorkflow applies WORKFLOW events: each completed step joins the
// session's path.
func (s *Store) HandleWorkflow(ctx context.Context, m *bus.Message) error {
	if m.Kind() != subjects.KindWorkflowStepCompleted {
		return nil
	}
	var ev workflowv1.StepCompleted
	if err := m.Decode(&ev); err != nil {
		return err
	}
	if err := valid(m, ev.GetTenantId(), ev.GetSessionId()); err != nil {
		return err
	}
	step := bson.D{
		{Key: "s", Value: ev.GetStep()}, {Key: "w", Value: ev.GetWorkflowId()}, {Key: "a", Value: ev.GetActivity()},
		{Key: "t", Value: ev.GetActivityType()}, {Key: "l", Value: ev.GetActivityLabel()}, {Key: "b", Value: ev.GetBranch()},
		{Key: "at", Value: when(ev.GetOccurredAt())}, {Key: "d", Value: ev.GetDuration().AsDuration().Milliseconds()},
	}
	return s.upsert(ctx, ev.GetTenantId(), ev.GetSessionId(), bson.M{"$addToSet": bson.M{"steps": step}})
}

// when is an event's time; an event without one counts as happening when
// it is applied (producers always set it; this keeps 1970 out of records).
func when(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Now().UTC()
	}
	return t.AsTime()
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (d *Doc) proto() *reportingv1.SessionRecord {
	msgs := d.Messages()
	in, out := msgs.SegIn, sumSegments(d.SegmentsOut)
	var steps []*reportingv1.WorkflowStep
	for _, st := range d.Steps() {
		name := ""
		if t, ok := workflowdef.Lookup(st.Type); ok {
			name = t.Name
		}
		steps = append(steps, &reportingv1.WorkflowStep{
			Step: st.Step, WorkflowId: st.Workflow, ActivityId: st.Activity, ActivityType: st.Type, TypeName: name,
			Label: st.Label, Branch: st.Branch, CompletedAt: ts(st.At), Duration: durationpb.New(time.Duration(st.DurationMS) * time.Millisecond),
		})
	}
	return &reportingv1.SessionRecord{
		TenantId: d.Tenant, SessionId: d.SessionID, ServiceId: d.ServiceID, EntryId: d.EntryID,
		Channel: messagingv1.Channel(d.Channel), CustomerAddress: d.Customer, BusinessAddress: d.Business,
		State: reportingv1.SessionState(d.State), Outcome: sessionv1.Outcome(d.Outcome), EndReason: d.EndReason,
		AgentId: d.Agent(), StartedAt: ts(d.StartedAt), QueuedAt: ts(d.QueuedAt), AcceptedAt: ts(d.AcceptedAt),
		EndedAt: ts(d.EndedAt), InboundMessages: int32(msgs.In), OutboundMessages: int32(msgs.Out),
		Offers: int32(len(d.Offers)), Declines: int32(len(d.Declines)), Ronas: int32(len(d.Ronas)),
		FailedSends: int32(len(d.FailedSends)),
		SegmentsIn:  int32(in), SegmentsOut: int32(out), CustomerCountry: pricing.Country(d.Customer),
		Steps: steps, Services: d.Services(), Agents: d.Agents(), StartedByAgentId: d.StartedByAgentID,
	}
}

// MarkRolledUp records that the session was rolled up at seq (the lowest
// such seq stays). It goes through the writer like every event, so it
// never races one on FerretDB; a session without a record is left alone.
func (s *Store) MarkRolledUp(ctx context.Context, tenant, session string, seq uint64) error {
	return s.w.Update(ctx, key(tenant, session), bson.M{"$min": bson.M{"rolled_up": int64(seq)}})
}

// Proto is the record as the API shows it.
func (d *Doc) Proto() *reportingv1.SessionRecord { return d.proto() }

// Raw returns one stored record.
func (s *Store) Raw(ctx context.Context, tenant, session string) (*Doc, error) {
	var d Doc
	err := s.c.FindOne(ctx, bson.M{"_id": key(tenant, session)}).Decode(&d)
	if mongodb.IsNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get record: %w", err)
	}
	return &d, nil
}

// Export hands each record of a session started in [from, to) to fn,
// oldest first, until fn returns an error. MongoDB serves it from the
// tenant_started index; FerretDB reads the collection (an export, not a
// hot path).
func (s *Store) Export(ctx context.Context, tenant string, from, to time.Time, fn func(*Doc) error) error {
	cur, err := s.c.Find(ctx, bson.M{"tenant": tenant, "started_at": bson.M{"$gte": from, "$lt": to}},
		options.Find().SetSort(bson.D{{Key: "started_at", Value: 1}, {Key: "_id", Value: 1}}).SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("export records: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d Doc
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("export records: %w", err)
		}
		if err := fn(&d); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("export records: %w", err)
	}
	return nil
}

// Get returns one record.
func (s *Store) Get(ctx context.Context, tenant, session string) (*reportingv1.SessionRecord, error) {
	var d Doc
	err := s.c.FindOne(ctx, bson.M{"_id": key(tenant, session)}).Decode(&d)
	if mongodb.IsNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get record: %w", err)
	}
	return d.proto(), nil
}

// Filter narrows a listing.
type Filter struct {
	ServiceID string
	Channel   messagingv1.Channel
	State     reportingv1.SessionState
}

type cursor struct {
	StartedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

// List pages through a tenant's records, newest first.
func (s *Store) List(ctx context.Context, tenant string, f Filter, size int, token string) ([]*reportingv1.SessionRecord, string, error) {
	q := bson.M{"tenant": tenant}
	if f.ServiceID != "" {
		q["service_id"] = f.ServiceID
	}
	if f.Channel != messagingv1.Channel_CHANNEL_UNSPECIFIED {
		q["channel"] = int32(f.Channel)
	}
	if f.State != reportingv1.SessionState_SESSION_STATE_UNSPECIFIED {
		q["state"] = int32(f.State)
	}
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		var c cursor
		if err != nil || json.Unmarshal(raw, &c) != nil || c.ID == "" {
			return nil, "", ErrBadPageToken
		}
		// Records whose start is not known yet (SessionStarted not applied)
		// have no started_at and sort after every dated one; neither $lt
		// nor equality matches a missing field, so they need their own
		// branch, or paging would skip them.
		if c.StartedAt.IsZero() {
			q["started_at"] = nil
			q["_id"] = bson.M{"$lt": c.ID}
		} else {
			q["$or"] = bson.A{
				bson.M{"started_at": bson.M{"$lt": c.StartedAt}},
				bson.M{"started_at": c.StartedAt, "_id": bson.M{"$lt": c.ID}},
				bson.M{"started_at": nil},
			}
		}
	}
	cur, err := s.c.Find(ctx, q, options.Find().
		SetSort(bson.D{{Key: "started_at", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(size+1)))
	if err != nil {
		return nil, "", fmt.Errorf("list records: %w", err)
	}
	var docs []Doc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", fmt.Errorf("read records: %w", err)
	}
	next := ""
	if len(docs) > size {
		docs = docs[:size]
		last := docs[len(docs)-1]
		raw, _ := json.Marshal(cursor{StartedAt: last.StartedAt, ID: last.ID})
		next = base64.RawURLEncoding.EncodeToString(raw)
	}
	out := make([]*reportingv1.SessionRecord, len(docs))
	for i := range docs {
		out[i] = docs[i].proto()
	}
	return out, next, nil
}
