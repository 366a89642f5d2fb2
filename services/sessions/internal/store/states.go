package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
)

// The active sessions' state lives in a JetStream KV bucket, one key per
// session (SESSIONS_STATES), and the key is the record of everything that
// changes while the session is active: its agent and task, park, the
// service and parameters its offer named. The `sessions` collection holds
// the document inserted when the session opened and, from its end on, the
// whole record: End first marks the key ended (a compare-and-set, after
// which no change applies), then writes the document from it, then deletes
// the key.
//
// Why not update the document as the session goes: FerretDB applies an
// update by reading the document and writing it back whole, outside any
// transaction, so two updates of one session at once (an acceptance on
// one replica, the offer event or the end on another) could each undo the
// other. A chaos run lost two chats that way: their documents named no
// agent, their messages were shown to no one and their agents' ends were
// refused. A compare-and-set on the key's revision cannot lose a change,
// and only End writes the document of a session whose key exists.
//
// Every replica also watches the bucket and keeps the active sessions in
// memory (sessionStates.byKey), so the inbound path reads no database for a
// customer message. Session reads the key from the bucket's stream leader
// first, the collection only for a session the bucket does not hold (ended,
// or opened before the bucket existed).
//
// A key written before the bucket held the whole state (no "v") is a
// legacy key: its session's changes still update the document as well,
// and reads take the document with the key's agent, task and park.
type sessionStates struct {
	kv  jetstream.KeyValue
	js  jetstream.JetStream
	log *slog.Logger

	mu sync.RWMutex
	// byKey holds the watched active sessions by their key in the bucket.
	byKey map[string]*Session
}

func stateKey(tenant, sessionID string) string { return tenant + "." + safeToken(sessionID) }

// stateVersion marks a key that holds a session's whole state.
const stateVersion = 2

// stateView is what the bucket holds of a session.
type stateView struct {
	V               int               `json:"v,omitempty"`
	Tenant          string            `json:"tenant"`
	ID              string            `json:"id"`
	ServiceID       string            `json:"service_id,omitempty"`
	ServiceName     string            `json:"service_name,omitempty"`
	EntryID         string            `json:"entry_id,omitempty"`
	Conversation    Conversation      `json:"conversation"`
	ConversationKey string            `json:"conversation_key,omitempty"`
	CustomerName    string            `json:"customer_name,omitempty"`
	FirstMessageSID string            `json:"first_message_sid,omitempty"`
	State           string            `json:"state,omitempty"` // "" while active
	AgentID         string            `json:"agent_id,omitempty"`
	TaskID          string            `json:"task_id,omitempty"`
	Parked          bool              `json:"parked,omitempty"`
	Outcome         string            `json:"outcome,omitempty"`
	EndReason       string            `json:"end_reason,omitempty"`
	Trace           string            `json:"trace,omitempty"`
	Parameters      map[string]string `json:"parameters,omitempty"`
	StartedAt       int64             `json:"started_at_ms"`
	AcceptedAt      int64             `json:"accepted_at_ms,omitempty"`
	EndedAt         int64             `json:"ended_at_ms,omitempty"`
}

func viewOf(s *Session) stateView {
	v := stateView{
		V: stateVersion, Tenant: s.Tenant, ID: s.ID, ServiceID: s.ServiceID, ServiceName: s.ServiceName, EntryID: s.EntryID,
		Conversation: s.Conversation, ConversationKey: s.ConversationKey, CustomerName: s.CustomerName,
		FirstMessageSID: s.FirstMessageSID, AgentID: s.AgentID, TaskID: s.TaskID, Parked: s.Parked,
		Outcome: s.Outcome, EndReason: s.EndReason, Trace: s.Trace, Parameters: s.Parameters,
		StartedAt: s.StartedAt.UnixMilli(), AcceptedAt: millis(s.AcceptedAt), EndedAt: millis(s.EndedAt),
	}
	if s.State != StateActive {
		v.State = s.State
	}
	return v
}

func (v stateView) session() *Session {
	s := &Session{
		Key: SessionKey(v.Tenant, v.ID), Tenant: v.Tenant, ID: v.ID, ServiceID: v.ServiceID, ServiceName: v.ServiceName,
		EntryID: v.EntryID, Conversation: v.Conversation, ConversationKey: v.ConversationKey, CustomerName: v.CustomerName,
		FirstMessageSID: v.FirstMessageSID, State: StateActive, AgentID: v.AgentID, TaskID: v.TaskID,
		Parked: v.Parked, Outcome: v.Outcome, EndReason: v.EndReason, Trace: v.Trace, Parameters: v.Parameters,
		StartedAt: timeFromMillis(v.StartedAt),
	}
	if v.State != "" {
		s.State = v.State
	}
	if v.AcceptedAt != 0 {
		s.AcceptedAt = timeFromMillis(v.AcceptedAt)
	}
	if v.EndedAt != 0 {
		s.EndedAt = timeFromMillis(v.EndedAt)
	}
	return s
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func decodeView(b []byte) (stateView, error) {
	var v stateView
	if err := json.Unmarshal(b, &v); err != nil {
		return v, err
	}
	if v.Tenant == "" || v.ID == "" {
		return v, errors.New("no tenant or session id")
	}
	return v, nil
}

func decodeState(b []byte) (*Session, error) {
	v, err := decodeView(b)
	if err != nil {
		return nil, err
	}
	return v.session(), nil
}

// held is what the bucket holds of a session.
type held int

const (
	heldNot    held = iota // no key: ended and gone, or never recorded
	heldLegacy             // a key without the whole state (no "v")
	heldActive             // the record of an active session
	heldEnded              // marked ended, its document being written
)

func heldAs(v stateView) held {
	switch {
	case v.V < stateVersion:
		return heldLegacy
	case v.State != "":
		return heldEnded
	}
	return heldActive
}

// watch follows the bucket until ctx ends, keeping byKey current: the keys
// held when it starts, then every change. A value it cannot read is
// logged and left out (its session is then read from the collection). A
// watch that ends early (its consumer lost for good) is started again;
// meanwhile, and until the keys are loaded again, the sessions it does not
// hold are read from the collection.
func (x *sessionStates) watch(ctx context.Context) error {
	w, err := x.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch session states: %w", err)
	}
	go func() {
		for {
			x.follow(ctx, w)
			x.mu.Lock()
			clear(x.byKey)
			x.mu.Unlock()
			for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
				if ctx.Err() != nil {
					return
				}
				x.log.Warn("session state watch ended; watching again", "in", delay)
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
				if w, err = x.kv.WatchAll(ctx); err == nil {
					break
				}
			}
		}
	}()
	return nil
}

