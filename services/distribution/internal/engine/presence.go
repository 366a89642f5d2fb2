package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
)

// PresenceRecord is what survives a restart of an agent: their presence,
// RONA flag, the start of their idle time, a running grace period and what
// config said about them when they last set a presence (so a restart does
// not depend on the config service to put them back in their pools).
type PresenceRecord struct {
	Tenant   string                  `json:"tenant"`
	Agent    string                  `json:"agent"`
	Presence distributionv1.Presence `json:"presence"`
	RONA     bool                    `json:"rona,omitempty"`
	// Since: the start of the agent's idle time (when their load last
	// changed or they became available).
	Since time.Time `json:"since"`
	// GraceUntil and GracePresence: the console closed; the agent is
	// offline but keeps their place if they are back before GraceUntil.
	GraceUntil    time.Time               `json:"grace_until,omitzero"`
	GracePresence distributionv1.Presence `json:"grace_presence,omitempty"`
	Info          AgentInfo               `json:"info"`
	// SetAt: when the presence was last set (a console close reported
	// later than that but from before it is ignored).
	SetAt time.Time `json:"set_at,omitzero"`
}

// PresenceStore keeps agents' presence across restarts (a JetStream KV
// bucket written with revision checks in production).
type PresenceStore interface {
	SavePresence(ctx context.Context, r PresenceRecord) error
	LoadPresence(ctx context.Context) ([]PresenceRecord, error)
}

// PresenceOptions tune presence.
type PresenceOptions struct {
	// Store, when set, persists presence; nil: presence lives in memory.
	Store PresenceStore
	// Grace is how long an agent whose console closed keeps their place:
	// SetPresence(OFFLINE, viaGateway) within it only marks them offline
	// pending, and AVAILABLE before it runs out resumes them as if they had
	// never left. 0: offline at once.
	Grace time.Duration
}

// SetPresenceOptions configures persistence and the offline grace; call it
// before Restore.
func (e *Engine) SetPresenceOptions(o PresenceOptions) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.presence = o
}

func (a *agent) record(tenantID string) PresenceRecord {
	return PresenceRecord{
		Tenant: tenantID, Agent: a.info.ID, Presence: a.presence, RONA: a.rona, Since: a.since,
		GraceUntil: a.graceUntil, GracePresence: a.gracePresence, Info: a.info, SetAt: a.setAt,
	}
}

// persist saves the agent's presence record (a no-op without a store).
func (e *Engine) persist(ctx context.Context, tenantID string, a *agent) error {
	if e.presence.Store == nil {
		return nil
	}
	if err := e.presence.Store.SavePresence(ctx, a.record(tenantID)); err != nil {
		if errors.Is(err, ErrConflict) {
			e.staleLocked(tenantID)
		}
		return fmt.Errorf("save presence of %s/%s: %w", tenantID, a.info.ID, err)
	}
	return nil
}

// RestorePresence puts agents back as they were before a restart: call it
// after Restore (tasks). A grace period that ran out meanwhile ends now.
func (e *Engine) RestorePresence(ctx context.Context) (int, error) {
	if e.presence.Store == nil {
		return 0, nil
	}
	recs, err := e.presence.Store.LoadPresence(ctx)
	if err != nil {
		return 0, fmt.Errorf("load presence: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	tenants := map[string]bool{}
	for _, r := range recs {
		e.installAgent(r, now)
		tenants[r.Tenant] = true
	}
	for id := range tenants {
		e.dispatch(ctx, id)
	}
	e.signal()
	return len(recs), nil
}

// installAgent puts a loaded agent back as they were.
func (e *Engine) installAgent(r PresenceRecord, now time.Time) {
	t := e.tenant(r.Tenant)
	a := t.agentOrStub(r.Agent, now)
	r.Info.ID = r.Agent
	r.Info.Skills = normSkills(r.Info.Skills)
	a.info, a.presence, a.rona, a.since, a.setAt = r.Info, r.Presence, r.RONA, r.Since, r.SetAt
	if a.since.IsZero() {
		a.since = now
	}
	if r.GraceUntil.After(now) {
		a.graceUntil, a.gracePresence = r.GraceUntil, r.GracePresence
		e.startGraceTimer(r.Tenant, a, r.GraceUntil.Sub(now))
	}
	e.refresh(t, a)
}

func (e *Engine) startGraceTimer(tenantID string, a *agent, d time.Duration) {
	if a.graceTimer != nil {
		a.graceTimer.Stop()
	}
	agentID, until := a.info.ID, a.graceUntil
	a.graceTimer = e.afterFunc(max(d, 0), func() { e.graceExpired(tenantID, agentID, until) })
}

// graceExpired ends a grace period: the agent stays offline and loses
// their place in the idle order.
func (e *Engine) graceExpired(tenantID, agentID string, until time.Time) {
	ctx := context.Background()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.mine(tenantID) != nil {
		return
	}
	t := e.tenant(tenantID)
	a := t.agents[agentID]
	if a == nil || !a.graceUntil.Equal(until) {
		return // back in the meantime
	}
	a.graceUntil, a.gracePresence, a.graceTimer = time.Time{}, 0, nil
	if err := e.persist(ctx, tenantID, a); err != nil {
		// The record still says "grace": a restart ends it anyway.
		e.log.Error("save presence after grace", "tenant", tenantID, "agent", agentID, "err", err)
	}
	e.signal()
}

// ResetRona clears an agent's RONA flag and leaves their presence as it is.
func (e *Engine) ResetRona(ctx context.Context, tenantID, agentID string) (*distributionv1.AgentState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.mine(tenantID); err != nil {
		return nil, err
	}
	t := e.tenant(tenantID)
	a, ok := t.agents[agentID]
	if !ok {
		return nil, fmt.Errorf("%w: %q has not set a presence", ErrUnknownAgent, agentID)
	}
	if a.rona {
		a.rona = false
		if err := e.persist(ctx, tenantID, a); err != nil {
			a.rona = true
			return nil, err
		}
		e.refresh(t, a)
		e.dispatch(ctx, tenantID)
		e.signal()
	}
	return e.stateLocked(tenantID, t, a), nil
}
