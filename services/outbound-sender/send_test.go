package outboundsender_test

import (
	"testing"
	"time"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	outboundsender "github.com/switchboard-cc/switchboard/services/outbound-sender"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

const (
	delivered = messagingv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED
	failed    = messagingv1.DeliveryStatus_DELIVERY_STATUS_FAILED
)

// Each path sends once and the ledger follows the message to delivered:
// SMS and WhatsApp on Programmable Messaging (from the number, or through a
// Messaging Service), and SMS on Conversations.
func TestSendsOnEveryPathAndFollowsDelivery(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)

	const waCustomer = "whatsapp:+15550200002"
	h.customerSays(waCustomer, waNumber, "hi there") // opens the WhatsApp window
	conv := h.customerSays("+15550200003", convNumber, "hello")
	if conv.ConversationSID == "" {
		t.Fatalf("emulator did not autocreate a conversation: %+v", conv)
	}
	tests := []struct {
		name, customer, entry string
		conv                  *messagingv1.ConversationRef
		media                 []string
	}{
		{"sms from a number", "+15550200001", entrySMS, smsTo("+15550200001"), nil},
		{"mms with media", "+15550200001", entrySMS, smsTo("+15550200001"), []string{"https://example.com/a.jpg"}},
		{"whatsapp in the window", waCustomer, entryWA, waTo(waCustomer), nil},
		{"sms through a messaging service", "+15550200004", entryPool, &messagingv1.ConversationRef{
			Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING,
			CustomerAddress: "+15550200004", MessagingServiceSid: msgService}, nil},
		{"conversations", "+15550200003", entryConv, &messagingv1.ConversationRef{
			Channel: messagingv1.Channel_CHANNEL_SMS, Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS,
			CustomerAddress: "+15550200003", ChatServiceSid: chatService, ConversationSid: conv.ConversationSID}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			id := rid(t, "1")
			body := "Your order ships today (" + tt.name + ")"
			before := len(h.sentTo(tt.customer))
			h.request(&outboundv1.OutboundMessageRequested{RequestId: id, SessionId: "ss1", EntryId: tt.entry, Conversation: tt.conv,
				Body: body, MediaUrls: tt.media, Author: "Alice", Origin: outboundv1.Origin_ORIGIN_AGENT})
			sent := h.waitSent(id)
			if sent.GetTwilioSid() == "" || sent.GetAttempts() != 1 || sent.GetSessionId() != "ss1" {
				t.Errorf("sent event = %v, want a SID, one attempt and the session", sent)
			}
			// The sent report may arrive before the ledger has the message and
			// come back after delivered: wait for the whole timeline.
			d := h.waitDelivery(id, func(d *outboundv1.Delivery) bool {
				return d.GetStatus() == delivered && len(d.GetTimeline()) >= 3
			})
			if d.GetTwilioSid() != sent.GetTwilioSid() || len(d.GetTimeline()) < 3 {
				t.Errorf("ledger = %v, want the SID and a timeline to delivered", d)
			}
			waitEvent(t, h, subjects.KindOutboundDeliveryUpdate, func(e *outboundv1.OutboundDeliveryUpdated) bool {
				return e.GetRequestId() == id && e.GetStatus() == delivered
			})
			got := h.sentTo(tt.customer)
			if len(got)-before != 1 {
				t.Fatalf("customer got %d new messages, want 1", len(got)-before)
			}
			last := got[len(got)-1]
			if last.Body != body || len(last.Media) != len(tt.media) {
				t.Errorf("customer got %+v, want body %q with %d media", last, body, len(tt.media))
			}
		})
	}
	_ = ctx
}

// A redelivered request (JetStream redelivery, or a publisher retry after
// the dedupe window) is answered from the ledger: one message at Twilio.
func TestRedeliveredRequestIsSentOnce(t *testing.T) {
	h := start(t, options{})
	const customer = "+15550200010"
	id := rid(t, "1")
	req := &outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo(customer), Body: "once only"}
	h.request(req)
	h.waitSent(id)
	// Past JetStream's dedupe window the same request arrives again.
	h.publishRequest(req, id+"-again")
	h.publishRequest(req, id+"-and-again")
	// A marker request after the repeats: once it is sent, the repeats were handled.
	marker := rid(t, "marker")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: marker, EntryId: entrySMS, Conversation: smsTo(customer), Body: "marker"})
	h.waitSent(marker)
	if n := len(h.sentTo(customer)); n != 2 {
		t.Errorf("emulator holds %d messages to the customer, want 2 (the request once, the marker)", n)
	}
	if d := h.delivery(id); d.GetAttempts() != 1 {
		t.Errorf("ledger attempts = %d, want 1", d.GetAttempts())
	}
}

