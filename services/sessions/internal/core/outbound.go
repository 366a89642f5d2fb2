package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/segments"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// Errors for replies outbound-sender would refuse; the gateway maps them
// to protocol codes.
var (
	ErrOptedOut     = errors.New("opted out")
	ErrWindowClosed = errors.New("whatsapp window closed")
)

// complianceTimeout bounds one question to outbound-sender: the console
// must not wait on it.
const complianceTimeout = 2 * time.Second

// compliance asks outbound-sender what may be sent to the session's
// customer; nil when it cannot tell (the reply is then checked by
// outbound-sender alone).
func (c *Core) compliance(ctx context.Context, sess *store.Session) *protocol.Compliance {
	if c.outbound == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, complianceTimeout)
	defer cancel()
	res, err := c.outbound.GetContactState(cctx, &outboundv1.GetContactStateRequest{TenantId: sess.Tenant, Conversation: FromStore(sess.Conversation)})
	if err != nil {
		c.log.DebugContext(ctx, "contact state unavailable", "tenant", sess.Tenant, "session_id", sess.ID, "err", err)
		return nil
	}
	return ComplianceView(res.GetState())
}

// ComplianceView turns outbound-sender's contact state into what the
// console shows.
func ComplianceView(st *outboundv1.ContactState) *protocol.Compliance {
	v := &protocol.Compliance{
		OptedOut: st.GetOptedOut(), ConsentSource: st.GetConsentSource(),
		WindowApplies: st.GetWindowApplies(), WindowOpen: st.GetWindowOpen(),
	}
	if st.GetWindowExpiresAt() != nil {
		t := st.GetWindowExpiresAt().AsTime()
		v.WindowExpiresAt = &t
	}
	switch {
	case v.OptedOut:
		v.Blocked = protocol.CodeOptedOut
		v.Message = "The customer opted out (replied STOP). Nothing can be sent until they reply START."
		if v.ConsentSource == "twilio:21610" {
			v.Message = "The customer is on Twilio's opt-out list for this number (21610). Nothing can be sent until they reply START."
		}
	case v.WindowApplies && !v.WindowOpen:
		v.Blocked = protocol.CodeWindowClosed
		v.Message = "The WhatsApp 24-hour window is closed: the customer has not written in the last 24 hours. Free-form replies are not allowed; a template must be sent."
	}
	return v
}

// checkReply refuses a reply outbound-sender would refuse. When
// outbound-sender cannot be asked the reply goes on: it enforces the rules
// itself and reports a refusal as the message's failure.
// A template (Twilio's Content API) may go outside the WhatsApp window.
func (c *Core) checkReply(ctx context.Context, sess *store.Session, template bool) error {
	v := c.compliance(ctx, sess)
	if v == nil {
		return nil
	}
	switch {
	case v.Blocked == protocol.CodeOptedOut:
		return fmt.Errorf("%w: %s", ErrOptedOut, v.Message)
	case v.Blocked == protocol.CodeWindowClosed && !template:
		return fmt.Errorf("%w: %s", ErrWindowClosed, v.Message)
	}
	return nil
}

// request publishes an agent's outbound request for an active session.
func (c *Core) request(ctx context.Context, a Agent, sess *store.Session, clientMsgID, body string, media []string, resendOf string) (string, error) {
	return c.emitRequest(ctx, a, sess, clientMsgID, &outboundv1.OutboundMessageRequested{Body: body, MediaUrls: media, ResendOf: resendOf})
}

// emitRequest publishes r (its content: body, media, template, resend_of)
// as the agent's outbound request for an active session.
func (c *Core) emitRequest(ctx context.Context, a Agent, sess *store.Session, clientMsgID string, r *outboundv1.OutboundMessageRequested) (string, error) {
	if sess.State != store.StateActive {
		return "", fmt.Errorf("%w: session %s has ended", ErrConflict, sess.ID)
	}
	ctx, span := c.inSessionTrace(ctx, sess, "session reply")
	defer span.End()
	if err := c.checkReply(ctx, sess, r.GetContentSid() != ""); err != nil {
		return "", err
	}
	requestID := sess.ID + "-" + clientMsgID
	r.TenantId, r.RequestId, r.SessionId, r.EntryId = a.Tenant, requestID, sess.ID, sess.EntryID
	r.Conversation, r.Origin, r.AgentId, r.Author = FromStore(sess.Conversation), outboundv1.Origin_ORIGIN_AGENT, a.ID, a.DisplayName
	r.RequestedAt = timestamppb.New(c.now())
	if err := c.pub.Emit(ctx, subjects.OutboundRequested(a.Tenant), r, requestID); err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return requestID, nil
}

