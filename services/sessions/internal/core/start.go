package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// Business-initiated conversations: an agent starts a WhatsApp chat with a
// customer by sending one of the connector's approved templates (WhatsApp
// allows nothing else outside the customer's 24-hour window). The session
// is the agent's from the start: distribution creates its task already
// accepted by them (StartAgentTask, so it counts toward their capacity and
// park, transfer, wrap-up and the end work as usual), no workflow runs, and
// the customer's answer finds the conversation's active pointer and lands
// in this session like any message.

// SetLookup sets where the tenant's messaging entries are listed.
func (c *Core) SetLookup(l configv1.LookupServiceClient) { c.lookup = l }

// StartEntry is a messaging entry an agent may start a conversation from.
type StartEntry struct {
	EntryID         string `json:"entry_id"`
	Name            string `json:"name"`
	BusinessAddress string `json:"business_address"`
	ServiceID       string `json:"service_id"`
	ServiceName     string `json:"service_name"`
}

var e164Re = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// startEntry is one of the tenant's entries as StartEntries lists it, with
// what opening a session needs.
type startEntry struct {
	StartEntry
	messagingServiceSID string
}

// startEntries lists the tenant's WhatsApp entries on the Programmable
// Messaging path that are assigned to an IM service and not disabled. A
// Conversations-path entry would first need a Twilio conversation and a
// participant created, which outbound-sender has no request for.
func (c *Core) startEntries(ctx context.Context, tenant string) ([]startEntry, error) {
	if c.lookup == nil {
		return nil, fmt.Errorf("%w: the tenant's entries are not available (no config service)", ErrUnavailable)
	}
	res, err := c.lookup.ListEntries(ctx, &configv1.ListEntriesRequest{TenantId: tenant})
	if err != nil {
		return nil, fromStatus(err)
	}
	out := []startEntry{}
	for _, r := range res.GetEntries() {
		e, svc := r.GetEntry(), r.GetService()
		if e.GetDisabled() || e.GetChannel() != messagingv1.Channel_CHANNEL_WHATSAPP || e.GetPath() == messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS ||
			svc == nil || !svc.GetImEnabled() {
			continue
		}
		addr := ""
		for _, a := range e.GetBusinessAddresses() {
			if strings.HasPrefix(a, "whatsapp:") {
				addr = a
				break
			}
		}
		if addr == "" {
			continue
		}
		out = append(out, startEntry{
			StartEntry:          StartEntry{EntryID: e.GetId(), Name: e.GetName(), BusinessAddress: addr, ServiceID: svc.GetId(), ServiceName: svc.GetName()},
			messagingServiceSID: e.GetMessagingServiceSid(),
		})
	}
	return out, nil
}

// StartEntries lists the entries the agent may start a WhatsApp
// conversation from.
func (c *Core) StartEntries(ctx context.Context, a Agent) ([]StartEntry, error) {
	if !a.IsAgent {
		return nil, fmt.Errorf("%w: starting conversations needs the agent role and an IM licence", ErrForbidden)
	}
	list, err := c.startEntries(ctx, a.Tenant)
	if err != nil {
		return nil, err
	}
	out := make([]StartEntry, len(list))
	for i, e := range list {
		out[i] = e.StartEntry
	}
	return out, nil
}

// findStartEntry returns the entry named, or why it cannot be used.
func (c *Core) findStartEntry(ctx context.Context, a Agent, entryID string) (*startEntry, error) {
	if !a.IsAgent {
		return nil, fmt.Errorf("%w: starting conversations needs the agent role and an IM licence", ErrForbidden)
	}
	if entryID == "" {
		return nil, fmt.Errorf("%w: entry_id is required", ErrInvalid)
	}
	list, err := c.startEntries(ctx, a.Tenant)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].EntryID == entryID {
			return &list[i], nil
		}
	}
	return nil, fmt.Errorf("%w: entry %s is not a WhatsApp entry of the tenant (Programmable Messaging, enabled, assigned to an IM service) that conversations can be started from", ErrNotFound, entryID)
}

// EntryTemplates lists the WhatsApp templates of an entry an agent may
// start a conversation from.
func (c *Core) EntryTemplates(ctx context.Context, a Agent, entryID string) ([]protocol.Template, error) {
	e, err := c.findStartEntry(ctx, a, entryID)
	if err != nil {
		return nil, err
	}
	list, err := c.listTemplates(ctx, &store.Session{Tenant: a.Tenant, EntryID: e.EntryID})
	if err != nil {
		return nil, err
	}
	return TemplateViews(list), nil
}

// startedSessionID is the id of the session an agent's start request
// opens: the same for a retry of the request (same client_msg_id), so a
// start sent again after a dropped socket opens nothing twice.
func startedSessionID(a Agent, clientMsgID string) string {
	h := sha256.Sum256([]byte(a.Tenant + "\x00" + a.ID + "\x00" + clientMsgID))
	return "ss_a" + hex.EncodeToString(h[:12])
}

