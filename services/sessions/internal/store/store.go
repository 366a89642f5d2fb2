// Package store keeps sessions, their transcripts and the pointer from a
// customer conversation to its active session. In MongoDB every read and
// write names one document by _id, and nothing else (FerretDB, the
// one-machine default, serves only a filter that is exactly {_id: …} from
// an index; any other filter, even _id plus a condition, reads the whole
// collection): "<tenant>/<session>" for sessions, "<tenant>/<conversation
// key>" for active pointers, "<tenant>/<session>/<message id>" for the
// outbound messages whose delivery status changes. Conditions are checked
// in Go between the read and the write; the sessions service handles one
// session's events in order, which keeps that safe. Transcripts are read
// from the TRANSCRIPT stream (transcript.go) and each agent's active
// sessions from a KV bucket (agents.go).
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// Session states.
const (
	StateActive = "active"
	StateEnded  = "ended"
)

// Conversation is how to reach the customer (mirrors messaging.v1.ConversationRef).
type Conversation struct {
	Channel             string `bson:"channel"` // sms | whatsapp
	Path                string `bson:"path"`    // conversations | messaging
	Customer            string `bson:"customer"`
	Business            string `bson:"business"`
	ChatServiceSID      string `bson:"chat_service_sid,omitempty"`
	ConversationSID     string `bson:"conversation_sid,omitempty"`
	MessagingServiceSID string `bson:"messaging_service_sid,omitempty"`
}

// Session is one chat session.
type Session struct {
	Key             string       `bson:"_id"`
	Tenant          string       `bson:"tenant"`
	ID              string       `bson:"session_id"`
	ServiceID       string       `bson:"service_id"`
	ServiceName     string       `bson:"service_name,omitempty"`
	EntryID         string       `bson:"entry_id"`
	Conversation    Conversation `bson:"conversation"`
	ConversationKey string       `bson:"conversation_key"`
	CustomerName    string       `bson:"customer_name,omitempty"`
	FirstMessageSID string       `bson:"first_message_sid"`
	State           string       `bson:"state"`
	AgentID         string       `bson:"agent_id,omitempty"`
	TaskID          string       `bson:"task_id,omitempty"`
	Outcome         string       `bson:"outcome,omitempty"`
	EndReason       string       `bson:"end_reason,omitempty"`
	StartedAt       time.Time    `bson:"started_at"`
	AcceptedAt      time.Time    `bson:"accepted_at,omitempty"`
	EndedAt         time.Time    `bson:"ended_at,omitempty"`
	// Parked: the agent set the chat aside (distribution's TaskParked)
	// until they resume it; no replies meanwhile.
	Parked bool `bson:"parked,omitempty"`
	// Trace is the W3C traceparent of the customer message that opened
	// the session: agents' replies continue that trace.
	Trace string `bson:"trace,omitempty"`
	// Parameters: what the workflow collected before it queued the
	// session's task (distribution's TaskOffered), for the agent.
	Parameters map[string]string `bson:"parameters,omitempty"`
}

// Media is an attachment: a Programmable Messaging one by its URL (a
// customer's MediaUrl<n>, an agent's attachment), a customer's on the
// Conversations path by its Media Content Service SID (ME…) and the Chat
// Service (IS…) it belongs to, with no URL. Entries written before the SID
// was kept have neither and still read.
type Media struct {
	URL         string `bson:"url" json:"url"`
	ContentType string `bson:"content_type,omitempty" json:"content_type,omitempty"`
	SID         string `bson:"sid,omitempty" json:"sid,omitempty"`
	ServiceSID  string `bson:"service_sid,omitempty" json:"service_sid,omitempty"`
	Filename    string `bson:"filename,omitempty" json:"filename,omitempty"`
	Size        int64  `bson:"size,omitempty" json:"size,omitempty"`
}

