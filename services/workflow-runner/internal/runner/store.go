package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
)

// Instance statuses.
const (
	// StatusRunning: the instance is between two waits (never stored: a
	// run saves when it waits or ends).
	StatusRunning = "running"
	// StatusWaiting: an activity waits for the customer or a timer.
	StatusWaiting = "waiting"
	// StatusQueued: Queue Task is waiting for an agent to accept.
	StatusQueued = "queued"
	// StatusDone: an agent accepted, the workflow ended, or the session ended.
	StatusDone = "done"
	// StatusFailed: the workflow could not go on; the session ended failed.
	StatusFailed = "failed"
)

// Wait kinds.
const (
	waitInput = "input" // Collect Information, Input Customer, Bot
	waitTimer = "timer" // Delay
	waitQueue = "queue" // Queue Task
)

// Wait is what a waiting instance waits for.
type Wait struct {
	Kind     string `json:"kind"`
	Activity string `json:"activity"`
	// Step is the instance's step count when the wait began; a timer
	// carries it, so a timer of an earlier wait is recognised as stale.
	Step int64 `json:"step"`
	// Since: customer messages written before it answer an earlier
	// question (or none), not this one.
	Since time.Time `json:"since"`
	// Attempts: answers that did not fit so far.
	Attempts int `json:"attempts,omitempty"`
	// DueAt is when the timer fires (zero: no timer): the earliest of
	// TimeoutAt, the queued task's timeout and the instance's InactiveAt.
	DueAt time.Time `json:"due_at,omitzero"`
	// TimeoutAt is when the waiting activity's own time is up (zero: it
	// has none, or the wait was stored before this field, see timeout).
	TimeoutAt time.Time `json:"timeout_at,omitzero"`
}

// timeout is when the waiting activity's own time is up (zero: never).
// A wait stored before TimeoutAt existed had only DueAt, and then no
// instance had an inactivity deadline.
func (w *Wait) timeout(st *State) time.Time {
	if w.TimeoutAt.IsZero() && st.InactiveAt.IsZero() {
		return w.DueAt
	}
	return w.TimeoutAt
}

// Queued is a task that waits for an agent while the workflow goes on.
type Queued struct {
	// Activity is the Queue Task; its "timeout" branch is taken when DueAt
	// passes (zero: no timeout).
	Activity string    `json:"activity"`
	TaskID   string    `json:"task_id"`
	QueuedAt time.Time `json:"queued_at"`
	DueAt    time.Time `json:"due_at,omitzero"`
}

// State is one workflow instance, stored as JSON in the WORKFLOW_INSTANCES
// bucket under <tenant>.<session>.
type State struct {
	Tenant    string `json:"tenant"`
	SessionID string `json:"session_id"`
	// Start is the SessionStarted event (conversation, entry, customer).
	Start []byte `json:"start"`
	// The service whose workflow runs (a Transfer changes it), and the
	// workflow version pinned when that service's workflow began.
	ServiceID       string `json:"service_id"`
	ServiceName     string `json:"service_name,omitempty"`
	TimeZone        string `json:"time_zone,omitempty"`
	WorkflowID      string `json:"workflow_id,omitempty"`
	WorkflowVersion int64  `json:"workflow_version,omitempty"`
	Greeting        string `json:"greeting,omitempty"`
	// FailureMessage: the service's message for a failed run ("" means
	// DefaultFailureMessage).
	FailureMessage string `json:"failure_message,omitempty"`
	// Inactivity: the service's inactivity timeout (0: off), and its
	// goodbye ("" means DefaultInactivityMessage).
	Inactivity        time.Duration `json:"inactivity,omitempty"`
	InactivityMessage string        `json:"inactivity_message,omitempty"`
	// InactiveAt: while the workflow waits for the customer, when the
	// session ends as abandoned unless they write (zero: not waiting for
	// them, or Inactivity is off).
	InactiveAt time.Time `json:"inactive_at,omitzero"`

	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	Activity string `json:"activity"`
	// Entered says the current activity's visit is counted in Visits.
	Entered   bool              `json:"entered,omitempty"`
	EnteredAt time.Time         `json:"entered_at,omitzero"`
	Visits    map[string]int    `json:"visits,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
	Priority  int32             `json:"priority,omitempty"`
	// Steps counts completed activities.
	Steps  int64  `json:"steps"`
	Wait   *Wait  `json:"wait,omitempty"`
	TaskID string `json:"task_id,omitempty"`
	// Queue: a Queue Task whose "queued" branch the workflow took; its
	// task waits for an agent while the workflow goes on.
	Queue *Queued `json:"queue,omitempty"`
	// Closing: why a Disconnect now would end the session, when the
	// workflow has seen a reason (EndCause: no agent after a Queue Task's
	// timeout, out of hours after Check Opening Hours found the service
	// closed); cleared when a queue or an hours check says otherwise.
	Closing workflowv1.EndCause `json:"closing,omitempty"`
	// Bot: the conversation with the bot of the current Bot activity.
	Bot *BotState `json:"bot,omitempty"`
	// Consumed: ids of the last customer messages a wait consumed, so a
	// redelivered one is not taken as the answer to the next question.
	Consumed  []string  `json:"consumed,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`

	start *sessionv1.SessionStarted
	// pending: the run's events in flight (Runner.flush).
	pending []func(context.Context) error
}

func (s *State) started() *sessionv1.SessionStarted {
	if s.start == nil {
		s.start = &sessionv1.SessionStarted{}
		_ = proto.Unmarshal(s.Start, s.start)
	}
	return s.start
}

// Store keeps instances in a KV bucket; every write names the revision it
// read, so of two deliveries that advance one instance only one is saved.
type Store struct{ kv jetstream.KeyValue }

// NewStore wraps the WORKFLOW_INSTANCES bucket.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// ErrConflict: the instance changed since it was read.
var ErrConflict = errors.New("workflow instance changed concurrently")

func instanceKey(tenant, session string) string { return tenant + "." + session }

// Load returns the instance and its revision, or nil and 0.
func (s *Store) Load(ctx context.Context, tenant, session string) (*State, uint64, error) {
	e, err := s.kv.Get(ctx, instanceKey(tenant, session))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load instance %s/%s: %w", tenant, session, err)
	}
	var st State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, 0, fmt.Errorf("decode instance %s/%s: %w", tenant, session, err)
	}
	if st.Visits == nil {
		st.Visits = map[string]int{}
	}
	if st.Params == nil {
		st.Params = map[string]string{}
	}
	return &st, e.Revision(), nil
}

// Save writes the instance if it is still at rev (0: if it does not exist).
func (s *Store) Save(ctx context.Context, st *State, rev uint64) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode instance %s/%s: %w", st.Tenant, st.SessionID, err)
	}
	key := instanceKey(st.Tenant, st.SessionID)
	_, err = kvcas.Put(ctx, s.kv, key, data, rev)
	if errors.Is(err, kvcas.ErrConflict) {
		return fmt.Errorf("save instance %s: %w", key, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("save instance %s: %w", key, err)
	}
	return nil
}
