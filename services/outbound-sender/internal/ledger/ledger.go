// Package ledger is the delivery ledger: one record per outbound request,
// what became of it at Twilio, and its status timeline.
//
// The ledger is one MongoDB collection holding three kinds of documents,
// every one read and written by _id (FerretDB scans on any other field,
// and its in-place updates grow slower with the collection, so the send
// path only inserts):
//
//   - "req:<tenant>/<request_id>", the Request: what was asked, and the
//     attempt bookkeeping. Inserted before the first call to Twilio. It is
//     updated only when a call is retried or reconciled.
//   - "out:<tenant>/<request_id>", the Outcome: sent (with Twilio's SID) or
//     failed (with the reason). Inserted once, when the request's fate is
//     decided; its unique _id is what makes the decision happen once.
//   - "sid:<tenant>/<twilio_sid>", the Message at Twilio: the request it
//     belongs to and its delivery status, which only ever moves forward.
//     Inserted with the sent outcome (one round trip), updated by status
//     callbacks.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a concurrent writer changed a record first.
var ErrConflict = errors.New("conflict")

// Conversation is how the request reaches the customer (mirrors
// messaging.v1.ConversationRef).
type Conversation struct {
	Channel             int32  `bson:"channel,omitempty"`
	Path                int32  `bson:"path,omitempty"`
	Customer            string `bson:"customer"`
	Business            string `bson:"business,omitempty"`
	ChatServiceSID      string `bson:"chat_service_sid,omitempty"`
	ConversationSID     string `bson:"conversation_sid,omitempty"`
	MessagingServiceSID string `bson:"messaging_service_sid,omitempty"`
}

// Request is what was asked for and the attempts made.
type Request struct {
	ID               string       `bson:"_id"`
	Tenant           string       `bson:"-"` // in _id
	RequestID        string       `bson:"-"` // in _id
	SessionID        string       `bson:"session_id,omitempty"`
	EntryID          string       `bson:"entry_id"`
	Conversation     Conversation `bson:"conversation"`
	Body             string       `bson:"body,omitempty"`
	MediaURLs        []string     `bson:"media_urls,omitempty"`
	ContentSID       string       `bson:"content_sid,omitempty"`
	ContentVariables string       `bson:"content_variables,omitempty"`
	Origin           int32        `bson:"origin,omitempty"`
	AgentID          string       `bson:"agent_id,omitempty"`
	Author           string       `bson:"author,omitempty"`
	ResendOf         string       `bson:"resend_of,omitempty"`
	Segments         int          `bson:"segments,omitempty"`
	RequestedAt      time.Time    `bson:"requested_at"`
	CreatedAt        time.Time    `bson:"created_at"`
	// Attempts counts calls to Twilio that may have been made: it is
	// raised before each call.
	Attempts int `bson:"attempts"`
	// FirstCallAt is when the first call may have started (the lower bound
	// of a reconciliation lookup); LeaseUntil is when the latest call has
	// certainly ended (answered or timed out), so another process may look
	// the message up and retry.
	FirstCallAt time.Time `bson:"first_call_at"`
	LeaseUntil  time.Time `bson:"lease_until"`
}

// Outcome states.
const (
	StateSent   = "sent"
	StateFailed = "failed"
)

// Outcome is a request's decided fate. It is written on the send path, so
// it holds only what the request does not (tenant and request id are in
// its _id, the rest in the Request).
type Outcome struct {
	ID        string `bson:"_id"`
	Tenant    string `bson:"-"`
	RequestID string `bson:"-"`
	State     string `bson:"state"`
	TwilioSID string `bson:"twilio_sid,omitempty"`
	// Status Twilio gave on creation (queued, accepted) or "failed".
	Status       string    `bson:"status"`
	ErrorCode    int32     `bson:"error_code,omitempty"`
	ErrorMessage string    `bson:"error_message,omitempty"`
	Reason       int32     `bson:"reason,omitempty"` // outboundv1.FailureReason
	Attempts     int       `bson:"attempts"`
	Segments     int       `bson:"segments,omitempty"`
	Reconciled   bool      `bson:"reconciled,omitempty"`
	DecidedAt    time.Time `bson:"decided_at"`
	ResentAs     []string  `bson:"resent_as,omitempty"`
}

// Change is one status report.
type Change struct {
	Status    string    `bson:"status"`
	ErrorCode int32     `bson:"error_code,omitempty"`
	At        time.Time `bson:"at"`
}