// Message is one transcript entry.
type Message struct {
	Key          string    `bson:"_id"`
	Tenant       string    `bson:"tenant"`
	SessionKey   string    `bson:"session_key"`
	ID           string    `bson:"message_id"`
	Direction    string    `bson:"direction"` // inbound | outbound
	Sender       string    `bson:"sender"`    // customer | agent | workflow
	AgentID      string    `bson:"agent_id,omitempty"`
	Body         string    `bson:"body"`
	Media        []Media   `bson:"media,omitempty"`
	At           time.Time `bson:"at"`
	Status       string    `bson:"status,omitempty"`
	StatusRank   int       `bson:"status_rank,omitempty"`
	ErrorCode    int32     `bson:"error_code,omitempty"`
	ErrorMessage string    `bson:"error_message,omitempty"`
	TwilioSID    string    `bson:"twilio_sid,omitempty"`
	// Reason names why an outbound message failed (opted_out,
	// whatsapp_window_closed, twilio, …); empty otherwise.
	Reason string `bson:"reason,omitempty"`
	// ResendOf is the failed message this one resends.
	ResendOf string `bson:"resend_of,omitempty"`
	// ContentSID and ContentVariables (a JSON object) name the WhatsApp
	// template an outbound message sent, so a resend sends it again.
	ContentSID       string `bson:"content_sid,omitempty" json:",omitempty"`
	ContentVariables string `bson:"content_variables,omitempty" json:",omitempty"`
	// Visibility limits who reads an internal entry (direction
	// "internal": notes, whispers, supervisor actions): empty for the
	// agent and supervisors, VisibleToSupervisors for the audit trail.
	Visibility string `bson:"visibility,omitempty"`
}

// VisibleToSupervisors marks the transcript's audit trail.
const VisibleToSupervisors = "supervisors"

// Store is the sessions database.
type Store struct {
	sessions *mongo.Collection
	active   *mongo.Collection
	messages *mongo.Collection
	inbound  *mongo.Collection
	// inboundDone marks inbound messages fully processed: an insert, not
	// an update of the claim (FerretDB's updates slow down as a collection
	// grows; inserts and finds by _id do not).
	inboundDone *mongo.Collection
	// attachments: files agents attached to replies (attachments.go).
	attachments *mongo.Collection
	// Group-committed inserts: inbound claims and done markers, the
	// conversations' active pointers and new sessions. Concurrent inserts
	// into one collection share a round trip and, on FerretDB, one SQLite
	// transaction (one fsync of the database's file, whose commits are
	// serialized): at 200 new sessions/s the pointers and sessions
	// inserted one by one were a third of the sessions database's commits.
	claims, dones, pointers, opened *mongodb.GroupWriter
	// ranks: the delivery status of the outbound messages this replica
	// changed last (statuses.go).
	ranks *statusRanks

	log     *transcriptLog
	agents  *agentIndex
	history *historyIndex
	states  *sessionStates
}

// New opens the store: the sessions database, the TRANSCRIPT stream (which
// the caller has created) and the KV buckets (created here with replicas
// when missing).
func New(ctx context.Context, db *mongo.Database, js jetstream.JetStream, replicas int) (*Store, error) {
	buckets := []struct {
		name, description string
		kv                jetstream.KeyValue
	}{
		{name: subjects.BucketAgentSessions, description: "each agent's active sessions: tenant.agent -> session ids (sessions)"},
		{name: subjects.BucketCustomerHistory, description: "each customer's latest sessions: tenant.customer(hex) -> sessions (sessions)"},
		{name: subjects.BucketSessionStates, description: "active sessions as the inbound path needs them: tenant.session -> JSON (sessions)"},
	}
	for i := range buckets {
		kv, err := kvcas.Bind(ctx, js, jetstream.KeyValueConfig{
			Bucket: buckets[i].name, Description: buckets[i].description, Replicas: max(replicas, 1), Storage: jetstream.FileStorage,
		})
		if err != nil {
			return nil, err
		}
		buckets[i].kv = kv
	}
	kv, hist, states := buckets[0].kv, buckets[1].kv, buckets[2].kv
	st := &Store{
		sessions: db.Collection("sessions"), active: db.Collection("active"),
		messages: db.Collection("messages"), inbound: db.Collection("inbound"),
		inboundDone: db.Collection("inbound_done"), attachments: db.Collection("attachments"),
		log: &transcriptLog{js: js}, agents: &agentIndex{kv: kv, js: js}, history: &historyIndex{kv: hist, js: js},
		states: &sessionStates{kv: states, js: js, log: slog.Default(), byKey: map[string]*Session{}},
	}
	st.claims = mongodb.NewGroupWriter(st.inbound, "inbound claim")
	st.dones = mongodb.NewGroupWriter(st.inboundDone, "inbound done marker")
	st.pointers = mongodb.NewGroupWriter(st.active, "active session pointer")
	st.opened = mongodb.NewGroupWriter(st.sessions, "new session")
	st.ranks = newStatusRanks(100_000)
	return st, nil
}

