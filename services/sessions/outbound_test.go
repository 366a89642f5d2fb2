package sessions_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// fakeOutbound answers contact states set by the test, per customer.
type fakeOutbound struct {
	outboundv1.UnimplementedOutboundServiceServer
	mu     sync.Mutex
	states map[string]*outboundv1.ContactState
}

func (f *fakeOutbound) set(customer string, st *outboundv1.ContactState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[customer] = st
}

func (f *fakeOutbound) GetContactState(_ context.Context, r *outboundv1.GetContactStateRequest) (*outboundv1.GetContactStateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.states[r.GetConversation().GetCustomerAddress()]
	if st == nil {
		st = &outboundv1.ContactState{}
	}
	return &outboundv1.GetContactStateResponse{State: st}, nil
}

// assign opens a session for customer and hands it to alice.
func (h *harness) assign(t *testing.T, alice *agentclient.Conn, msgSID, customer string, ch messagingv1.Channel) (string, agentclient.Frame) {
	t.Helper()
	ctx := ctxT(t)
	ev := inbound(msgSID, customer, "hello")
	ev.Conversation.Channel = ch
	before := len(sessionIDs(t, h))
	h.publish(t, subjects.ChatMessageReceived("acme"), ev, msgSID)
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == before+1 })
	sid := sessionIDs(t, h)[before]
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-" + sid, SessionId: sid, AgentId: "alice", OfferId: "of-" + sid, AcceptedAt: timestamppb.Now()}, "acc-"+sid)
	f, err := alice.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == sid })
	if err != nil {
		t.Fatal(err)
	}
	return sid, f
}

func outboundRequests(t *testing.T, h *harness) []*outboundv1.OutboundMessageRequested {
	var out []*outboundv1.OutboundMessageRequested
	for _, m := range h.streamEvents(t, subjects.StreamOutbound, subjects.OutboundRequested("acme")) {
		var r outboundv1.OutboundMessageRequested
		_ = proto.Unmarshal(m.Data, &r)
		out = append(out, &r)
	}
	return out
}

// The console learns before typing that the customer opted out; a reply is
// refused with opted_out; START (a contact update) is pushed live and
// replies go again.
func TestOptOutShownAndEnforced(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	const customer = "+15550009001"
	h.out.set(customer, &outboundv1.ContactState{OptedOut: true, ConsentSource: "keyword:STOP"})
	sid, assigned := h.assign(t, alice, "SM9001", customer, messagingv1.Channel_CHANNEL_SMS)
	var view struct {
		Compliance struct {
			OptedOut bool   `json:"opted_out"`
			Blocked  string `json:"blocked"`
			Message  string `json:"message"`
		} `json:"compliance"`
	}
	if err := assigned.Decode(&view); err != nil {
		t.Fatal(err)
	}
	if !view.Compliance.OptedOut || view.Compliance.Blocked != "opted_out" || view.Compliance.Message == "" {
		t.Errorf("assigned session compliance = %+v, want opted out and blocked", view.Compliance)
	}
	_, err := alice.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "hello?", "client_msg_id": "m1"})
	if !agentclient.IsCode(err, "opted_out") {
		t.Fatalf("send to an opted-out customer: %v, want opted_out", err)
	}
	if n := len(outboundRequests(t, h)); n != 0 {
		t.Errorf("%d outbound requests after a refused send, want 0", n)
	}

	// The customer texts START: outbound-sender announces it.
	h.out.set(customer, &outboundv1.ContactState{OptedOut: false, ConsentSource: "keyword:START"})
	h.publish(t, subjects.OutboundContactUpdated("acme"), &outboundv1.OutboundContactUpdated{
		TenantId: "acme", Conversation: inbound("", customer, "").GetConversation(),
		State: &outboundv1.ContactState{ConsentSource: "keyword:START"}, OccurredAt: timestamppb.Now(),
	}, "contact-9001")
	f, err := alice.WaitFor(ctx, "session.compliance", func(f agentclient.Frame) bool { return f.Field("session_id") == sid })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(f.Data), `"blocked"`) {
		t.Errorf("compliance after START = %s, want nothing blocked", f.Data)
	}
	if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "welcome back", "client_msg_id": "m2"}); err != nil {
		t.Fatalf("send after START: %v", err)
	}
}

// Free-form WhatsApp replies outside the 24-hour window are refused with
// window_closed; inside it they go.
func TestWhatsAppWindowShownAndEnforced(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	const customer = "whatsapp:+15550009002"
	h.out.set(customer, &outboundv1.ContactState{WindowApplies: true, WindowOpen: false})
	sid, assigned := h.assign(t, alice, "SM9002", customer, messagingv1.Channel_CHANNEL_WHATSAPP)
	if !strings.Contains(string(assigned.Data), `"blocked":"window_closed"`) {
		t.Errorf("assigned session = %s, want the window shown closed", assigned.Data)
	}
	if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "hi", "client_msg_id": "w1"}); !agentclient.IsCode(err, "window_closed") {
		t.Fatalf("send outside the window: %v, want window_closed", err)
	}
	h.out.set(customer, &outboundv1.ContactState{WindowApplies: true, WindowOpen: true, WindowExpiresAt: timestamppb.Now()})
	if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "hi", "client_msg_id": "w2"}); err != nil {
		t.Fatalf("send inside the window: %v", err)
	}
}

