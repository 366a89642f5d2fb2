package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

// Contacts tells what outbound-sender allows for a customer
// (outboundv1.OutboundServiceClient): the runner asks it whether a
// WhatsApp customer's 24-hour window is open before a Message with a
// template.
type Contacts interface {
	GetContactState(ctx context.Context, in *outboundv1.GetContactStateRequest, opts ...grpc.CallOption) (*outboundv1.GetContactStateResponse, error)
}

// contactTimeout bounds one question to outbound-sender; an outage is
// retried with the event.
const contactTimeout = 5 * time.Second

// maxTemplateValue bounds one template variable's value once filled in.
const maxTemplateValue = 1024

// channelText is the Message's text for the session's channel: text_sms
// or text_whatsapp when set, else text.
func channelText(st *State, a *workflowdef.Activity) string {
	name := ""
	switch st.started().GetConversation().GetChannel() {
	case messagingv1.Channel_CHANNEL_SMS:
		name = "text_sms"
	case messagingv1.Channel_CHANNEL_WHATSAPP:
		name = "text_whatsapp"
	}
	if s := a.StringParam(name); name != "" && strings.TrimSpace(s) != "" {
		return s
	}
	return a.StringParam("text")
}

// sendMessage runs a Message activity: the channel's text, or on
// WhatsApp with a template, the template when the customer's window is
// closed (outbound-sender refuses free text then, and allows templates).
func (r *Runner) sendMessage(ctx context.Context, st *State, a *workflowdef.Activity) error {
	text := r.expand(st, channelText(st, a))
	sid := a.StringParam("content_sid")
	if sid == "" || st.started().GetConversation().GetChannel() != messagingv1.Channel_CHANNEL_WHATSAPP {
		return r.message(ctx, st, a, "", text)
	}
	closed, err := r.windowClosed(ctx, st)
	if err != nil || !closed {
		if err != nil {
			return err
		}
		return r.message(ctx, st, a, "", text)
	}
	vars, err := r.templateVariables(st, a)
	if err != nil {
		return failf(a.Type, "%v", err)
	}
	id := st.SessionID + "-" + a.ID + visitSuffix(st.Visits[a.ID])
	start := st.started()
	// Body is what the transcript shows; outbound-sender sends only the
	// template to Twilio.
	return r.emit(ctx, st, subjects.OutboundRequested(st.Tenant), &outboundv1.OutboundMessageRequested{
		TenantId: st.Tenant, RequestId: id, SessionId: st.SessionID, EntryId: start.GetEntryId(),
		Conversation: start.GetConversation(), Body: text, ContentSid: sid, ContentVariables: vars,
		Origin: outboundv1.Origin_ORIGIN_WORKFLOW, Author: st.ServiceName, RequestedAt: timestamppb.New(r.now()),
	}, id)
}

// windowClosed asks outbound-sender whether the session's WhatsApp
// customer is outside the 24-hour window. Without an outbound-sender
// configured the window counts as open: the text is sent and
// outbound-sender refuses it if it is not.
func (r *Runner) windowClosed(ctx context.Context, st *State) (bool, error) {
	if r.contacts == nil {
		return false, nil
	}
	cctx, cancel := context.WithTimeout(ctx, contactTimeout)
	defer cancel()
	res, err := r.contacts.GetContactState(cctx, &outboundv1.GetContactStateRequest{TenantId: st.Tenant, Conversation: st.started().GetConversation()})
	if err != nil {
		return false, fmt.Errorf("ask outbound-sender about the WhatsApp window: %w", err)
	}
	cs := res.GetState()
	return cs.GetWindowApplies() && !cs.GetWindowOpen(), nil
}

// templateVariables fills the template's variables in and encodes them
// as the JSON object Twilio's ContentVariables takes. WhatsApp refuses
// empty values and line breaks in them: line breaks and tabs become
// spaces, an empty value "-", and a value is cut at maxTemplateValue
// characters.
func (r *Runner) templateVariables(st *State, a *workflowdef.Activity) (string, error) {
	vars := a.StringMapParam("content_variables")
	if len(vars) == 0 {
		return "", nil
	}
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		v = strings.Join(strings.Fields(r.expand(st, v)), " ")
		if v == "" {
			v = "-"
		}
		if rs := []rune(v); len(rs) > maxTemplateValue {
			v = string(rs[:maxTemplateValue])
		}
		out[k] = v
	}
	data, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("encode template variables: %w", err)
	}
	return string(data), nil
}