// WatchStates keeps this replica's view of the active sessions' state
// current until ctx ends (states.go); without it every session is read
// from the collection.
func (s *Store) WatchStates(ctx context.Context, log *slog.Logger) error {
	s.states.log = log
	return s.states.watch(ctx)
}

// WatchedSession returns an active session as this replica last saw it in
// the state bucket, without a read; nil when the bucket does not hold it
// (ended, opened before the bucket existed, or not seen yet), and the
// caller reads the collection.
func (s *Store) WatchedSession(tenant, sessionID string) *Session {
	return s.states.get(tenant, sessionID)
}

// Close stops the group-commit writers; inserts still waiting fail (their
// messages are redelivered).
func (s *Store) Close() {
	for _, w := range []*mongodb.GroupWriter{s.claims, s.dones, s.pointers, s.opened} {
		w.Close()
	}
}

// SessionKey is the _id of a session.
func SessionKey(tenant, sessionID string) string { return tenant + "/" + sessionID }

func messageKey(tenant, sessionID, messageID string) string {
	return tenant + "/" + sessionID + "/" + messageID
}

// ActiveSession returns the id of the active session of a conversation, or "".
func (s *Store) ActiveSession(ctx context.Context, tenant, convKey string) (string, error) {
	var doc struct {
		SessionID string `bson:"session_id"`
	}
	err := s.active.FindOne(ctx, bson.M{"_id": tenant + "/" + convKey}).Decode(&doc)
	if mongodb.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find active session: %w", err)
	}
	return doc.SessionID, nil
}

// ClaimActive makes sessionID the active session of a conversation unless
// one already is; it returns the active session id either way, never "".
// The pointer that made the insert a duplicate can be released (its
// session ended) before it is read: the claim is then tried again. (It
// once returned "" there, and the caller opened a session with an empty
// id that took the conversation's next messages: a soak at 50 messages/s
// with agents ending chats lost two of them.)
func (s *Store) ClaimActive(ctx context.Context, tenant, convKey, sessionID string) (string, error) {
	if sessionID == "" {
		return "", errors.New("claim active session: empty session id")
	}
	for attempt := 0; attempt < 5; attempt++ {
		err := s.pointers.Insert(ctx, bson.M{"_id": tenant + "/" + convKey, "session_id": sessionID, "at": time.Now()})
		if err == nil {
			return sessionID, nil
		}
		if !errors.Is(err, mongodb.ErrDuplicate) {
			return "", fmt.Errorf("claim active session: %w", err)
		}
		current, err := s.ActiveSession(ctx, tenant, convKey)
		if err != nil || current != "" {
			return current, err
		}
	}
	return "", fmt.Errorf("claim active session of %s: released and claimed again %d times while claiming", convKey, 5)
}

// ReleaseActive removes the conversation's pointer if it still names
// sessionID. The delete names the session too: one released and claimed
// again by the conversation's next session between the read and the
// delete stays (atomic on MongoDB; on FerretDB the window is the delete's
// own).
func (s *Store) ReleaseActive(ctx context.Context, tenant, convKey, sessionID string) error {
	current, err := s.ActiveSession(ctx, tenant, convKey)
	if err != nil || current != sessionID {
		return err
	}
	if _, err := s.active.DeleteOne(ctx, bson.M{"_id": tenant + "/" + convKey, "session_id": sessionID}); err != nil {
		return fmt.Errorf("release active session: %w", err)
	}
	return nil
}

// CreateSession inserts a session; an existing one is left as it is.
func (s *Store) CreateSession(ctx context.Context, sess *Session) error {
	_, err := s.OpenSession(ctx, sess)
	return err
}

