package sessions_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

const waBusiness = "whatsapp:+12025550100"

// ListEntries: acme's e1 is a WhatsApp entry of the IM service support;
// the others cannot start a conversation (SMS, disabled, Conversations
// path, no service).
func (fakeConfig) ListEntries(_ context.Context, r *configv1.ListEntriesRequest) (*configv1.ListEntriesResponse, error) {
	if r.GetTenantId() != "acme" {
		return &configv1.ListEntriesResponse{}, nil
	}
	support := &configv1.Service{Id: "support", Name: "Support", ImEnabled: true}
	wa, msg := messagingv1.Channel_CHANNEL_WHATSAPP, messagingv1.TwilioPath_TWILIO_PATH_MESSAGING
	return &configv1.ListEntriesResponse{Entries: []*configv1.EntryRoute{
		{Entry: &configv1.MessagingEntry{Id: "e1", Name: "WhatsApp EU", Channel: wa, Path: msg, BusinessAddresses: []string{waBusiness}}, Service: support},
		{Entry: &configv1.MessagingEntry{Id: "e2", Name: "SMS", Channel: messagingv1.Channel_CHANNEL_SMS, Path: msg, BusinessAddresses: []string{"+12025550101"}}, Service: support},
		{Entry: &configv1.MessagingEntry{Id: "e3", Name: "Old", Channel: wa, Path: msg, BusinessAddresses: []string{"whatsapp:+12025550102"}, Disabled: true}, Service: support},
		{Entry: &configv1.MessagingEntry{Id: "e4", Name: "Conv", Channel: wa, Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, ConversationsServiceSid: "IS00000000000000000000000000000001"}, Service: support},
		{Entry: &configv1.MessagingEntry{Id: "e5", Name: "Unassigned", Channel: wa, Path: msg, BusinessAddresses: []string{"whatsapp:+12025550103"}}},
	}}, nil
}

var startedTasks struct {
	sync.Mutex
	reqs []*distributionv1.StartAgentTaskRequest
}

// StartAgentTask: bob is at capacity; anyone else gets the session's task.
func (f *fakeDistribution) StartAgentTask(_ context.Context, r *distributionv1.StartAgentTaskRequest) (*distributionv1.StartAgentTaskResponse, error) {
	if r.GetAgentId() == "bob" {
		return nil, status.Error(codes.ResourceExhausted, "agent bob is at capacity (2 of 2 tasks)")
	}
	startedTasks.Lock()
	defer startedTasks.Unlock()
	startedTasks.reqs = append(startedTasks.reqs, r)
	return &distributionv1.StartAgentTaskResponse{TaskId: "tk-" + r.GetSessionId()}, nil
}