// follow applies the watch's entries until it ends or ctx does.
func (x *sessionStates) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil { // nil: the keys held at the start have all arrived
				x.apply(e)
			}
		}
	}
}

func (x *sessionStates) apply(e jetstream.KeyValueEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(x.byKey, e.Key())
		return
	}
	s, err := decodeState(e.Value())
	if err != nil {
		delete(x.byKey, e.Key())
		x.log.Warn("session state unreadable; the session is read from the database", "key", e.Key(), "err", err)
		return
	}
	if s.State != StateActive {
		delete(x.byKey, e.Key()) // marked ended: read, not watched
		return
	}
	x.byKey[e.Key()] = s
}

// get returns a copy of the active session as last watched, or nil.
func (x *sessionStates) get(tenant, sessionID string) *Session {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := x.byKey[stateKey(tenant, sessionID)]
	if s == nil {
		return nil
	}
	c := *s
	return &c
}

// open records a session just created in the collection.
func (x *sessionStates) open(ctx context.Context, s *Session) error {
	b, err := json.Marshal(viewOf(s))
	if err != nil {
		return err
	}
	_, err = kvcas.Put(ctx, x.kv, stateKey(s.Tenant, s.ID), b, 0)
	if err != nil && !errors.Is(err, kvcas.ErrConflict) {
		return fmt.Errorf("session state %s: %w", s.ID, err)
	}
	return nil
}

// read returns the session as the bucket's stream leader holds it (nil
// when it holds no key) and what the key is.
func (x *sessionStates) read(ctx context.Context, tenant, sessionID string) (*Session, held, error) {
	b, _, err := kvcas.GetLatest(ctx, x.js, x.kv.Bucket(), stateKey(tenant, sessionID))
	if err != nil {
		return nil, heldNot, fmt.Errorf("session state %s: %w", sessionID, err)
	}
	if b == nil {
		return nil, heldNot, nil
	}
	v, err := decodeView(b)
	if err != nil {
		x.log.Warn("session state unreadable; the session is read from the database", "session", sessionID, "err", err)
		return nil, heldNot, nil
	}
	return v.session(), heldAs(v), nil
}

// update reads the session's key from the bucket's stream leader, lets f
// change the session (f reports whether it did) and writes it at the
// revision read, retrying when another writer got in first. It returns the
// session as now held (nil when the key is missing or unreadable, and f
// is then not called) and what the key is.
func (x *sessionStates) update(ctx context.Context, tenant, sessionID string, f func(s *Session, how held) bool) (*Session, held, error) {
	var (
		now *Session
		how = heldNot
	)
	_, err := kvcas.ChangeLatest(ctx, x.js, x.kv, stateKey(tenant, sessionID), func(cur []byte) ([]byte, error) {
		now, how = nil, heldNot
		if cur == nil {
			return nil, nil
		}
		v, err := decodeView(cur)
		if err != nil {
			return cur, nil
		}
		now, how = v.session(), heldAs(v)
		if !f(now, how) {
			return cur, nil
		}
		next := viewOf(now)
		if how == heldLegacy {
			next.V = v.V // a legacy key stays one: its document is updated too
		}
		how = heldAs(next)
		return json.Marshal(next)
	})
	if err != nil {
		return nil, heldNot, fmt.Errorf("session state %s: %w", sessionID, err)
	}
	return now, how, nil
}

// change applies f to an active session the bucket holds and returns the
// session as it now is and what the key is; a key missing, unreadable or
// marked ended is left as it is (f is not called).
func (x *sessionStates) change(ctx context.Context, tenant, sessionID string, f func(*Session)) (*Session, held, error) {
	return x.update(ctx, tenant, sessionID, func(s *Session, how held) bool {
		if how == heldEnded {
			return false
		}
		f(s)
		return true
	})
}

// markEnded marks an active session's key ended with its outcome, unless
// it is marked already (the first end's outcome stands), and returns the
// session as now held, whether this call marked it, and what the key is.
// A legacy key or a missing one is left as it is.
func (x *sessionStates) markEnded(ctx context.Context, tenant, sessionID, outcome, reason string, at time.Time) (*Session, bool, held, error) {
	marked := false
	now, how, err := x.update(ctx, tenant, sessionID, func(s *Session, how held) bool {
		marked = how == heldActive
		if marked {
			s.State, s.Outcome, s.EndReason, s.EndedAt = StateEnded, outcome, reason, at.Truncate(time.Millisecond).UTC()
		}
		return marked
	})
	if err != nil {
		return nil, false, heldNot, err
	}
	return now, marked, how, nil
}

// end forgets an ended session.
func (x *sessionStates) end(ctx context.Context, tenant, sessionID string) error {
	err := x.kv.Delete(ctx, stateKey(tenant, sessionID))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("end session state %s: %w", sessionID, err)
	}
	return nil
}

func timeFromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
