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

// The active sessions' state lives in a JetStream KV bucket as well as in
// the `sessions` collection, so that a customer message needs no read of
// its session: every replica watches the bucket and keeps what it holds in
// memory (sessionStates), and the inbound path reads that map.
//
// The collection stays the record (snapshots, supervisors, the stale
// sweep read it); the bucket mirrors the part the inbound path needs
// (who the customer is, the state and the agent) for active sessions
// only. It is written after the collection by the same steps, by
// compare-and-set on the key's revision, and never brings back a session
// that ended: Open creates the key (a session's first write), the other
// changes apply to a key that exists and leave a missing one missing, and
// End deletes it. A session whose key is missing (opened before the bucket
// existed, or a crash between the two writes) is read from the collection,
// as every session was before.
type sessionStates struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu sync.RWMutex
	// byKey holds the watched sessions by their key in the bucket.
	byKey map[string]*Session
}

func stateKey(tenant, sessionID string) string { return tenant + "." + safeToken(sessionID) }

// stateView is what the bucket holds of a session.
type stateView struct {
	Tenant          string       `json:"tenant"`
	ID              string       `json:"id"`
	ServiceID       string       `json:"service_id,omitempty"`
	EntryID         string       `json:"entry_id,omitempty"`
	Conversation    Conversation `json:"conversation"`
	ConversationKey string       `json:"conversation_key,omitempty"`
	CustomerName    string       `json:"customer_name,omitempty"`
	FirstMessageSID string       `json:"first_message_sid,omitempty"`
	AgentID         string       `json:"agent_id,omitempty"`
	TaskID          string       `json:"task_id,omitempty"`
	Parked          bool         `json:"parked,omitempty"`
	Trace           string       `json:"trace,omitempty"`
	StartedAt       int64        `json:"started_at_ms"`
}

func viewOf(s *Session) stateView {
	return stateView{
		Tenant: s.Tenant, ID: s.ID, ServiceID: s.ServiceID, EntryID: s.EntryID, Conversation: s.Conversation,
		ConversationKey: s.ConversationKey, CustomerName: s.CustomerName, FirstMessageSID: s.FirstMessageSID,
		AgentID: s.AgentID, TaskID: s.TaskID, Parked: s.Parked, Trace: s.Trace, StartedAt: s.StartedAt.UnixMilli(),
	}
}

func (v stateView) session() *Session {
	return &Session{
		Key: SessionKey(v.Tenant, v.ID), Tenant: v.Tenant, ID: v.ID, ServiceID: v.ServiceID, EntryID: v.EntryID,
		Conversation: v.Conversation, ConversationKey: v.ConversationKey, CustomerName: v.CustomerName,
		FirstMessageSID: v.FirstMessageSID, State: StateActive, AgentID: v.AgentID, TaskID: v.TaskID,
		Parked: v.Parked, Trace: v.Trace, StartedAt: timeFromMillis(v.StartedAt),
	}
}

func decodeState(b []byte) (*Session, error) {
	var v stateView
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	if v.Tenant == "" || v.ID == "" {
		return nil, errors.New("no tenant or session id")
	}
	return v.session(), nil
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

// change applies f to a session the bucket holds; a session it does not
// hold (ended, or never recorded) is left so.
func (x *sessionStates) change(ctx context.Context, tenant, sessionID string, f func(*Session)) error {
	_, err := kvcas.Change(ctx, x.kv, stateKey(tenant, sessionID), func(cur []byte) ([]byte, error) {
		if cur == nil {
			return nil, nil
		}
		s, err := decodeState(cur)
		if err != nil {
			return cur, nil
		}
		f(s)
		next, err := json.Marshal(viewOf(s))
		return next, err
	})
	if err != nil {
		return fmt.Errorf("session state %s: %w", sessionID, err)
	}
	return nil
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