// An agent starts a WhatsApp conversation with a template: only the
// entries that can are listed, every bad request is refused naming what
// was wrong with nothing opened, and the start opens a session that is the
// agent's (distribution's task for it, SessionStarted naming the agent),
// sends the template, is not opened twice when sent again, and takes the
// customer's answer.
func TestAgentStartsAWhatsAppConversation(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	const customer = "+15550009201"

	ack, err := alice.Request(ctx, "entries.list", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := string(ack.Data); !strings.Contains(d, `"entry_id":"e1"`) || !strings.Contains(d, `"service_name":"Support"`) ||
		strings.Contains(d, `"e2"`) || strings.Contains(d, `"e3"`) || strings.Contains(d, `"e4"`) || strings.Contains(d, `"e5"`) {
		t.Errorf("entries.list = %s, want e1 only", d)
	}
	ack, err = alice.Request(ctx, "template.list", map[string]string{"entry_id": "e1"})
	if err != nil || !strings.Contains(string(ack.Data), orderTemplate) {
		t.Errorf("template.list of e1 = %v, %v; want its templates", ack.Data, err)
	}
	if _, err := alice.Request(ctx, "template.list", map[string]string{"entry_id": "e2"}); !agentclient.IsCode(err, "not_found") {
		t.Errorf("template.list of an SMS entry: %v, want not_found", err)
	}

	good := func() map[string]any {
		return map[string]any{"entry_id": "e1", "customer": customer, "content_sid": orderTemplate,
			"content_variables": map[string]string{"1": "Ann", "2": "DC-7"}, "client_msg_id": "start-1"}
	}
	with := func(k string, v any) map[string]any { m := good(); m[k] = v; return m }
	h.out.set("whatsapp:+15550009209", &outboundv1.ContactState{OptedOut: true, WindowApplies: true})
	refusals := []struct {
		name  string
		who   *agentclient.Conn
		data  map[string]any
		code  string
		words string
	}{
		{"not a phone number", alice, with("customer", "0791234567"), "invalid", "E.164"},
		{"no entry", alice, with("entry_id", ""), "invalid", "entry_id is required"},
		{"an SMS entry", alice, with("entry_id", "e2"), "not_found", "e2"},
		{"a disabled entry", alice, with("entry_id", "e3"), "not_found", "e3"},
		{"a Conversations entry", alice, with("entry_id", "e4"), "not_found", "e4"},
		{"an entry without a service", alice, with("entry_id", "e5"), "not_found", "e5"},
		{"unknown template", alice, with("content_sid", otherTemplate), "not_found", otherTemplate},
		{"required variable missing", alice, with("content_variables", map[string]string{"1": "Ann"}), "invalid", "content_variables.2 is required"},
		{"no client_msg_id", alice, with("client_msg_id", ""), "invalid", "client_msg_id"},
		{"opted out", alice, with("customer", "+15550009209"), "opted_out", ""},
		{"agent at capacity", h.agent(t, "bob@acme.example"), good(), "conflict", "capacity"},
	}
	for _, r := range refusals {
		if _, err := r.who.Request(ctx, "conversation.start", r.data); !agentclient.IsCode(err, r.code) || !strings.Contains(err.Error(), r.words) {
			t.Errorf("%s: %v, want %s naming %q", r.name, err, r.code, r.words)
		}
	}
	if n, s := len(outboundRequests(t, h)), len(sessionIDs(t, h)); n != 0 || s != 0 {
		t.Fatalf("%d requests and %d sessions after refused starts, want none", n, s)
	}

	ack, err = alice.Request(ctx, "conversation.start", good())
	if err != nil {
		t.Fatal(err)
	}
	sid, mid := ack.Field("session_id"), ack.Field("message_id")
	startedTasks.Lock()
	if n := len(startedTasks.reqs); n != 1 || startedTasks.reqs[0].GetSessionId() != sid || startedTasks.reqs[0].GetAgentId() != "alice" || startedTasks.reqs[0].GetServiceId() != "support" {
		t.Errorf("StartAgentTask calls = %v, want one for %s by alice in support", startedTasks.reqs, sid)
	}
	startedTasks.Unlock()
	var started sessionv1.SessionStarted
	if evs := h.streamEvents(t, subjects.StreamSession, subjects.SessionStarted("acme")); len(evs) != 1 {
		t.Fatalf("%d sessions started, want 1", len(evs))
	} else if err := proto.Unmarshal(evs[0].Data, &started); err != nil {
		t.Fatal(err)
	}
	if started.GetSessionId() != sid || started.GetStartedByAgentId() != "alice" || started.GetFirstMessageSid() != "" ||
		started.GetConversation().GetCustomerAddress() != "whatsapp:"+customer || started.GetConversation().GetBusinessAddress() != waBusiness {
		t.Errorf("SessionStarted = %v, want %s started by alice with whatsapp:%s", &started, sid, customer)
	}
	reqs := outboundRequests(t, h)
	if len(reqs) != 1 || reqs[0].GetRequestId() != mid || reqs[0].GetContentSid() != orderTemplate || reqs[0].GetBody() != "Hi Ann, your order DC-7 has shipped." ||
		reqs[0].GetSessionId() != sid || reqs[0].GetAgentId() != "alice" || reqs[0].GetConversation().GetCustomerAddress() != "whatsapp:"+customer {
		t.Fatalf("requests = %v, want the template to the customer", reqs)
	}

	// Sent again (a dropped socket): the same session and message.
	again, err := alice.Request(ctx, "conversation.start", good())
	if err != nil || again.Field("session_id") != sid || again.Field("message_id") != mid {
		t.Errorf("start sent again = %v, %v; want %s and %s again", again.Data, err, sid, mid)
	}
	if n, s := len(outboundRequests(t, h)), len(sessionIDs(t, h)); n != 1 || s != 1 {
		t.Errorf("%d requests and %d sessions after the start was sent again, want 1 and 1", n, s)
	}
	// Another start to that customer while the chat is active names it.
	if _, err := alice.Request(ctx, "conversation.start", with("client_msg_id", "start-2")); !agentclient.IsCode(err, "conflict") || !strings.Contains(err.Error(), sid) {
		t.Errorf("a second conversation with the customer: %v, want conflict naming %s", err, sid)
	}

	// Distribution's acceptance puts the chat on alice's desk, with the
	// template in it; the customer's answer lands in it.
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-" + sid, SessionId: sid, ServiceId: "support", AgentId: "alice", AcceptedAt: timestamppb.Now()}, "acc-"+sid)
	if _, err := alice.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == sid }); err != nil {
		t.Fatal(err)
	}
	answer := inbound("SM9201", "whatsapp:"+customer, "yes please")
	answer.Conversation.Channel, answer.Conversation.BusinessAddress = messagingv1.Channel_CHANNEL_WHATSAPP, waBusiness
	h.publish(t, subjects.ChatMessageReceived("acme"), answer, "SM9201")
	if _, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool {
		return f.Field("session_id") == sid && strings.Contains(string(f.Data), "yes please")
	}); err != nil {
		t.Fatalf("the customer's answer: %v", err)
	}
	if s := len(sessionIDs(t, h)); s != 1 {
		t.Errorf("%d sessions after the customer answered, want 1", s)
	}
}
