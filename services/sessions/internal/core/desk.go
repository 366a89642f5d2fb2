package core

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxTransferNote bounds a transfer's note (distribution's limit).
const MaxTransferNote = 1000

// SetConfig gives the desk the tenant's services (transfer targets, the
// codes and tags of a wrap-up form, canned responses) and the tenant's own
// canned responses; without it transfers still work by id, wrap-up forms
// offer no lists and there are no canned responses.
func (c *Core) SetConfig(s configv1.ServiceServiceClient, t configv1.TenantServiceClient) {
	c.services, c.tenants = s, t
}

// Canned is a reply the agent can insert, filled in for the chat.
type Canned struct {
	Shortcut string `json:"shortcut"`
	Title    string `json:"title"`
	Body     string `json:"body"`
}

// CannedResponses lists the replies the agent can insert in their chat:
// the service's, then the tenant's (a service's shortcut wins on a clash),
// with ${customer_name}, ${customer}, ${agent_name}, ${service_name} and
// ${channel} filled in; other placeholders are left for the agent to edit.
func (c *Core) CannedResponses(ctx context.Context, a Agent, sessionID string) ([]Canned, error) {
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return nil, err
	}
	out := []Canned{}
	if c.services == nil || c.tenants == nil {
		return out, nil
	}
	svc, err := c.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: a.Tenant, Id: sess.ServiceID})
	if err != nil && status.Code(err) != codes.NotFound {
		return nil, fromStatus(err)
	}
	ten, err := c.tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: a.Tenant})
	if err != nil {
		return nil, fromStatus(err)
	}
	customer := sess.CustomerName
	if customer == "" {
		customer = sess.Conversation.Customer
	}
	serviceName := svc.GetService().GetName()
	if serviceName == "" {
		serviceName = sess.ServiceName
	}
	fill := strings.NewReplacer(
		"${customer_name}", customer, "${customer}", sess.Conversation.Customer,
		"${agent_name}", orDefault(a.DisplayName, a.ID), "${service_name}", serviceName,
		"${channel}", channelLabel(sess.Conversation.Channel),
	)
	seen := map[string]bool{}
	for _, list := range [][]*configv1.CannedResponse{svc.GetService().GetCannedResponses(), ten.GetTenant().GetCannedResponses()} {
		for _, r := range list {
			if seen[r.GetShortcut()] {
				continue
			}
			seen[r.GetShortcut()] = true
			out = append(out, Canned{Shortcut: r.GetShortcut(), Title: orDefault(r.GetTitle(), r.GetShortcut()), Body: fill.Replace(r.GetBody())})
		}
	}
	return out, nil
}

func channelLabel(c string) string {
	switch c {
	case "sms":
		return "SMS"
	case "whatsapp":
		return "WhatsApp"
	}
	return c
}