// A reply's status follows outbound-sender's events; a failed one can be
// resent once as a new message linked to it; others cannot.
func TestStatusAndResend(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	sid, _ := h.assign(t, alice, "SM9003", "+15550009003", messagingv1.Channel_CHANNEL_SMS)
	ack, err := alice.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "your code is 1234", "client_msg_id": "r1"})
	if err != nil {
		t.Fatal(err)
	}
	orig := ack.Field("message_id")
	if _, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), orig) }); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Request(ctx, "message.resend", map[string]string{"session_id": sid, "message_id": orig, "client_msg_id": "x1"}); !agentclient.IsCode(err, "conflict") {
		t.Errorf("resend of a pending message: %v, want conflict", err)
	}
	h.publish(t, subjects.OutboundSent("acme"), &outboundv1.OutboundMessageSent{TenantId: "acme", RequestId: orig, SessionId: sid, TwilioSid: "SM1", Status: messagingv1.DeliveryStatus_DELIVERY_STATUS_QUEUED}, orig+":sent")
	h.publish(t, subjects.OutboundDeliveryUpdated("acme"), &outboundv1.OutboundDeliveryUpdated{TenantId: "acme", RequestId: orig, SessionId: sid, TwilioSid: "SM1",
		Status: messagingv1.DeliveryStatus_DELIVERY_STATUS_UNDELIVERED, ErrorCode: 30003, ErrorMessage: "Unreachable destination handset"}, orig+":undelivered")
	f, err := alice.WaitFor(ctx, "message.status", func(f agentclient.Frame) bool {
		return f.Field("message_id") == orig && f.Field("status") == "undelivered"
	})
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		ErrorCode int    `json:"error_code"`
		Reason    string `json:"reason"`
	}
	_ = f.Decode(&st)
	if st.ErrorCode != 30003 || st.Reason != "twilio" {
		t.Errorf("status frame = %s, want 30003 from twilio", f.Data)
	}
	ack, err = alice.Request(ctx, "message.resend", map[string]string{"session_id": sid, "message_id": orig, "client_msg_id": "x2"})
	if err != nil {
		t.Fatal(err)
	}
	resent := ack.Field("message_id")
	// The same resend frame again (a client retry) is one request.
	if _, err := alice.Request(ctx, "message.resend", map[string]string{"session_id": sid, "message_id": orig, "client_msg_id": "x2"}); err != nil {
		t.Fatal(err)
	}
	added, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), `"id":"`+resent+`"`) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(added.Data), `"resend_of":"`+orig+`"`) {
		t.Errorf("resent message = %s, want resend_of %s", added.Data, orig)
	}
	var resends []*outboundv1.OutboundMessageRequested
	for _, r := range outboundRequests(t, h) {
		if r.GetResendOf() != "" {
			resends = append(resends, r)
		}
	}
	if len(resends) != 1 || resends[0].GetResendOf() != orig || resends[0].GetBody() != "your code is 1234" || resends[0].GetRequestId() != resent {
		t.Errorf("resend requests = %v, want one repeating %s", resends, orig)
	}
	if _, err := alice.Request(ctx, "message.resend", map[string]string{"session_id": sid, "message_id": "SM9003", "client_msg_id": "x3"}); !agentclient.IsCode(err, "conflict") {
		t.Errorf("resend of the customer's message: %v, want conflict", err)
	}
	if _, err := alice.Request(ctx, "message.resend", map[string]string{"session_id": sid, "message_id": "nope", "client_msg_id": "x4"}); !agentclient.IsCode(err, "not_found") {
		t.Errorf("resend of an unknown message: %v, want not_found", err)
	}
}

// message.count answers with the same segment numbers outbound-sender
// paces by (pkg/segments).
func TestMessageCount(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	type count struct {
		Encoding  string `json:"encoding"`
		Segments  int    `json:"segments"`
		Remaining int    `json:"remaining"`
	}
	tests := []struct {
		body string
		want count
	}{
		{"", count{"GSM-7", 0, 160}},
		{strings.Repeat("1", 161), count{"GSM-7", 2, 145}},
		{"😜" + strings.Repeat("1", 69), count{"UCS-2", 2, 63}},
	}
	for _, tt := range tests {
		ack, err := alice.Request(ctx, "message.count", map[string]string{"body": tt.body})
		if err != nil {
			t.Fatal(err)
		}
		var got count
		if err := ack.Decode(&got); err != nil || got != tt.want {
			t.Errorf("count of %q = %s, want %+v", tt.body, ack.Data, tt.want)
		}
	}
}