func validClientMsgID(id string) error {
	if id == "" || len(id) > 64 || strings.ContainsAny(id, " \t\r\n/") {
		return fmt.Errorf("%w: client_msg_id must be 1-64 characters without spaces or slashes", ErrInvalid)
	}
	return nil
}

// Resend sends a failed outbound message of the agent's session again, as
// a new message linked to the original (outbound-sender refuses to resend
// anything that did not fail, so nobody is texted twice).
func (c *Core) Resend(ctx context.Context, a Agent, sessionID, messageID, clientMsgID string) (string, error) {
	if err := validClientMsgID(clientMsgID); err != nil {
		return "", err
	}
	if messageID == "" {
		return "", fmt.Errorf("%w: message_id is required", ErrInvalid)
	}
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return "", err
	}
	if sess.Parked {
		return "", ErrParked
	}
	orig, err := c.store.Message(ctx, a.Tenant, sessionID, messageID)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: message %s", ErrNotFound, messageID)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if orig.Direction != "outbound" || (orig.Status != "failed" && orig.Status != "undelivered") {
		return "", fmt.Errorf("%w: only a failed outbound message can be resent (this one is %s)", ErrConflict, orDefault(orig.Status, orig.Direction))
	}
	if why := Unresendable(orig.ErrorCode, orig.Reason); why != "" {
		return "", fmt.Errorf("%w: %s", ErrConflict, why)
	}
	if orig.ContentSID != "" { // a template goes again as the same template
		return c.emitRequest(ctx, a, sess, clientMsgID, &outboundv1.OutboundMessageRequested{
			Body: orig.Body, ContentSid: orig.ContentSID, ContentVariables: orig.ContentVariables, ResendOf: orig.ID,
		})
	}
	var media []string
	for _, m := range orig.Media {
		media = append(media, m.URL)
	}
	return c.request(ctx, a, sess, clientMsgID, orig.Body, media, orig.ID)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// contactUpdated shows a change of consent or WhatsApp window to the agent
// of the conversation's active session.
func (c *Core) contactUpdated(ctx context.Context, ev *outboundv1.OutboundContactUpdated) error {
	tenant, key := ev.GetTenantId(), ConversationKey(ev.GetConversation())
	// Nearly every update follows a customer message this replica has just
	// handled, so the conversation's session is remembered; only one it
	// has not seen costs the read of the conversation's pointer.
	sess, err := c.cachedSession(ctx, tenant, key)
	if err != nil {
		return err
	}
	if sess == nil {
		id, err := c.store.ActiveSession(ctx, tenant, key)
		if err != nil || id == "" {
			return err
		}
		if sess, err = c.store.Session(ctx, tenant, id); errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
	}
	if sess.AgentID == "" {
		return nil // shown when the session is assigned
	}
	c.push.Push(ctx, sess.Tenant, sess.AgentID, protocol.Frame(protocol.TypeSessionCompliance, map[string]any{
		"session_id": sess.ID, "compliance": ComplianceView(ev.GetState()),
	}))
	return nil
}

// Count is what a draft costs in SMS segments (pkg/segments, the same
// counter outbound-sender paces senders with).
func Count(body string) (segments.Result, error) {
	if n := len([]rune(body)); n > MaxBodyRunes*2 {
		return segments.Result{}, fmt.Errorf("%w: draft has %d characters", ErrInvalid, n)
	}
	return segments.Count(body), nil
}

// Unresendable says why sending a failed message again cannot help (the
// same refusal would follow), or "" when a resend may go through.
func Unresendable(code int32, reason string) string {
	switch {
	case code == 63016 || reason == "whatsapp_window_closed":
		return "the WhatsApp 24-hour window is closed: sending the same text again would fail the same way; a template must be sent"
	case code == 21610 || reason == "opted_out":
		return "the customer opted out (STOP): nothing can be sent until they reply START"
	}
	return ""
}