// ServiceOption is a service an agent may transfer a chat to.
type ServiceOption struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Services lists the tenant's IM services, for the transfer dialog.
func (c *Core) Services(ctx context.Context, a Agent) ([]ServiceOption, error) {
	out := []ServiceOption{}
	if c.services == nil {
		return out, nil
	}
	token := ""
	for {
		res, err := c.services.ListServices(ctx, &configv1.ListServicesRequest{TenantId: a.Tenant, PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, fromStatus(err)
		}
		for _, s := range res.GetServices() {
			if s.GetImEnabled() {
				out = append(out, ServiceOption{ID: s.GetId(), Name: s.GetName()})
			}
		}
		if token = res.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// Transfer moves the agent's chat to another service's queue or to a named
// agent of the tenant, with a note for whoever takes it. The chat leaves the
// agent's desk when distribution announces the transfer.
func (c *Core) Transfer(ctx context.Context, a Agent, sessionID, toService, toAgent, note string) error {
	switch {
	case (toService == "") == (toAgent == ""):
		return fmt.Errorf("%w: name exactly one of to_service_id and to_agent_id", ErrInvalid)
	case toAgent == a.ID:
		return fmt.Errorf("%w: the chat is already yours", ErrInvalid)
	case !utf8.ValidString(note):
		return fmt.Errorf("%w: note is not valid UTF-8", ErrInvalid)
	case utf8.RuneCountInString(note) > MaxTransferNote:
		return fmt.Errorf("%w: note has %d characters, at most %d are allowed", ErrInvalid, utf8.RuneCountInString(note), MaxTransferNote)
	}
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return err
	}
	if sess.TaskID == "" {
		return fmt.Errorf("%w: session %s has no task to transfer", ErrConflict, sessionID)
	}
	_, err = c.dist.TransferTask(ctx, &distributionv1.TransferTaskRequest{
		TenantId: a.Tenant, TaskId: sess.TaskID, ToServiceId: toService, ToAgentId: toAgent,
		Note: strings.TrimSpace(note), AgentId: a.ID,
	})
	return fromStatus(err)
}

// Park sets the agent's chat aside (replies are refused until it is
// resumed; the customer's messages still arrive); Resume takes it up
// again. The chat's state changes when distribution announces it.
func (c *Core) Park(ctx context.Context, a Agent, sessionID string, park bool) error {
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return err
	}
	if sess.TaskID == "" {
		return fmt.Errorf("%w: session %s has no task to park", ErrConflict, sessionID)
	}
	if park {
		_, err = c.dist.ParkTask(ctx, &distributionv1.ParkTaskRequest{TenantId: a.Tenant, TaskId: sess.TaskID, AgentId: a.ID})
	} else {
		_, err = c.dist.ResumeTask(ctx, &distributionv1.ResumeTaskRequest{TenantId: a.Tenant, TaskId: sess.TaskID, AgentId: a.ID})
	}
	return fromStatus(err)
}

// parked records a park or resume of a chat and tells its agent's
// consoles and the supervisors monitoring it.
func (c *Core) parked(ctx context.Context, tenant, sessionID, taskID, agentID, by string, park bool) error {
	if err := c.store.SetParked(ctx, tenant, sessionID, taskID, park); err != nil {
		return err
	}
	typ := protocol.TypeSessionResumed
	if park {
		typ = protocol.TypeSessionParked
	}
	c.toSession(ctx, tenant, sessionID, agentID, protocol.Frame(typ, map[string]string{
		"session_id": sessionID, "task_id": taskID, "by": by,
	}))
	return nil
}

// SubmitWrapUp ends the agent's after-call work on a task with the codes
// and tags chosen; distribution checks them against the service's lists.
func (c *Core) SubmitWrapUp(ctx context.Context, a Agent, taskID string, serviceCodes, salesCodes, tags []string) error {
	if taskID == "" {
		return fmt.Errorf("%w: task_id is required", ErrInvalid)
	}
	for _, l := range [][]string{serviceCodes, salesCodes, tags} {
		if len(l) > 50 {
			return fmt.Errorf("%w: at most 50 codes or tags of each kind", ErrInvalid)
		}
	}
	_, err := c.dist.SubmitWrapUp(ctx, &distributionv1.SubmitWrapUpRequest{
		TenantId: a.Tenant, AgentId: a.ID, TaskId: taskID,
		ServiceCodes: serviceCodes, SalesCodes: salesCodes, Tags: tags,
	})
	return fromStatus(err)
}

// wrapUpView is the wrap-up form of one task: its deadline and the
// service's lists.
func (c *Core) wrapUpView(ctx context.Context, tenant, taskID, sessionID, serviceID string, endsAt time.Time) *protocol.WrapUp {
	v := &protocol.WrapUp{TaskID: taskID, SessionID: sessionID, ServiceID: serviceID, EndsAt: endsAt,
		ServiceCodes: []string{}, SalesCodes: []string{}, Tags: []string{}}
	if c.services == nil || serviceID == "" {
		return v
	}
	res, err := c.services.GetService(ctx, &configv1.GetServiceRequest{TenantId: tenant, Id: serviceID})
	if err != nil {
		// The form still submits (without codes); distribution decides.
		c.log.WarnContext(ctx, "wrap-up form without the service's codes", "tenant", tenant, "service_id", serviceID, "err", err)
		return v
	}
	d := res.GetService().GetDistribution()
	v.ServiceName = res.GetService().GetName()
	v.ServiceCodes = append(v.ServiceCodes, d.GetServiceCodes()...)
	v.SalesCodes = append(v.SalesCodes, d.GetSalesCodes()...)
	v.Tags = append(v.Tags, d.GetTags()...)
	return v
}

// wrapUps are the forms of the tasks the agent is wrapping up, for a
// reconnecting console.
func (c *Core) wrapUps(ctx context.Context, tenant string, st *distributionv1.AgentState) []*protocol.WrapUp {
	out := []*protocol.WrapUp{}
	for _, id := range st.GetWrappingTaskIds() {
		res, err := c.dist.GetTask(ctx, &distributionv1.GetTaskRequest{TenantId: tenant, TaskId: id})
		if err != nil {
			c.log.WarnContext(ctx, "wrap-up task unavailable", "tenant", tenant, "task_id", id, "err", err)
			continue
		}
		t := res.GetTask()
		out = append(out, c.wrapUpView(ctx, tenant, t.GetTaskId(), t.GetSessionId(), t.GetServiceId(), t.GetWrapUpUntil().AsTime()))
	}
	return out
}

// transferred takes a transferred chat off its agent's desk.
func (c *Core) transferred(ctx context.Context, ev *distributionv1.TaskTransferred) error {
	from := ev.GetFromAgentId()
	if from == "" {
		return nil
	}
	if err := c.store.Unassign(ctx, ev.GetTenantId(), ev.GetSessionId(), from); err != nil {
		return err
	}
	to := ev.GetToServiceId()
	if ev.GetToAgentId() != "" {
		to = ev.GetToAgentId()
	}
	c.toSession(ctx, ev.GetTenantId(), ev.GetSessionId(), from, protocol.Frame(protocol.TypeSessionTransferred, map[string]string{
		"session_id": ev.GetSessionId(), "task_id": ev.GetTaskId(), "to_service_id": ev.GetToServiceId(),
		"to_agent_id": ev.GetToAgentId(), "note": ev.GetNote(), "to": to,
	}))
	return nil
}
