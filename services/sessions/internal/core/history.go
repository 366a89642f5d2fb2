package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// maxHistoryShown bounds the earlier sessions listed for a chat.
const maxHistoryShown = 20

// EarlierSession is one of the customer's earlier chats.
type EarlierSession struct {
	SessionID   string     `json:"session_id"`
	Channel     string     `json:"channel"`
	ServiceName string     `json:"service_name,omitempty"`
	State       string     `json:"state"`
	Outcome     string     `json:"outcome,omitempty"`
	AgentID     string     `json:"agent_id,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
}

// chatFor loads a chat the caller may look into: their own, or for a
// supervisor any chat of the tenant.
func (c *Core) chatFor(ctx context.Context, a Agent, sessionID string) (*store.Session, error) {
	if a.Supervisor {
		return c.tenantSession(ctx, a, sessionID)
	}
	return c.ownSession(ctx, a, sessionID)
}

// History lists the earlier sessions of the customer of a chat, newest
// first (the customer's history, then each session by _id).
func (c *Core) History(ctx context.Context, a Agent, sessionID string) ([]EarlierSession, error) {
	sess, err := c.chatFor(ctx, a, sessionID)
	if err != nil {
		return nil, err
	}
	list, err := c.store.History(ctx, a.Tenant, sess.Conversation.Customer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	out := []EarlierSession{}
	for _, e := range list {
		if e.SessionID == sess.ID {
			continue
		}
		if len(out) == maxHistoryShown {
			break
		}
		s, err := c.store.Session(ctx, a.Tenant, e.SessionID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		v := EarlierSession{
			SessionID: s.ID, Channel: s.Conversation.Channel, ServiceName: s.ServiceName, State: s.State,
			AgentID: s.AgentID, StartedAt: s.StartedAt,
		}
		if s.Outcome != "" {
			v.Outcome = outcomeName(outcomeOf(s.Outcome))
		}
		if !s.EndedAt.IsZero() {
			t := s.EndedAt
			v.EndedAt = &t
		}
		out = append(out, v)
	}
	return out, nil
}

// EarlierTranscript returns one of the earlier sessions of a chat's
// customer with its transcript (an agent never sees the audit trail).
func (c *Core) EarlierTranscript(ctx context.Context, a Agent, sessionID, earlierID string) (*protocol.Session, error) {
	if earlierID == "" {
		return nil, fmt.Errorf("%w: earlier_session_id is required", ErrInvalid)
	}
	sess, err := c.chatFor(ctx, a, sessionID)
	if err != nil {
		return nil, err
	}
	list, err := c.store.History(ctx, a.Tenant, sess.Conversation.Customer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	known := false
	for _, e := range list {
		known = known || (e.SessionID == earlierID && earlierID != sess.ID)
	}
	if !known {
		return nil, fmt.Errorf("%w: session %s is not an earlier chat of this customer", ErrForbidden, earlierID)
	}
	earlier, err := c.tenantSession(ctx, a, earlierID)
	if err != nil {
		return nil, err
	}
	msgs, err := c.store.Transcript(ctx, a.Tenant, earlierID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if a.Supervisor {
		return supervisorView(earlier, msgs), nil
	}
	v := sessionView(earlier, msgs)
	v.AgentID = earlier.AgentID
	return v, nil
}

// outcomeOf reads a stored outcome ("OUTCOME_HANDLED").
func outcomeOf(s string) sessionv1.Outcome { return sessionv1.Outcome(sessionv1.Outcome_value[s]) }