// StartConversation opens a WhatsApp conversation with customer (E.164)
// from the entry, the agent's from the start, and sends the template as
// its first message. It returns the session and the message's id. A
// customer with an active chat on that number is a conflict naming it
// (unless it is this request's own, sent again).
func (c *Core) StartConversation(ctx context.Context, a Agent, entryID, customer, contentSID string, vars map[string]string, clientMsgID string) (string, string, error) {
	if err := validClientMsgID(clientMsgID); err != nil {
		return "", "", err
	}
	customer = strings.TrimPrefix(strings.TrimSpace(customer), "whatsapp:")
	if !e164Re.MatchString(customer) {
		return "", "", fmt.Errorf("%w: customer must be a phone number in E.164 form, + and 7 to 15 digits (got %q)", ErrInvalid, customer)
	}
	if err := CheckTemplateSend(contentSID, vars); err != nil {
		return "", "", err
	}
	e, err := c.findStartEntry(ctx, a, entryID)
	if err != nil {
		return "", "", err
	}
	if "whatsapp:"+customer == e.BusinessAddress {
		return "", "", fmt.Errorf("%w: customer is the entry's own number", ErrInvalid)
	}
	r, err := c.templateRequest(ctx, &store.Session{Tenant: a.Tenant, EntryID: e.EntryID}, contentSID, vars)
	if err != nil {
		return "", "", err
	}

	ref := &messagingv1.ConversationRef{
		Channel: messagingv1.Channel_CHANNEL_WHATSAPP, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
		CustomerAddress: "whatsapp:" + customer, BusinessAddress: e.BusinessAddress, MessagingServiceSid: e.messagingServiceSID,
	}
	key, id := ConversationKey(ref), startedSessionID(a, clientMsgID)
	// A customer who opted out is refused before anything is opened.
	if err := c.checkReply(ctx, &store.Session{Tenant: a.Tenant, ID: id, EntryID: e.EntryID, Conversation: toStore(ref)}, true); err != nil {
		return "", "", err
	}
	current, err := c.store.ActiveSession(ctx, a.Tenant, key)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if current != "" && current != id {
		return "", "", fmt.Errorf("%w: %s already has an active chat on %s (session %s)", ErrConflict, customer, e.BusinessAddress, current)
	}
	// The task first: an agent at capacity (or offline, or not a member of
	// the entry's service) opens nothing.
	task, err := c.dist.StartAgentTask(ctx, &distributionv1.StartAgentTaskRequest{
		TenantId: a.Tenant, ServiceId: e.ServiceID, SessionId: id, AgentId: a.ID,
	})
	if err != nil {
		return "", "", fromStatus(err)
	}
	if current, err = c.store.ClaimActive(ctx, a.Tenant, key, id); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if current != id {
		// A customer's message opened a chat meanwhile: the task is
		// withdrawn.
		if _, cerr := c.dist.CancelTask(ctx, &distributionv1.CancelTaskRequest{
			TenantId: a.Tenant, TaskId: task.GetTaskId(), Reason: "the customer opened a chat first"}); cerr != nil {
			c.log.WarnContext(ctx, "withdrawing the task of a conversation the customer opened first", "session_id", id, "err", cerr)
		}
		return "", "", fmt.Errorf("%w: %s already has an active chat on %s (session %s)", ErrConflict, customer, e.BusinessAddress, current)
	}
	sess, err := c.store.OpenSession(ctx, &store.Session{
		Tenant: a.Tenant, ID: id, ServiceID: e.ServiceID, ServiceName: e.ServiceName, EntryID: e.EntryID,
		Conversation: toStore(ref), ConversationKey: key, State: store.StateActive, StartedAt: c.now(),
	})
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c.convs.put(a.Tenant, key, id)
	if err := c.pub.Emit(ctx, subjects.SessionStarted(a.Tenant), &sessionv1.SessionStarted{
		TenantId: a.Tenant, SessionId: id, ServiceId: e.ServiceID, EntryId: e.EntryID, Conversation: ref,
		StartedAt: timestamppb.New(sess.StartedAt), StartedByAgentId: a.ID,
	}, id+":started"); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// On the agent's desk now, not when distribution's TaskAccepted is
	// handled (the event may arrive before the session opened and be
	// redelivered later; assigning twice changes nothing).
	if err := c.assigned(ctx, &distributionv1.TaskAccepted{
		TenantId: a.Tenant, TaskId: task.GetTaskId(), SessionId: id, ServiceId: e.ServiceID, AgentId: a.ID, AcceptedAt: timestamppb.New(sess.StartedAt),
	}); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if sess.State != store.StateActive {
		return "", "", fmt.Errorf("%w: session %s has ended", ErrConflict, id)
	}
	msgID, err := c.emitRequest(ctx, a, sess, clientMsgID, r)
	if err != nil {
		return "", "", err
	}
	return id, msgID, nil
}
