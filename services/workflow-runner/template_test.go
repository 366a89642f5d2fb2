package workflowrunner_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

var templateFlow = &workflowdef.Definition{Start: "hello", Activities: []workflowdef.Activity{
	{ID: "hello", Type: "message", Params: map[string]any{"text": "Hello ${customer_name}.", "text_sms": "Hi ${customer_name}, reply STOP to opt out.",
		"content_sid": "HX0123456789abcdef0123456789abcdef", "content_variables": map[string]any{"1": "${customer_name}"}}, Next: map[string]string{"next": "queue"}},
	{ID: "queue", Type: "queue_task"},
}}

// The service asks outbound-sender (over gRPC, OutboundConn) about the
// WhatsApp window: a WhatsApp customer outside it gets the template, an
// SMS customer the SMS text.
func TestTemplateOutsideTheWindow(t *testing.T) {
	if err := workflowdef.Validate(templateFlow); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := newHarness(t, &flowConfig{def: templateFlow, svc: &configv1.Service{Name: "Desk"}}, 4)
	stop := h.run()
	defer stop()
	for session, conv := range map[string]*messagingv1.ConversationRef{
		"ss_wa":  {Channel: messagingv1.Channel_CHANNEL_WHATSAPP, CustomerAddress: "whatsapp:+15550100", BusinessAddress: "whatsapp:+15550199"},
		"ss_sms": {Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+15550101", BusinessAddress: "+15550199"},
	} {
		if _, err := h.b.Publish(ctx, subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: session,
			ServiceId: "desk", Conversation: conv, CustomerName: "Dana", StartedAt: timestamppb.Now()}, bus.MsgID(session)); err != nil {
			t.Fatal(err)
		}
	}
	sent := func() map[string]*outboundv1.OutboundMessageRequested {
		msgs, _ := messages(t, h.b, subjects.StreamOutbound, subjects.OutboundRequested("acme"), func() *outboundv1.OutboundMessageRequested { return &outboundv1.OutboundMessageRequested{} })
		out := map[string]*outboundv1.OutboundMessageRequested{}
		for _, m := range msgs {
			out[m.GetSessionId()] = m
		}
		return out
	}
	waitFor(t, "both messages", func() bool { return len(sent()) == 2 })
	got := sent()
	if wa := got["ss_wa"]; wa.GetContentSid() != "HX0123456789abcdef0123456789abcdef" || wa.GetContentVariables() != `{"1":"Dana"}` || wa.GetBody() != "Hello Dana." {
		t.Errorf("WhatsApp outside the window got %v, want the template with its variable (and the text for the transcript)", wa)
	}
	if sms := got["ss_sms"]; sms.GetContentSid() != "" || sms.GetBody() != "Hi Dana, reply STOP to opt out." {
		t.Errorf("SMS got %v, want the SMS text", sms)
	}
}
