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
//     belongs to and its delivery reports; the status derived from them
//     only ever moves forward. Inserted with the sent outcome (one round
//     trip); each status callback adds its report in one write by _id.
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
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

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
	// MediaSIDs are the media the message carries at Twilio (Conversations
	// path: uploaded to the Media Content Service, ME…).
	MediaSIDs []string `bson:"media_sids,omitempty"`
}

// Change is one status report.
type Change struct {
	Status    string    `bson:"status"`
	ErrorCode int32     `bson:"error_code,omitempty"`
	At        time.Time `bson:"at"`
}

// Message is a message Twilio accepted, with its delivery reports. The
// tenant and SID are in its _id; the conversation is in the Request.
//
// What is stored only grows: the status Twilio gave on creation and the set
// of reports ($addToSet). The current status, its error code and the
// timeline shown are derived when the message is read (Settle), so a report
// is one commutative write by _id that needs no version check and cannot
// move the status backwards, whatever order reports (or replicas) apply in.
type Message struct {
	ID        string `bson:"_id"`
	Tenant    string `bson:"-"`
	SID       string `bson:"-"`
	RequestID string `bson:"request_id"`
	SessionID string `bson:"session_id,omitempty"`
	ResendOf  string `bson:"resend_of,omitempty"`
	// Status is stored as Twilio's answer on creation; read back it is the
	// current status (Settle).
	Status string `bson:"status"`
	// ErrorCode is the code of the report that set a failing status
	// (derived, not stored).
	ErrorCode int32     `bson:"-"`
	Timeline  []Change  `bson:"timeline,omitempty"`
	UpdatedAt time.Time `bson:"updated_at,omitempty"`
}

// Settle derives the current status and error code from the stored
// reports: a report moves the status only forward (by Rank), and the
// timeline keeps the first report of each status and error code (a
// repeated report is stored again only if its time differs, and shown
// once).
func (m *Message) Settle() {
	seen := make(map[Change]bool, len(m.Timeline))
	tl := m.Timeline[:0:0]
	for _, c := range m.Timeline {
		k := Change{Status: c.Status, ErrorCode: c.ErrorCode}
		if seen[k] {
			continue
		}
		seen[k] = true
		tl = append(tl, c)
		if Rank(c.Status) > Rank(m.Status) {
			m.Status = c.Status
			if c.ErrorCode != 0 {
				m.ErrorCode = c.ErrorCode
			}
		}
	}
	m.Timeline = tl
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
	// locks serialise reports of one message within the process. MongoDB
	// applies each update atomically; FerretDB reads and rewrites the
	// document, so there the lock (with the consumer's per-SID order) is
	// what holds (one outbound-sender per FerretDB database).
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
	m.Settle()
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
		// Undo the outcome just inserted, unless another delivery of the
		// request replaced it (checked here, deleted by _id alone).
		if cur, cerr := s.Outcome(ctx, o.Tenant, o.RequestID); cerr == nil && cur.TwilioSID == m.SID {
			if _, derr := s.c.DeleteOne(ctx, bson.M{"_id": o.ID}); derr != nil {
				return nil, false, fmt.Errorf("undo outcome of %q: %w", o.RequestID, derr)
			}
		} else if cerr != nil && !errors.Is(cerr, ErrNotFound) {
			return nil, false, cerr
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

// Report adds a status report to a message in one write by _id
// ($addToSet: a repeat of the same report changes nothing) and returns the
// message as it was before (settled), so the caller can tell whether the
// report moved the status. ErrNotFound when the message is not in the
// ledger (yet).
func (s *Store) Report(ctx context.Context, tenant, sid string, c Change, now time.Time) (*Message, error) {
	id := MessageKey(tenant, sid)
	mu := s.lock(id)
	mu.Lock()
	defer mu.Unlock()
	var m Message
	err := s.c.FindOneAndUpdate(ctx, bson.M{"_id": id},
		bson.M{"$addToSet": bson.M{"timeline": c}, "$max": bson.M{"updated_at": now}},
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&m)
	if mongodb.IsNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("record status %s of %s: %w", c.Status, sid, err)
	}
	m.Tenant, m.SID = tenant, sid
	m.Settle()
	return &m, nil
}

// AddResend links a request to a later request that resends it.
func (s *Store) AddResend(ctx context.Context, tenant, requestID, resendID string) error {
	_, err := s.c.UpdateOne(ctx, bson.M{"_id": OutcomeKey(tenant, requestID)}, bson.M{"$addToSet": bson.M{"resent_as": resendID}})
	if err != nil {
		return fmt.Errorf("link resend of %q: %w", requestID, err)
	}
	return nil
}
