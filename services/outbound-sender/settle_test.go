package outboundsender_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// waitAcked polls the request consumer until every one of the n requests
// published so far is acknowledged, and fails as soon as one is delivered
// a second time or anything is dead-lettered: a request settled without a
// Twilio call must be acked on its first delivery.
func (h *harness) waitAcked(n uint64) {
	h.t.Helper()
	ctx := timeout(h.t)
	cons, err := h.bus.JS.Consumer(ctx, subjects.StreamOutbound, subjects.ConsumerOutboundRequests)
	if err != nil {
		h.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		if info.Delivered.Consumer > n || info.NumRedelivered > 0 {
			h.t.Fatalf("request consumer made %d deliveries (%d redelivered) for %d requests, want each delivered once", info.Delivered.Consumer, info.NumRedelivered, n)
		}
		if dl := h.deadLetters(); dl != "" {
			h.t.Fatalf("a request was dead-lettered: %s", dl)
		}
		if info.AckFloor.Consumer == n && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("requests not all acked within 30s: ack floor %d of %d, %d pending", info.AckFloor.Consumer, n, info.NumAckPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deadLetters returns the reason of the last dead-lettered request, or "".
func (h *harness) deadLetters() string {
	h.t.Helper()
	st, err := h.bus.JS.Stream(context.Background(), subjects.StreamDeadLetter)
	if err != nil {
		h.t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(context.Background(), subjects.DeadLetter(subjects.ConsumerOutboundRequests))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return ""
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return msg.Header.Get("Sb-Dead-Letter-Reason")
}

// Every request settled without calling Twilio (refused by a rule,
// unusable, resend refused, a redelivery of a decided request) records its
// outcome and is acked on its first delivery: no panic, no redelivery, no
// dead letter.
func TestSettledWithoutCallIsAcked(t *testing.T) {
	h := start(t, options{})
	var published uint64
	request := func(r *outboundv1.OutboundMessageRequested) {
		t.Helper()
		h.request(r)
		published++
	}

	// A new customer whose first message is STOP, then a send to them.
	const stopper = "+15550200070"
	h.customerSays(stopper, smsNumber, "STOP")
	waitEvent(t, h, subjects.KindOutboundContactUpdated, func(e *outboundv1.OutboundContactUpdated) bool {
		return e.GetConversation().GetCustomerAddress() == stopper && e.GetState().GetOptedOut()
	})
	optedOut := rid(t, "opted-out")
	request(&outboundv1.OutboundMessageRequested{RequestId: optedOut, EntryId: entrySMS, Conversation: smsTo(stopper), Body: "hello?"})
	if f := h.waitFailed(optedOut); f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_OPTED_OUT {
		t.Errorf("failed event = %v, want OPTED_OUT", f)
	}
	h.waitAcked(published)

	// WhatsApp free text outside the window.
	closed := rid(t, "window-closed")
	request(&outboundv1.OutboundMessageRequested{RequestId: closed, EntryId: entryWA, Conversation: waTo("whatsapp:+15550200071"), Body: "hi"})
	if f := h.waitFailed(closed); f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_WHATSAPP_WINDOW_CLOSED {
		t.Errorf("failed event = %v, want WHATSAPP_WINDOW_CLOSED", f)
	}
	h.waitAcked(published)

	// An unusable request and one for an entry without credentials.
	bad := rid(t, "invalid")
	request(&outboundv1.OutboundMessageRequested{RequestId: bad, EntryId: entrySMS, Conversation: smsTo("12345"), Body: "x"})
	if f := h.waitFailed(bad); f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_INVALID_REQUEST {
		t.Errorf("failed event = %v, want INVALID_REQUEST", f)
	}
	noCreds := rid(t, "no-credentials")
	request(&outboundv1.OutboundMessageRequested{RequestId: noCreds, EntryId: "unknown-entry", Conversation: smsTo("+15550200072"), Body: "x"})
	if f := h.waitFailed(noCreds); f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_NO_CREDENTIALS {
		t.Errorf("failed event = %v, want NO_CREDENTIALS", f)
	}
	h.waitAcked(published)

	// A sent request, a refused resend of it, and both delivered again
	// past the dedupe window: answered from the ledger.
	const customer = "+15550200073"
	sent := rid(t, "sent")
	sentReq := &outboundv1.OutboundMessageRequested{RequestId: sent, EntryId: entrySMS, Conversation: smsTo(customer), Body: "once"}
	request(sentReq)
	h.waitSent(sent)
	resend := rid(t, "resend-of-sent")
	resendReq := &outboundv1.OutboundMessageRequested{RequestId: resend, EntryId: entrySMS, Conversation: smsTo(customer), Body: "once", ResendOf: sent}
	request(resendReq)
	if f := h.waitFailed(resend); f.GetReason() != outboundv1.FailureReason_FAILURE_REASON_RESEND_NOT_ALLOWED {
		t.Errorf("failed event = %v, want RESEND_NOT_ALLOWED", f)
	}
	h.waitAcked(published)
	for _, r := range []*outboundv1.OutboundMessageRequested{sentReq, resendReq, {RequestId: optedOut, EntryId: entrySMS, Conversation: smsTo(stopper), Body: "hello?"}} {
		h.publishRequest(r, r.GetRequestId()+"-again")
		published++
	}
	h.waitAcked(published)
	if n := len(h.sentTo(customer)); n != 1 {
		t.Errorf("customer got %d messages, want 1", n)
	}
	if d := h.delivery(resend); d.GetFailureReason() != outboundv1.FailureReason_FAILURE_REASON_RESEND_NOT_ALLOWED {
		t.Errorf("ledger of the refused resend = %v, want RESEND_NOT_ALLOWED", d)
	}
}
