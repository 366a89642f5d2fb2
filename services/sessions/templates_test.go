package sessions_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

const (
	orderTemplate = "HX000000000000000000000000000000a1"
	otherTemplate = "HX000000000000000000000000000000ff"
)

// ListTemplates answers acme's entry e1 with one template: {{1}} defaults
// to customer_name, {{2}} has no default.
func (f *fakeOutbound) ListTemplates(_ context.Context, r *outboundv1.ListTemplatesRequest) (*outboundv1.ListTemplatesResponse, error) {
	if r.GetTenantId() != "acme" || r.GetEntryId() != "e1" {
		return nil, status.Error(codes.NotFound, "no such entry")
	}
	return &outboundv1.ListTemplatesResponse{Templates: []*outboundv1.Template{{
		Sid: orderTemplate, FriendlyName: "order_update", Language: "en", ContentType: "twilio/text", Types: []string{"twilio/text"},
		Body:      "Hi {{1}}, your order {{2}} has shipped.",
		Variables: []*outboundv1.TemplateVariable{{Name: "1", DefaultValue: "customer_name"}, {Name: "2"}},
	}}}, nil
}

// A WhatsApp chat whose window has closed lists the connector's templates
// and sends one outside the window: the request carries the content sid,
// the variables and the filled-in text; a failed template is resent as the
// same template. Every malformed or impossible template send is refused
// with a code naming the field, and nothing is requested.
func TestTemplateSend(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	const customer = "whatsapp:+15550009101"
	h.out.set(customer, &outboundv1.ContactState{WindowApplies: true, WindowOpen: false})
	sid, _ := h.assign(t, alice, "SM9101", customer, messagingv1.Channel_CHANNEL_WHATSAPP)

	ack, err := alice.Request(ctx, "template.list", map[string]string{"session_id": sid})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ack.Data), `"sid":"`+orderTemplate+`"`) || !strings.Contains(string(ack.Data), `"default":"customer_name"`) {
		t.Errorf("template.list = %s", ack.Data)
	}

	send := func(data map[string]any) (agentclient.Frame, error) {
		return alice.Request(ctx, "message.send", data)
	}
	refusals := []struct {
		name  string
		data  map[string]any
		code  string
		words string
	}{
		{"malformed content_sid", map[string]any{"content_sid": "HX12", "content_variables": map[string]string{"2": "DC-1"}}, "invalid", "content_sid"},
		{"variables without a template", map[string]any{"body": "hi", "content_variables": map[string]string{"2": "DC-1"}}, "invalid", "content_variables needs content_sid"},
		{"body with a template", map[string]any{"body": "hi", "content_sid": orderTemplate}, "invalid", "body must be empty"},
		{"variable not a string", map[string]any{"content_sid": orderTemplate, "content_variables": map[string]int{"2": 5}}, "invalid", "content_variables"},
		{"empty variable", map[string]any{"content_sid": orderTemplate, "content_variables": map[string]string{"2": " "}}, "invalid", "content_variables.2 is empty"},
		{"new line in a variable", map[string]any{"content_sid": orderTemplate, "content_variables": map[string]string{"2": "a\nb"}}, "invalid", "content_variables.2"},
		{"bad variable name", map[string]any{"content_sid": orderTemplate, "content_variables": map[string]string{"a b": "x"}}, "invalid", "not a variable name"},
		{"too long a variable", map[string]any{"content_sid": orderTemplate, "content_variables": map[string]string{"2": strings.Repeat("x", 1025)}}, "invalid", "at most 1024"},
		{"unknown variable", map[string]any{"content_sid": orderTemplate, "content_variables": map[string]string{"2": "DC-1", "9": "x"}}, "invalid", "content_variables.9 is not a variable"},
		{"required variable missing", map[string]any{"content_sid": orderTemplate, "content_variables": map[string]string{"1": "Ann"}}, "invalid", "content_variables.2 is required"},
		{"unknown template", map[string]any{"content_sid": otherTemplate}, "not_found", otherTemplate},
		{"no client_msg_id", map[string]any{"content_sid": orderTemplate, "client_msg_id": ""}, "invalid", "client_msg_id"},
	}
	for i, r := range refusals {
		r.data["session_id"] = sid
		if _, ok := r.data["client_msg_id"]; !ok {
			r.data["client_msg_id"] = "bad" + string(rune('a'+i))
		}
		_, err := send(r.data)
		if !agentclient.IsCode(err, r.code) || !strings.Contains(err.Error(), r.words) {
			t.Errorf("%s: %v, want %s naming %q", r.name, err, r.code, r.words)
		}
	}
	if n := len(outboundRequests(t, h)); n != 0 {
		t.Fatalf("%d requests after refused sends, want none", n)
	}

	// Outside the window: free text is refused, the template goes.
	if _, err := send(map[string]any{"session_id": sid, "body": "hi", "client_msg_id": "free"}); !agentclient.IsCode(err, "window_closed") {
		t.Fatalf("free text outside the window: %v, want window_closed", err)
	}
	ack, err = send(map[string]any{"session_id": sid, "content_sid": orderTemplate, "content_variables": map[string]string{"1": "Ann", "2": "DC-42"}, "client_msg_id": "tpl1"})
	if err != nil {
		t.Fatalf("template outside the window: %v", err)
	}
	id := ack.Field("message_id")
	reqs := outboundRequests(t, h)
	if len(reqs) != 1 || reqs[0].GetContentSid() != orderTemplate || reqs[0].GetContentVariables() != `{"1":"Ann","2":"DC-42"}` ||
		reqs[0].GetBody() != "Hi Ann, your order DC-42 has shipped." || reqs[0].GetRequestId() != id {
		t.Fatalf("requests = %v, want the template with its variables and text", reqs)
	}
	added, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), `"id":"`+id+`"`) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(added.Data), `"content_sid":"`+orderTemplate+`"`) {
		t.Errorf("message.added = %s, want the template named", added.Data)
	}

	// Undelivered: the resend is the same template again.
	h.publish(t, subjects.OutboundFailed("acme"), &outboundv1.OutboundMessageFailed{TenantId: "acme", RequestId: id, SessionId: sid, ErrorCode: 30003,
		ErrorMessage: "Unreachable destination handset", Reason: outboundv1.FailureReason_FAILURE_REASON_TWILIO}, id+":failed")
	if _, err := alice.WaitFor(ctx, "message.status", func(f agentclient.Frame) bool { return f.Field("message_id") == id && f.Field("status") == "failed" }); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Request(ctx, "message.resend", map[string]string{"session_id": sid, "message_id": id, "client_msg_id": "tpl1-again"}); err != nil {
		t.Fatalf("resend of a template: %v", err)
	}
	reqs = outboundRequests(t, h)
	if len(reqs) != 2 || reqs[1].GetContentSid() != orderTemplate || reqs[1].GetContentVariables() != reqs[0].GetContentVariables() || reqs[1].GetResendOf() != id {
		t.Errorf("resend request = %v, want the same template resending %s", reqs[len(reqs)-1], id)
	}

	// The customer opted out: a template is refused too.
	h.out.set(customer, &outboundv1.ContactState{OptedOut: true, WindowApplies: true})
	if _, err := send(map[string]any{"session_id": sid, "content_sid": orderTemplate, "content_variables": map[string]string{"2": "DC-43"}, "client_msg_id": "tpl2"}); !agentclient.IsCode(err, "opted_out") {
		t.Errorf("template to an opted-out customer: %v, want opted_out", err)
	}

	// Templates are for WhatsApp chats, and for the agent's own.
	sms, _ := h.assign(t, alice, "SM9102", "+15550009102", messagingv1.Channel_CHANNEL_SMS)
	if _, err := alice.Request(ctx, "template.list", map[string]string{"session_id": sms}); !agentclient.IsCode(err, "conflict") {
		t.Errorf("template.list on an SMS chat: %v, want conflict", err)
	}
	if _, err := send(map[string]any{"session_id": sms, "content_sid": orderTemplate, "content_variables": map[string]string{"2": "DC-1"}, "client_msg_id": "tpl3"}); !agentclient.IsCode(err, "conflict") {
		t.Errorf("template on an SMS chat: %v, want conflict", err)
	}
	bob := h.agent(t, "bob@acme.example")
	if _, err := bob.Request(ctx, "template.list", map[string]string{"session_id": sid}); !agentclient.IsCode(err, "forbidden") {
		t.Errorf("bob lists templates in alice's chat: %v, want forbidden", err)
	}
}