// 429 is retried with backoff, and the message goes out once.
func TestTooManyRequestsThenSuccess(t *testing.T) {
	h := start(t, options{func(c *outboundsender.Config) { c.Retries = 4 }, nil, false})
	ctx := timeout(t)
	if _, err := h.sim.InjectFault(ctx, simclient.Fault{Count: 2, PathPrefix: "/2010-04-01/", Method: "POST", Status: 429}); err != nil {
		t.Fatal(err)
	}
	const customer = "+15550200011"
	id := rid(t, "1")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo(customer), Body: "after a 429"})
	sent := h.waitSent(id)
	if sent.GetAttempts() != 3 {
		t.Errorf("attempts = %d, want 3 (two 429s, then accepted)", sent.GetAttempts())
	}
	if n := len(h.sentTo(customer)); n != 1 {
		t.Errorf("customer got %d messages, want 1", n)
	}
}

// A 5xx may hide a created message: the sender looks it up before retrying.
func TestServerErrorIsReconciledBeforeRetry(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	if _, err := h.sim.InjectFault(ctx, simclient.Fault{Count: 1, PathPrefix: "/2010-04-01/", Method: "POST", Status: 503}); err != nil {
		t.Fatal(err)
	}
	const customer = "+15550200012"
	id := rid(t, "1")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo(customer), Body: "after a 503"})
	if sent := h.waitSent(id); sent.GetAttempts() != 2 {
		t.Errorf("attempts = %d, want 2", sent.GetAttempts())
	}
	if n := len(h.sentTo(customer)); n != 1 {
		t.Errorf("customer got %d messages, want 1", n)
	}
}

// 4xx answers are final: reported with Twilio's code and its meaning, not
// retried. 21610 also records the opt-out, so the next send is refused
// before the call.
func TestFinalErrorsAreReported(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	// A number Twilio cannot send to (the emulator refuses it as Twilio would).
	if _, err := h.sim.InjectFault(ctx, simclient.Fault{Count: 1, PathPrefix: "/2010-04-01/", Method: "POST", Status: 400, Code: 21211, Message: "Invalid 'To' Phone Number"}); err != nil {
		t.Fatal(err)
	}
	id := rid(t, "invalid-to")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo("+15550200019"), Body: "to nowhere"})
	f := h.waitFailed(id)
	if f.GetErrorCode() != 21211 || f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_TWILIO || f.GetAttempts() != 1 {
		t.Errorf("failed event = %v, want 21211, reason TWILIO, one attempt", f)
	}

	// The customer opted out at Twilio without Switchboard seeing the STOP
	// (say, before Switchboard was set up).
	const customer = "+15550200013"
	if _, err := h.sim.InjectFault(ctx, simclient.Fault{Count: 1, PathPrefix: "/2010-04-01/", Method: "POST", Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"}); err != nil {
		t.Fatal(err)
	}
	id = rid(t, "opted-out")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo(customer), Body: "hello?"})
	f = h.waitFailed(id)
	if f.GetErrorCode() != 21610 || f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_TWILIO {
		t.Errorf("failed event = %v, want 21610 from Twilio", f)
	}
	if st := h.contact(smsTo(customer)); !st.GetOptedOut() || st.GetConsentSource() != "twilio:21610" {
		t.Errorf("contact state = %v, want opted out by 21610", st)
	}
	id = rid(t, "refused")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo(customer), Body: "hello again?"})
	f = h.waitFailed(id)
	if f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_OPTED_OUT || f.GetAttempts() != 0 {
		t.Errorf("failed event = %v, want refused as opted out without a call", f)
	}
	if n := len(h.sentTo(customer)); n != 0 {
		t.Errorf("customer got %d messages, want 0", n)
	}
}