// Message is a message Twilio accepted, with its delivery status. The
// tenant and SID are in its _id; the conversation is in the Request.
type Message struct {
	ID           string    `bson:"_id"`
	Tenant       string    `bson:"-"`
	SID          string    `bson:"-"`
	RequestID    string    `bson:"request_id"`
	SessionID    string    `bson:"session_id,omitempty"`
	ResendOf     string    `bson:"resend_of,omitempty"`
	Status       string    `bson:"status"`
	ErrorCode    int32     `bson:"error_code,omitempty"`
	ErrorMessage string    `bson:"error_message,omitempty"`
	Timeline     []Change  `bson:"timeline,omitempty"`
	Version      int64     `bson:"version"`
	UpdatedAt    time.Time `bson:"updated_at,omitempty"`
}

// statusRank orders delivery statuses; a status never replaces a later
// one. failed/undelivered are final for the carrier, but a read receipt
// proves delivery, so read ranks above them (as the sessions transcript
// ranks them).
var statusRank = map[string]int{
	"pending": 1, "scheduled": 2, "queued": 2, "accepted": 2, "sending": 3, "sent": 4,
	"delivered": 5, "undelivered": 6, "failed": 6, "read": 7,
}

// Rank is the position of a status in a message's life; 0 when unknown.
func Rank(status string) int { return statusRank[status] }

// Store is the ledger collection.
type Store struct {
	c     *mongo.Collection
	batch *batcher
	// locks serialise status updates of one message within the process.
	// Across processes the version check makes them safe on MongoDB;
	// FerretDB does not apply a filtered replace atomically, so there the
	// in-process lock is what holds (one outbound-sender per database).
	locks [64]sync.Mutex
}

// New returns the ledger in db. Close stops its writers.
func New(db *mongo.Database) *Store {
	c := db.Collection("ledger")
	return &Store{c: c, batch: newBatcher(c)}
}

// Close stops the batch writers.
func (s *Store) Close() { s.batch.close() }

func (s *Store) lock(id string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return &s.locks[h.Sum32()%uint32(len(s.locks))]
}

// RequestKey and friends build _ids.
func RequestKey(tenant, requestID string) string { return "req:" + tenant + "/" + requestID }
func OutcomeKey(tenant, requestID string) string { return "out:" + tenant + "/" + requestID }
func MessageKey(tenant, sid string) string       { return "sid:" + tenant + "/" + sid }

// Begin inserts r. It reports fresh=false and returns the stored request
// when one with the same id exists (a redelivery).
func (s *Store) Begin(ctx context.Context, r *Request) (*Request, bool, error) {
	r.ID = RequestKey(r.Tenant, r.RequestID)
	errs, err := s.batch.insert(ctx, r)
	if err != nil {
		return nil, false, fmt.Errorf("insert ledger request %q: %w", r.RequestID, err)
	}
	switch {
	case errs[0] == nil:
		return r, true, nil
	case !errors.Is(errs[0], errDuplicate):
		return nil, false, fmt.Errorf("insert ledger request %q: %w", r.RequestID, errs[0])
	}
	got, err := s.Request(ctx, r.Tenant, r.RequestID)
	return got, false, err
}

func (s *Store) find(ctx context.Context, id string, dst any) error {
	err := s.c.FindOne(ctx, bson.M{"_id": id}).Decode(dst)
	if mongodb.IsNotFound(err) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("read ledger %q: %w", id, err)
	}
	return nil
}

// Request reads a request.
func (s *Store) Request(ctx context.Context, tenant, requestID string) (*Request, error) {
	var r Request
	if err := s.find(ctx, RequestKey(tenant, requestID), &r); err != nil {
		return nil, err
	}
	r.Tenant, r.RequestID = tenant, requestID
	return &r, nil
}

// Outcome reads a request's outcome; ErrNotFound while undecided.
func (s *Store) Outcome(ctx context.Context, tenant, requestID string) (*Outcome, error) {
	var o Outcome
	if err := s.find(ctx, OutcomeKey(tenant, requestID), &o); err != nil {
		return nil, err
	}
	o.Tenant, o.RequestID = tenant, requestID
	return &o, nil
}

// Message reads a message by its Twilio SID.
func (s *Store) Message(ctx context.Context, tenant, sid string) (*Message, error) {
	var m Message
	if err := s.find(ctx, MessageKey(tenant, sid), &m); err != nil {
		return nil, err
	}
	m.Tenant, m.SID = tenant, sid
	return &m, nil
}

