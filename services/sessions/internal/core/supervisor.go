package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/ids"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// MaxNoteRunes bounds a note or a whisper.
const MaxNoteRunes = 2000

func supervisor(a Agent) error {
	if !a.Supervisor {
		return fmt.Errorf("%w: this needs the supervisor role", ErrForbidden)
	}
	return nil
}

// tenantSession loads any session of the supervisor's tenant.
func (c *Core) tenantSession(ctx context.Context, a Agent, sessionID string) (*store.Session, error) {
	if sessionID == "" {
		return nil, fmt.Errorf("%w: session_id is required", ErrInvalid)
	}
	sess, err := c.store.Session(ctx, a.Tenant, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: session %s", ErrNotFound, sessionID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return sess, nil
}

func checkNote(body string) error {
	switch {
	case strings.TrimSpace(body) == "":
		return fmt.Errorf("%w: body is empty", ErrInvalid)
	case !utf8.ValidString(body):
		return fmt.Errorf("%w: body is not valid UTF-8", ErrInvalid)
	case utf8.RuneCountInString(body) > MaxNoteRunes:
		return fmt.Errorf("%w: body has %d characters, at most %d are allowed", ErrInvalid, utf8.RuneCountInString(body), MaxNoteRunes)
	}
	return nil
}

// internal adds an entry that never reaches the customer to a session's
// transcript and shows it: to the agent and the supervisors watching, or
// (the audit trail) to the supervisors only.
func (c *Core) internal(ctx context.Context, sess *store.Session, author Agent, sender, body, visibility string) (*store.Message, error) {
	msg := &store.Message{
		Tenant: sess.Tenant, ID: ids.New("nt_"), Direction: "internal", Sender: sender,
		AgentID: author.ID, Body: body, At: c.now(), Visibility: visibility,
	}
	if _, err := c.store.AddMessage(ctx, sess.ID, msg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	frame := protocol.Frame(protocol.TypeMessageAdded, map[string]any{"session_id": sess.ID, "message": messageView(msg)})
	agent := sess.AgentID
	if visibility == store.VisibleToSupervisors {
		agent = ""
	}
	c.toSession(ctx, sess.Tenant, sess.ID, agent, frame)
	return msg, nil
}

// audit records a supervisor's action in the session's audit trail.
func (c *Core) audit(ctx context.Context, sess *store.Session, sup Agent, what string) error {
	_, err := c.internal(ctx, sess, sup, "system", fmt.Sprintf("%s (%s) %s", orDefault(sup.DisplayName, sup.ID), sup.ID, what), store.VisibleToSupervisors)
	return err
}

// AddNote adds the agent's internal note to their chat: shown to them and
// to supervisors, never sent to the customer.
func (c *Core) AddNote(ctx context.Context, a Agent, sessionID, body string) (string, error) {
	if err := checkNote(body); err != nil {
		return "", err
	}
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return "", err
	}
	msg, err := c.internal(ctx, sess, a, "agent", body, "")
	if err != nil {
		return "", err
	}
	return msg.ID, nil
}

// Monitor returns any session of the supervisor's tenant with its whole
// transcript (the audit trail too) and records that they watch it; the
// agent is not told (silent monitoring).
func (c *Core) Monitor(ctx context.Context, sup Agent, sessionID string) (*protocol.Session, error) {
	if err := supervisor(sup); err != nil {
		return nil, err
	}
	sess, err := c.tenantSession(ctx, sup, sessionID)
	if err != nil {
		return nil, err
	}
	if err := c.audit(ctx, sess, sup, "started monitoring"); err != nil {
		return nil, err
	}
	msgs, err := c.store.Transcript(ctx, sup.Tenant, sess.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	v := supervisorView(sess, msgs)
	v.Compliance = c.compliance(ctx, sess)
	return v, nil
}

// Whisper adds a supervisor's note for the chat's agent: shown to them and
// to supervisors, never sent to the customer.
func (c *Core) Whisper(ctx context.Context, sup Agent, sessionID, body string) (string, error) {
	if err := supervisor(sup); err != nil {
		return "", err
	}
	if err := checkNote(body); err != nil {
		return "", err
	}
	sess, err := c.tenantSession(ctx, sup, sessionID)
	if err != nil {
		return "", err
	}
	if sess.State != store.StateActive {
		return "", fmt.Errorf("%w: session %s has ended", ErrConflict, sessionID)
	}
	msg, err := c.internal(ctx, sess, sup, "supervisor", body, "")
	if err != nil {
		return "", err
	}
	return msg.ID, nil
}

// Barge sends a supervisor's reply to the customer of any active chat of
// the tenant, shown in the transcript as the supervisor's.
func (c *Core) Barge(ctx context.Context, sup Agent, sessionID, body, clientMsgID string) (string, error) {
	if err := supervisor(sup); err != nil {
		return "", err
	}
	if err := validClientMsgID(clientMsgID); err != nil {
		return "", err
	}
	if err := checkBody(body); err != nil {
		return "", err
	}
	sess, err := c.tenantSession(ctx, sup, sessionID)
	if err != nil {
		return "", err
	}
	id, err := c.request(ctx, sup, sess, "sv-"+clientMsgID, body, nil, "")
	if err != nil {
		return "", err
	}
	if err := c.audit(ctx, sess, sup, "wrote to the customer"); err != nil {
		return "", err
	}
	return id, nil
}

// SupervisorEnd ends any active chat of the tenant, as handled.
func (c *Core) SupervisorEnd(ctx context.Context, sup Agent, sessionID string) error {
	if err := supervisor(sup); err != nil {
		return err
	}
	sess, err := c.tenantSession(ctx, sup, sessionID)
	if err != nil {
		return err
	}
	if sess.State != store.StateActive {
		return fmt.Errorf("%w: session %s has ended", ErrConflict, sessionID)
	}
	if err := c.audit(ctx, sess, sup, "ended the chat"); err != nil {
		return err
	}
	// Before any agent accepted it, the chat is canceled rather than
	// handled.
	outcome, reason := sessionv1.Outcome_OUTCOME_HANDLED, "ended by supervisor "+orDefault(sup.DisplayName, sup.ID)
	if sess.AgentID == "" {
		outcome, reason = sessionv1.Outcome_OUTCOME_CANCELED, "canceled by supervisor "+orDefault(sup.DisplayName, sup.ID)
	}
	return c.endAsked(ctx, sup.Tenant, sessionID, outcome, reason)
}

// ResetRona clears an agent's RONA flag for a supervisor.
func (c *Core) ResetRona(ctx context.Context, sup Agent, agentID string) (*distributionv1.AgentState, error) {
	if err := supervisor(sup); err != nil {
		return nil, err
	}
	if agentID == "" {
		return nil, fmt.Errorf("%w: agent_id is required", ErrInvalid)
	}
	res, err := c.dist.ResetAgentRona(ctx, &distributionv1.ResetAgentRonaRequest{TenantId: sup.Tenant, AgentId: agentID})
	if err != nil {
		return nil, fromStatus(err)
	}
	st := res.GetState()
	c.push.Push(ctx, sup.Tenant, agentID, protocol.Frame(protocol.TypePresence, map[string]any{"presence": PresenceName(st.GetPresence()), "rona": st.GetRona()}))
	return st, nil
}

// AgentChats lists an agent's active chats for a supervisor.
func (c *Core) AgentChats(ctx context.Context, sup Agent, agentID string) ([]*protocol.Session, error) {
	if err := supervisor(sup); err != nil {
		return nil, err
	}
	if agentID == "" {
		return nil, fmt.Errorf("%w: agent_id is required", ErrInvalid)
	}
	desk, err := c.store.AgentSessions(ctx, sup.Tenant, agentID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	out := []*protocol.Session{}
	for _, s := range desk.Active {
		v := sessionView(s, nil)
		v.AgentID = agentID
		out = append(out, v)
	}
	return out, nil
}

// WatchQueues streams the tenant's queues and agents to send until ctx
// ends or distribution's stream does.
func (c *Core) WatchQueues(ctx context.Context, sup Agent, serviceIDs []string, send func([]byte)) error {
	if err := supervisor(sup); err != nil {
		return err
	}
	stream, err := c.dist.WatchQueues(ctx, &distributionv1.WatchQueuesRequest{TenantId: sup.Tenant, ServiceIds: serviceIDs})
	if err != nil {
		return fromStatus(err)
	}
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fromStatus(err)
		}
		send(protocol.Frame(protocol.TypeQueues, queueView(res)))
	}
}

func queueView(res *distributionv1.WatchQueuesResponse) map[string]any {
	services := []map[string]any{}
	for _, s := range res.GetServices() {
		services = append(services, map[string]any{
			"service_id": s.GetServiceId(), "waiting": s.GetWaiting(), "longest_wait_seconds": int64(s.GetLongestWait().AsDuration().Seconds()),
			"offered": s.GetOffered(), "active": s.GetActive(),
			"agents_available": s.GetAgentsAvailable(), "agents_busy": s.GetAgentsBusy(), "agents_wrapping": s.GetAgentsWrapping(),
			"agents_rona": s.GetAgentsRona(), "agents_away": s.GetAgentsAway(), "agents_offline": s.GetAgentsOffline(),
			"offers_last_hour": s.GetOffersLastHour(), "ronas_last_hour": s.GetRonasLastHour(),
		})
	}
	agents := []map[string]any{}
	for _, a := range res.GetAgents() {
		agents = append(agents, map[string]any{
			"agent_id": a.GetAgentId(), "presence": PresenceName(a.GetPresence()), "rona": a.GetRona(),
			"active_tasks": a.GetActiveTasks(), "capacity": a.GetCapacity(), "wrapping": len(a.GetWrappingTaskIds()) > 0,
			"offers": len(a.GetOffers()),
		})
	}
	return map[string]any{"at": res.GetAt().AsTime(), "services": services, "agents": agents}
}