// STOP refuses sends before Twilio is called (with a reason the console
// shows); START allows them again.
func TestStopThenStart(t *testing.T) {
	h := start(t, options{})
	const customer = "+15550200014"
	conv := smsTo(customer)
	h.customerSays(customer, smsNumber, "stop")
	waitEvent(t, h, subjects.KindOutboundContactUpdated, func(e *outboundv1.OutboundContactUpdated) bool {
		return e.GetConversation().GetCustomerAddress() == customer && e.GetState().GetOptedOut()
	})
	if st := h.contact(conv); !st.GetOptedOut() || st.GetConsentSource() != "keyword:STOP" {
		t.Errorf("contact state after STOP = %v", st)
	}
	id := rid(t, "after-stop")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: conv, Body: "are you there?"})
	f := h.waitFailed(id)
	if f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_OPTED_OUT || f.GetErrorCode() != 21610 || f.GetErrorMessage() == "" {
		t.Errorf("failed event = %v, want OPTED_OUT with 21610 and a message", f)
	}
	h.customerSays(customer, smsNumber, "START")
	id = rid(t, "after-start")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: conv, Body: "welcome back"})
	h.waitSent(id)
	var bodies []string
	for _, m := range h.sentTo(customer) {
		bodies = append(bodies, m.Body)
	}
	if len(bodies) != 1 || bodies[0] != "welcome back" {
		t.Errorf("customer got %q, want only the message after START", bodies)
	}
}

// A customer message still being applied when a send would be refused is
// applied first: a START, or the WhatsApp message a greeting answers, does
// not cause a wrong refusal.
func TestRefusalWaitsForCustomerMessagesInFlight(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	const customer = "+15550200015"
	h.customerSays(customer, smsNumber, "STOP")
	waitEvent(t, h, subjects.KindOutboundContactUpdated, func(e *outboundv1.OutboundContactUpdated) bool {
		return e.GetConversation().GetCustomerAddress() == customer && e.GetState().GetOptedOut()
	})
	// START (published by the webhook) and the reply follow each other
	// without waiting for outbound-sender to apply START.
	h.customerSays(customer, smsNumber, "START")
	id := rid(t, "after-start")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo(customer), Body: "welcome back"})
	h.waitSent(id)

	const waCustomer = "whatsapp:+15550200016"
	if err := h.bus.Emit(ctx, subjects.ChatMessageReceived(tenant), &chatv1.MessageReceived{
		TenantId: tenant, MessageSid: "SM00000000000000000000000000000016", Body: "hi", Conversation: waTo(waCustomer), ReceivedAt: timestamppb.Now(),
	}, "SM00000000000000000000000000000016"); err != nil {
		t.Fatal(err)
	}
	id = rid(t, "greeting")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entryWA, Conversation: waTo(waCustomer), Body: "Thanks for writing!", Origin: outboundv1.Origin_ORIGIN_WORKFLOW})
	h.waitSent(id)
}