// StartAttempt records that another call is about to be made.
func (s *Store) StartAttempt(ctx context.Context, tenant, requestID string, attempts int, firstCall, leaseUntil time.Time) error {
	_, err := s.c.UpdateOne(ctx, bson.M{"_id": RequestKey(tenant, requestID)}, bson.M{"$set": bson.M{
		"attempts": attempts, "first_call_at": firstCall, "lease_until": leaseUntil,
	}})
	if err != nil {
		return fmt.Errorf("record attempt %d of %q: %w", attempts, requestID, err)
	}
	return nil
}

// Decide inserts an outcome (and, when sent, its message) unless the
// request is decided already; it returns the outcome that stands and
// whether it is the one given.
func (s *Store) Decide(ctx context.Context, o *Outcome, m *Message) (*Outcome, bool, error) {
	o.ID = OutcomeKey(o.Tenant, o.RequestID)
	docs := []any{o}
	if m != nil {
		m.ID = MessageKey(m.Tenant, m.SID)
		docs = append(docs, m)
	}
	errs, err := s.batch.insert(ctx, docs...)
	if err != nil {
		return nil, false, fmt.Errorf("record outcome of %q: %w", o.RequestID, err)
	}
	for _, e := range errs {
		if e != nil && !errors.Is(e, errDuplicate) {
			return nil, false, fmt.Errorf("record outcome of %q: %w", o.RequestID, e)
		}
	}
	outcomeDup := errors.Is(errs[0], errDuplicate)
	if !outcomeDup && (m == nil || errs[1] == nil) {
		return o, true, nil
	}
	if !outcomeDup {
		// The outcome went in, the message did not: its SID is taken.
		owner, gerr := s.Message(ctx, m.Tenant, m.SID)
		if gerr != nil {
			return nil, false, gerr
		}
		if owner.RequestID == o.RequestID {
			return o, true, nil
		}
		if _, derr := s.c.DeleteOne(ctx, bson.M{"_id": o.ID, "twilio_sid": m.SID}); derr != nil {
			return nil, false, fmt.Errorf("undo outcome of %q: %w", o.RequestID, derr)
		}
		return nil, false, fmt.Errorf("record outcome of %q: twilio sid %s already belongs to request %q", o.RequestID, m.SID, owner.RequestID)
	}
	got, gerr := s.Outcome(ctx, o.Tenant, o.RequestID)
	if gerr != nil {
		return nil, false, gerr
	}
	if m != nil && got.TwilioSID == m.SID {
		// This outcome went in before; make sure its message did too.
		if _, err := s.c.InsertOne(ctx, m); err != nil && !mongodb.IsDuplicateKey(err) {
			return nil, false, fmt.Errorf("record message %s: %w", m.SID, err)
		}
	}
	return got, false, nil
}

// UpdateMessage reads the message by SID, lets fn change it, and writes it
// back unless another writer changed it first (then it retries). fn returns
// false to leave the message unchanged.
func (s *Store) UpdateMessage(ctx context.Context, tenant, sid string, fn func(*Message) bool) (*Message, bool, error) {
	mu := s.lock(MessageKey(tenant, sid))
	mu.Lock()
	defer mu.Unlock()
	for try := 0; try < 5; try++ {
		m, err := s.Message(ctx, tenant, sid)
		if err != nil {
			return nil, false, err
		}
		if !fn(m) {
			return m, false, nil
		}
		prev := m.Version
		m.Version++
		res, err := s.c.ReplaceOne(ctx, bson.M{"_id": m.ID, "version": prev}, m)
		if err != nil {
			return nil, false, fmt.Errorf("update message %s: %w", sid, err)
		}
		if res.MatchedCount == 1 {
			return m, true, nil
		}
	}
	return nil, false, fmt.Errorf("update message %s: %w", sid, ErrConflict)
}

// AddResend links a request to a later request that resends it.
func (s *Store) AddResend(ctx context.Context, tenant, requestID, resendID string) error {
	_, err := s.c.UpdateOne(ctx, bson.M{"_id": OutcomeKey(tenant, requestID)}, bson.M{"$addToSet": bson.M{"resent_as": resendID}})
	if err != nil {
		return fmt.Errorf("link resend of %q: %w", requestID, err)
	}
	return nil
}