// OpenSession inserts a session and returns the session as stored: this
// one, or the one another delivery inserted first with the same id (read
// only then). The state bucket's key is created alongside the insert
// rather than after it: a key whose insert failed names a session no one
// has been told of, and the retry that inserts it finds the key there.
func (s *Store) OpenSession(ctx context.Context, sess *Session) (*Session, error) {
	if sess.ID == "" || sess.Tenant == "" {
		return nil, errors.New("create session: empty tenant or session id")
	}
	sess.Key = SessionKey(sess.Tenant, sess.ID)
	sess.StartedAt = sess.StartedAt.Truncate(time.Millisecond) // as stored
	stated := make(chan error, 1)
	view := *sess
	go func() { stated <- s.states.open(ctx, &view) }()
	err := s.opened.Insert(ctx, sess)
	serr := <-stated
	if errors.Is(err, mongodb.ErrDuplicate) {
		won, err := s.record(ctx, sess.Tenant, sess.ID)
		if err != nil {
			return nil, err
		}
		if won.State != StateActive {
			// Ended already: the key just created must not outlive it.
			return won, s.states.end(ctx, sess.Tenant, sess.ID)
		}
		return s.Session(ctx, sess.Tenant, sess.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	if serr != nil {
		return nil, serr
	}
	return sess, nil
}

// Session loads a session: an active one from the state bucket's stream
// leader (states.go), any other from the collection.
func (s *Store) Session(ctx context.Context, tenant, sessionID string) (*Session, error) {
	held, how, err := s.states.read(ctx, tenant, sessionID)
	if err != nil {
		return nil, err
	}
	if how == heldActive || how == heldEnded {
		return held, nil
	}
	sess, err := s.record(ctx, tenant, sessionID)
	if err != nil {
		return nil, err
	}
	if how == heldLegacy && sess.State == StateActive {
		sess.AgentID, sess.TaskID, sess.Parked = held.AgentID, held.TaskID, held.Parked
	}
	return sess, nil
}

// record reads a session's document.
func (s *Store) record(ctx context.Context, tenant, sessionID string) (*Session, error) {
	var sess Session
	err := s.sessions.FindOne(ctx, bson.M{"_id": SessionKey(tenant, sessionID)}).Decode(&sess)
	if mongodb.IsNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load session %s: %w", sessionID, err)
	}
	return &sess, nil
}

// updateRecord changes the document of a session the bucket holds no
// whole state of (legacy keys and none: states.go).
func (s *Store) updateRecord(ctx context.Context, tenant, sessionID, what string, update bson.M) error {
	if _, err := s.sessions.UpdateOne(ctx, bson.M{"_id": SessionKey(tenant, sessionID)}, update); err != nil {
		return fmt.Errorf("%s session %s: %w", what, sessionID, err)
	}
	return nil
}

// Assign records the agent who accepted the session's task (an ended
// session is left as it is) and adds it to the agent's active sessions.
func (s *Store) Assign(ctx context.Context, tenant, sessionID, agentID, taskID string, at time.Time) error {
	at = at.Truncate(time.Millisecond).UTC()
	_, how, err := s.states.change(ctx, tenant, sessionID, func(st *Session) {
		st.AgentID, st.TaskID, st.AcceptedAt, st.Parked = agentID, taskID, at, false
	})
	switch {
	case err != nil:
		return err
	case how == heldEnded:
		return nil
	case how != heldActive:
		sess, err := s.record(ctx, tenant, sessionID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if sess.State != StateActive {
			return nil
		}
		if sess.AgentID != agentID || sess.TaskID != taskID || sess.Parked {
			err := s.updateRecord(ctx, tenant, sessionID, "assign",
				bson.M{"$set": bson.M{"agent_id": agentID, "task_id": taskID, "accepted_at": at, "parked": false}})
			if err != nil {
				return err
			}
		}
	}
	return s.agents.add(ctx, tenant, agentID, sessionID)
}

// SetParked records that the task's chat was parked or resumed; a session
// that moved on to another task (or none) is left alone.
func (s *Store) SetParked(ctx context.Context, tenant, sessionID, taskID string, parked bool) error {
	_, how, err := s.states.change(ctx, tenant, sessionID, func(st *Session) {
		if st.TaskID == taskID {
			st.Parked = parked
		}
	})
	if err != nil || how == heldActive || how == heldEnded {
		return err
	}
	sess, err := s.record(ctx, tenant, sessionID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil || sess.State != StateActive || sess.TaskID != taskID || sess.Parked == parked {
		return err
	}
	return s.updateRecord(ctx, tenant, sessionID, "park", bson.M{"$set": bson.M{"parked": parked}})
}

// Unassign takes a transferred session from agentID: off their list, and
// no longer theirs (the agent who accepts it next is assigned as usual).
func (s *Store) Unassign(ctx context.Context, tenant, sessionID, agentID string) error {
	_, how, err := s.states.change(ctx, tenant, sessionID, func(st *Session) {
		if st.AgentID == agentID {
			st.AgentID = ""
		}
	})
	if err != nil {
		return err
	}
	if how != heldActive && how != heldEnded {
		sess, err := s.record(ctx, tenant, sessionID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil && sess.State == StateActive && sess.AgentID == agentID {
			if err := s.updateRecord(ctx, tenant, sessionID, "unassign", bson.M{"$set": bson.M{"agent_id": ""}}); err != nil {
				return err
			}
		}
	}
	return s.agents.remove(ctx, tenant, agentID, sessionID)
}

// End marks an active session ended; it reports whether this call ended
// it. The session stays on its agent's list until its end has been
// announced (ReleaseAgent): a session listed but ended is an end a failure
// interrupted, and the agent's next snapshot finishes it.
//
// The key is marked ended first (no change applies after that), the
// document is written from it, then the key is deleted; a retry after a
// failure part way finds the mark and finishes.
func (s *Store) End(ctx context.Context, tenant, sessionID, outcome, reason string, at time.Time) (bool, error) {
	sess, marked, how, err := s.states.markEnded(ctx, tenant, sessionID, outcome, reason, at)
	if err != nil {
		return false, err
	}
	if how == heldEnded {
		err := s.updateRecord(ctx, tenant, sessionID, "end", bson.M{"$set": bson.M{
			"state": StateEnded, "outcome": sess.Outcome, "end_reason": sess.EndReason, "ended_at": sess.EndedAt,
			"agent_id": sess.AgentID, "task_id": sess.TaskID, "accepted_at": sess.AcceptedAt, "parked": sess.Parked,
			"service_name": sess.ServiceName, "parameters": sess.Parameters,
			"conversation": sess.Conversation, "customer_name": sess.CustomerName,
		}})
		if err != nil {
			return marked, err
		}
		return marked, s.states.end(ctx, tenant, sessionID)
	}
	rec, err := s.record(ctx, tenant, sessionID)
	if err != nil {
		return false, err
	}
	ended := false
	if rec.State == StateActive {
		set := bson.M{"state": StateEnded, "outcome": outcome, "end_reason": reason, "ended_at": at}
		if how == heldLegacy {
			set["agent_id"], set["task_id"], set["parked"] = sess.AgentID, sess.TaskID, sess.Parked
		}
		if err := s.updateRecord(ctx, tenant, sessionID, "end", bson.M{"$set": set}); err != nil {
			return false, err
		}
		ended = true
	}
	// Whether or not this call ended it: a retry after a failure here
	// still takes the session out of the state bucket.
	if err := s.states.end(ctx, tenant, sessionID); err != nil {
		return ended, err
	}
	return ended, nil
}

// ReleaseAgent takes an ended session off its agent's active list, once
// its end has been announced, and keeps it among their recently ended
// chats until they dismiss it (DismissEnded).
func (s *Store) ReleaseAgent(ctx context.Context, tenant, agentID, sessionID string) error {
	if agentID == "" {
		return nil
	}
	return s.agents.ended(ctx, tenant, agentID, sessionID, time.Now())
}

// DismissEnded forgets one of the agent's recently ended chats (the agent
// closed it on their desk).
func (s *Store) DismissEnded(ctx context.Context, tenant, agentID, sessionID string) error {
	return s.agents.dismiss(ctx, tenant, agentID, sessionID)
}

// AgentDesk is what an agent's reconnecting console shows of their chats.
type AgentDesk struct {
	// Active are the agent's chats, oldest first.
	Active []*Session
	// Unannounced ended without their end being announced (a failure
	// part way through End's caller), to be finished.
	Unannounced []*Session
	// Ended are the agent's recently ended chats they have not dismissed,
	// most recent first: a console keeps showing them, so a reconnect
	// does too (with every message that arrived before the end, even one
	// whose frame the agent missed).
	Ended []*Session
}

// AgentSessions lists the sessions on an agent's lists (on reconnect, not
// per message): one KV get and a read by _id per session.
func (s *Store) AgentSessions(ctx context.Context, tenant, agentID string) (AgentDesk, error) {
	l, err := s.agents.get(ctx, tenant, agentID)
	if err != nil {
		return AgentDesk{}, err
	}
	desk := AgentDesk{Active: make([]*Session, 0, len(l.Active))}
	err = s.eachSession(ctx, tenant, l.Active, func(sess *Session) {
		switch {
		case sess.AgentID != agentID:
		case sess.State == StateActive:
			desk.Active = append(desk.Active, sess)
		default:
			desk.Unannounced = append(desk.Unannounced, sess)
		}
	})
	if err != nil {
		return AgentDesk{}, err
	}
	err = s.eachSession(ctx, tenant, endedIDs(l.Ended), func(sess *Session) {
		if sess.AgentID == agentID && sess.State != StateActive {
			desk.Ended = append(desk.Ended, sess)
		}
	})
	if err != nil {
		return AgentDesk{}, err
	}
	sort.SliceStable(desk.Active, func(i, j int) bool { return desk.Active[i].StartedAt.Before(desk.Active[j].StartedAt) })
	return desk, nil
}

// eachSession reads the sessions by _id, in order, and hands each to f; a
// session gone (erased, purged by retention) is skipped.
func (s *Store) eachSession(ctx context.Context, tenant string, ids []string, f func(*Session)) error {
	for _, id := range ids {
		sess, err := s.Session(ctx, tenant, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		f(sess)
	}
	return nil
}

// AddMessage appends a message to the session's transcript; it reports
// false if it was there already. An outbound message's delivery statuses
// are appended after it (UpdateStatus); the transcript is its only record.
func (s *Store) AddMessage(ctx context.Context, sessionID string, m *Message) (bool, error) {
	m.Key = messageKey(m.Tenant, sessionID, m.ID)
	m.SessionKey = SessionKey(m.Tenant, sessionID)
	m.StatusRank = StatusRank(m.Status)
	appended, err := s.log.append(ctx, m.Tenant, sessionID, m.Key, &entry{Kind: "m", Message: m})
	if err == nil && appended && m.Direction == "outbound" {
		s.ranks.put(m.Key, m.StatusRank)
	}
	return appended, err
}

// Transcript returns a session's messages in order (on accept and reconnect).
func (s *Store) Transcript(ctx context.Context, tenant, sessionID string) ([]*Message, error) {
	return s.log.read(ctx, tenant, sessionID)
}

// FirstCustomerMessage is the body of the session's first customer
// message (for an offer's preview); "" when it has none yet.
func (s *Store) FirstCustomerMessage(ctx context.Context, tenant, sessionID string) (string, error) {
	return s.log.firstCustomerMessage(ctx, tenant, sessionID)
}

// statusOrder ranks delivery statuses; a status never replaces a later one.
var statusOrder = map[string]int{
	"pending": 1, "queued": 2, "accepted": 2, "sending": 3, "sent": 4,
	"delivered": 5, "undelivered": 6, "failed": 6, "read": 7,
}

// StatusRank is the position of a delivery status in its life.
func StatusRank(status string) int { return statusOrder[status] }

// Message reads one transcript entry, its delivery status folded in (for
// a resend, not a hot path: it reads the session's transcript).
func (s *Store) Message(ctx context.Context, tenant, sessionID, messageID string) (*Message, error) {
	msgs, err := s.Transcript(ctx, tenant, sessionID)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.ID == messageID {
			return m, nil
		}
	}
	return nil, ErrNotFound
}

// UpdateStatus appends an outbound message's delivery status to its
// transcript when it moves the message forward, and reports whether it was
// appended. Whether it moves it forward is answered by this replica's
// memory of the message's last status (statuses.go); a message it does not
// remember (another replica appended it, or this one restarted) gets the
// status appended without a read: the transcript folds statuses forward
// only, so a late, lower one changes nothing there, and at worst the agent
// sees it until the next status or a reload. No database read or write, and
// no transcript read (a read per status is a consumer on TRANSCRIPT each
// time, and with several replicas most statuses would need one).
func (s *Store) UpdateStatus(ctx context.Context, tenant, sessionID, messageID, status string, errCode int32, errMsg, twilioSID, reason string) (bool, error) {
	key := messageKey(tenant, sessionID, messageID)
	if cur, ok := s.ranks.get(key); ok && StatusRank(status) <= cur {
		return false, nil
	}
	st := &statusChange{MessageID: messageID, Status: status, ErrorCode: errCode, ErrorMessage: errMsg, TwilioSID: twilioSID, Reason: reason}
	appended, err := s.log.append(ctx, tenant, sessionID, key+"/"+status, &entry{Kind: "s", Status: st})
	if err != nil {
		return false, err
	}
	s.ranks.put(key, StatusRank(status))
	return appended, nil
}

// SetOffered records what an offer of the session's task says about it:
// the display name of its service and the parameters the workflow
// collected (a task without parameters leaves earlier ones as they are).
// Once the session is assigned it only fills in what is missing: a late
// or redelivered offer event does not rename the chat an agent has.
func (s *Store) SetOffered(ctx context.Context, tenant, sessionID, serviceName string, params map[string]string) error {
	offered := func(st *Session) (set bson.M) {
		set = bson.M{}
		if serviceName != "" && serviceName != st.ServiceName && (st.AgentID == "" || st.ServiceName == "") {
			st.ServiceName, set["service_name"] = serviceName, serviceName
		}
		if len(params) > 0 && !maps.Equal(params, st.Parameters) && (st.AgentID == "" || len(st.Parameters) == 0) {
			st.Parameters, set["parameters"] = maps.Clone(params), params
		}
		return set
	}
	_, how, err := s.states.change(ctx, tenant, sessionID, func(st *Session) { offered(st) })
	if err != nil || how == heldActive || how == heldEnded {
		return err
	}
	sess, err := s.record(ctx, tenant, sessionID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil || sess.AgentID != "" || sess.State != StateActive {
		return err
	}
	if set := offered(sess); len(set) > 0 {
		return s.updateRecord(ctx, tenant, sessionID, "set offered", bson.M{"$set": set})
	}
	return nil
}

// Inbound remembers which session an inbound Twilio message went to, so a
// redelivery long after JetStream's dedupe window is recognised.
type Inbound struct {
	SessionID string `bson:"session_id"`
	Done      bool   `bson:"done"`
}

// InboundSeen returns the record of an inbound message, or nil. A message
// never seen (nearly all) costs one read: the "done" marker is looked up
// only for one that was claimed.
func (s *Store) InboundSeen(ctx context.Context, tenant, messageSID string) (*Inbound, error) {
	var in Inbound
	err := s.inbound.FindOne(ctx, bson.M{"_id": tenant + "/" + messageSID}).Decode(&in)
	if mongodb.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find inbound %s: %w", messageSID, err)
	}
	err = s.inboundDone.FindOne(ctx, bson.M{"_id": tenant + "/" + messageSID}).Err()
	switch {
	case err == nil:
		in.Done = true
	case !mongodb.IsNotFound(err):
		return nil, fmt.Errorf("find inbound %s done: %w", messageSID, err)
	}
	return &in, nil
}

// ClaimInbound records that a message belongs to sessionID; if another
// delivery recorded it first, that record wins and is returned.
func (s *Store) ClaimInbound(ctx context.Context, tenant, messageSID, sessionID string) (*Inbound, error) {
	err := s.claims.Insert(ctx, bson.M{"_id": tenant + "/" + messageSID, "session_id": sessionID, "done": false, "at": time.Now()})
	if errors.Is(err, mongodb.ErrDuplicate) {
		return s.InboundSeen(ctx, tenant, messageSID)
	}
	if err != nil {
		return nil, fmt.Errorf("claim inbound %s: %w", messageSID, err)
	}
	return &Inbound{SessionID: sessionID}, nil
}

// MoveInbound moves a message's claim from one session to another (the
// first ended before the message reached its transcript); if the claim no
// longer names from, what it names wins and is returned.
//
// Every step names one document by _id alone. A conditional update (the
// claim's _id and session_id) is atomic on MongoDB but a scan of the whole
// claims collection on FerretDB, which pushes down a filter on _id only:
// on a soak it grew to seconds per move, and held the database's write
// gate meanwhile. Instead, the first mover of a claim off from inserts a
// marker keyed by both (an insert is atomic on either engine) naming its
// target, and every later mover off from takes that target: movers agree.
// A mover that read the claim just before another moved it on twice
// (from, then its target, both ended) sets it back one step; the message
// then finds that session ended, and its next move follows the second
// marker to where it belongs.
func (s *Store) MoveInbound(ctx context.Context, tenant, messageSID, from, to string) (*Inbound, error) {
	in, err := s.InboundSeen(ctx, tenant, messageSID)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, fmt.Errorf("move inbound %s: %w", messageSID, ErrNotFound)
	}
	if in.SessionID != from {
		return in, nil
	}
	marker := tenant + "/" + messageSID + "/moved-from/" + from
	err = s.claims.Insert(ctx, bson.M{"_id": marker, "moved_to": to, "at": time.Now()})
	if errors.Is(err, mongodb.ErrDuplicate) {
		var m struct {
			To string `bson:"moved_to"`
		}
		if err := s.inbound.FindOne(ctx, bson.M{"_id": marker}).Decode(&m); err != nil {
			return nil, fmt.Errorf("move inbound %s: read who moved it first: %w", messageSID, err)
		}
		to = m.To
	} else if err != nil {
		return nil, fmt.Errorf("move inbound %s: %w", messageSID, err)
	}
	if _, err := s.inbound.UpdateOne(ctx, bson.M{"_id": tenant + "/" + messageSID}, bson.M{"$set": bson.M{"session_id": to}}); err != nil {
		return nil, fmt.Errorf("move inbound %s: %w", messageSID, err)
	}
	return &Inbound{SessionID: to, Done: in.Done}, nil
}

// InboundDone marks a message fully processed.
func (s *Store) InboundDone(ctx context.Context, tenant, messageSID string) error {
	err := s.dones.Insert(ctx, bson.M{"_id": tenant + "/" + messageSID, "at": time.Now()})
	if err != nil && !errors.Is(err, mongodb.ErrDuplicate) {
		return fmt.Errorf("mark inbound %s done: %w", messageSID, err)
	}
	return nil
}

// ActivePointer names an active session by its conversation.
type ActivePointer struct {
	Tenant, SessionID string
}

// ActiveSessions lists every conversation's active session. It reads the
// whole `active` collection (one small document per open conversation),
// which is only done by the periodic stale sweep, never per message.
func (s *Store) ActiveSessions(ctx context.Context) ([]ActivePointer, error) {
	cur, err := s.active.Find(ctx, bson.M{})
	if err != nil {
		return nil, fmt.Errorf("list active sessions: %w", err)
	}
	defer func() { _ = cur.Close(ctx) }()
	var out []ActivePointer
	for cur.Next(ctx) {
		var doc struct {
			ID        string `bson:"_id"`
			SessionID string `bson:"session_id"`
		}
		if cur.Decode(&doc) != nil {
			continue
		}
		tenant, _, ok := strings.Cut(doc.ID, "/")
		if ok && doc.SessionID != "" {
			out = append(out, ActivePointer{Tenant: tenant, SessionID: doc.SessionID})
		}
	}
	return out, cur.Err()
}

// LastActivity is when the session's transcript last changed; its start
// when it has no entry.
func (s *Store) LastActivity(ctx context.Context, sess *Session) (time.Time, error) {
	t, err := s.log.lastActivity(ctx, sess.Tenant, sess.ID)
	if err != nil {
		return time.Time{}, err
	}
	if t.IsZero() {
		return sess.StartedAt, nil
	}
	return t, nil
}