// Outside the WhatsApp window free text is refused and a template goes
// out; a customer message opens the window; Twilio's 63016 closes it.
func TestWhatsAppWindow(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	const customer = "whatsapp:+15550200020"
	conv := waTo(customer)
	if st := h.contact(conv); !st.GetWindowApplies() || st.GetWindowOpen() {
		t.Errorf("contact state before any message = %v, want a closed window", st)
	}
	id := rid(t, "free-text-closed")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entryWA, Conversation: conv, Body: "Hi, your order is ready"})
	f := h.waitFailed(id)
	if f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_WHATSAPP_WINDOW_CLOSED || f.GetErrorCode() != 63016 {
		t.Errorf("failed event = %v, want WHATSAPP_WINDOW_CLOSED/63016", f)
	}
	id = rid(t, "template")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entryWA, Conversation: conv,
		ContentSid: "HX00000000000000000000000000000001", ContentVariables: `{"1":"Ann"}`, Origin: outboundv1.Origin_ORIGIN_WORKFLOW})
	h.waitSent(id)
	h.waitDelivery(id, func(d *outboundv1.Delivery) bool { return d.GetStatus() == delivered })

	h.customerSays(customer, waNumber, "thanks!")
	waitEvent(t, h, subjects.KindOutboundContactUpdated, func(e *outboundv1.OutboundContactUpdated) bool {
		return e.GetConversation().GetCustomerAddress() == customer && e.GetState().GetWindowOpen()
	})
	id = rid(t, "free-text-open")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entryWA, Conversation: conv, Body: "You're welcome"})
	h.waitSent(id)

	// A day later Twilio fails free text with 63016 (accepted, then failed).
	if _, err := h.sim.AdvanceClock(ctx, 25*time.Hour); err != nil {
		t.Fatal(err)
	}
	id = rid(t, "free-text-late")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entryWA, Conversation: conv, Body: "Anything else?"})
	h.waitSent(id)
	d := h.waitDelivery(id, func(d *outboundv1.Delivery) bool { return d.GetStatus() == failed })
	if d.GetErrorCode() != 63016 || d.GetErrorMessage() == "" {
		t.Errorf("ledger = %v, want failed with 63016 and its meaning", d)
	}
	waitEvent(t, h, subjects.KindOutboundContactUpdated, func(e *outboundv1.OutboundContactUpdated) bool {
		return e.GetConversation().GetCustomerAddress() == customer && !e.GetState().GetWindowOpen()
	})
	id = rid(t, "free-text-after-63016")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entryWA, Conversation: conv, Body: "Hello?"})
	if f := h.waitFailed(id); f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_WHATSAPP_WINDOW_CLOSED {
		t.Errorf("failed event = %v, want the window closed", f)
	}
}

// Status reports arriving out of order never move the ledger backwards;
// each report is in the timeline once; only forward moves are published.
func TestOutOfOrderStatusReports(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	const customer = "+15550200030"
	if _, err := h.sim.AddDeliveryRule(ctx, simclient.DeliveryRule{To: customer, Count: 1, DeliveryOptions: simclient.DeliveryOptions{OutOfOrder: ptr(true)}}); err != nil {
		t.Fatal(err)
	}
	id := rid(t, "1")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo(customer), Body: "out of order"})
	sent := h.waitSent(id)
	d := h.waitDelivery(id, func(d *outboundv1.Delivery) bool { return len(d.GetTimeline()) >= 3 })
	if d.GetStatus() != delivered {
		t.Errorf("status = %v after delivered-then-sent, want DELIVERED", d.GetStatus())
	}
	// More reports: a duplicate, a late "sent", then "read".
	for _, st := range []string{"delivered", "sent", "read"} {
		if err := h.bus.Emit(ctx, subjects.ChatDeliveryUpdated(tenant), &chatv1.DeliveryUpdated{
			TenantId: tenant, MessageSid: sent.GetTwilioSid(), Status: statusEnum(st), RawStatus: st, OccurredAt: timestamppb.Now(),
		}, "manual:"+st+":"+time.Now().String()); err != nil {
			t.Fatal(err)
		}
	}
	d = h.waitDelivery(id, func(d *outboundv1.Delivery) bool {
		return d.GetStatus() == messagingv1.DeliveryStatus_DELIVERY_STATUS_READ
	})
	seen := map[string]int{}
	for _, c := range d.GetTimeline()[1:] {
		seen[c.GetRawStatus()]++
	}
	if seen["sent"] != 1 || seen["delivered"] != 1 || seen["read"] != 1 {
		t.Errorf("timeline %v, want sent, delivered and read once each", d.GetTimeline())
	}
	ups := find(h, subjects.KindOutboundDeliveryUpdate, func(e *outboundv1.OutboundDeliveryUpdated) bool { return e.GetRequestId() == id })
	var got []string
	for _, u := range ups {
		got = append(got, u.GetRawStatus())
	}
	if len(got) != 2 || got[0] != "delivered" || got[1] != "read" {
		t.Errorf("published updates %v, want [delivered read]", got)
	}
}

// A failed message can be resent: a new request linked to the original. A
// message that did not fail cannot.
func TestResend(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	const customer = "+15550200040"
	if _, err := h.sim.AddDeliveryRule(ctx, simclient.DeliveryRule{To: customer, Count: 1, DeliveryOptions: simclient.DeliveryOptions{ErrorCode: ptr(30003)}}); err != nil {
		t.Fatal(err)
	}
	orig := rid(t, "orig")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: orig, EntryId: entrySMS, Conversation: smsTo(customer), Body: "first try"})
	d := h.waitDelivery(orig, func(d *outboundv1.Delivery) bool {
		return d.GetStatus() == messagingv1.DeliveryStatus_DELIVERY_STATUS_UNDELIVERED
	})
	if d.GetErrorCode() != 30003 {
		t.Errorf("ledger = %v, want undelivered with 30003", d)
	}
	resend := rid(t, "resend")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: resend, EntryId: entrySMS, Conversation: smsTo(customer), Body: "first try", ResendOf: orig})
	if sent := h.waitSent(resend); sent.GetResendOf() != orig {
		t.Errorf("sent event = %v, want resend_of %s", sent, orig)
	}
	h.waitDelivery(orig, func(d *outboundv1.Delivery) bool { return len(d.GetResentAs()) == 1 && d.GetResentAs()[0] == resend })

	again := rid(t, "resend-of-sent")
	h.request(&outboundv1.OutboundMessageRequested{RequestId: again, EntryId: entrySMS, Conversation: smsTo(customer), Body: "first try", ResendOf: resend})
	if f := h.waitFailed(again); f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_RESEND_NOT_ALLOWED {
		t.Errorf("failed event = %v, want RESEND_NOT_ALLOWED", f)
	}
	if n := len(h.sentTo(customer)); n != 2 {
		t.Errorf("customer got %d messages, want 2 (the failed one and its resend)", n)
	}
}

// Requests for one sender wait for the sender's limit and go out in order;
// none is dropped.
func TestRateLimitQueuesInOrder(t *testing.T) {
	h := start(t, options{cfg: func(c *outboundsender.Config) { c.RateLimits = smsNumber + "=20seg/s" }})
	const customer = "+15550200050"
	var ids []string
	for i := range 10 {
		id := rid(t, string(rune('a'+i)))
		ids = append(ids, id)
		h.request(&outboundv1.OutboundMessageRequested{RequestId: id, EntryId: entrySMS, Conversation: smsTo(customer), Body: "message " + string(rune('a'+i))})
	}
	for _, id := range ids {
		h.waitSent(id)
	}
	got := h.sentTo(customer)
	if len(got) != 10 {
		t.Fatalf("customer got %d messages, want 10", len(got))
	}
	for i, m := range got {
		if want := "message " + string(rune('a'+i)); m.Body != want {
			t.Errorf("message %d = %q, want %q (in request order)", i, m.Body, want)
		}
	}
}

// Unusable requests and unknown entries fail with a reason instead of
// looping.
func TestUnusableRequestsFail(t *testing.T) {
	h := start(t, options{})
	tests := []struct {
		name   string
		req    *outboundv1.OutboundMessageRequested
		reason outboundv1.FailureReason
	}{
		{"no body", &outboundv1.OutboundMessageRequested{EntryId: entrySMS, Conversation: smsTo("+15550200060")}, outboundv1.FailureReason_FAILURE_REASON_INVALID_REQUEST},
		{"not a phone number", &outboundv1.OutboundMessageRequested{EntryId: entrySMS, Conversation: smsTo("12345"), Body: "x"}, outboundv1.FailureReason_FAILURE_REASON_INVALID_REQUEST},
		{"unknown entry", &outboundv1.OutboundMessageRequested{EntryId: "unknown-entry", Conversation: smsTo("+15550200060"), Body: "x"}, outboundv1.FailureReason_FAILURE_REASON_NO_CREDENTIALS},
		{"two media on conversations", &outboundv1.OutboundMessageRequested{EntryId: entryConv, MediaUrls: []string{"https://example.com/a.jpg", "https://example.com/b.jpg"}, Conversation: &messagingv1.ConversationRef{
			Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, ChatServiceSid: chatService, ConversationSid: "CH00000000000000000000000000000001"}}, outboundv1.FailureReason_FAILURE_REASON_INVALID_REQUEST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			tt.req.RequestId = rid(t, "1")
			h.request(tt.req)
			if f := h.waitFailed(tt.req.RequestId); f.GetReason() != tt.reason || f.GetErrorMessage() == "" {
				t.Errorf("failed event = %v, want reason %v with a message", f, tt.reason)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
