package outboundsender_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/ledger"
)

// stored polls the OUTBOUND stream until it holds a message on subject:
// a publish dropped by JetStream's dedupe (a Nats-Msg-Id another tenant
// used) never arrives.
func (h *harness) stored(subject string) {
	h.t.Helper()
	ctx := timeout(h.t)
	st, err := h.bus.JS.Stream(ctx, subjects.StreamOutbound)
	if err != nil {
		h.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := st.GetLastMsgForSubject(ctx, subject)
		if err == nil {
			return
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			h.t.Fatal(err)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the stream holds nothing on %s: the publish was dropped as a duplicate", subject)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) requestFor(t string, r *outboundv1.OutboundMessageRequested) {
	h.t.Helper()
	r.TenantId, r.RequestedAt = t, timestamppb.Now()
	if err := h.bus.Emit(context.Background(), subjects.OutboundRequested(t), r, t+"/"+r.GetRequestId()); err != nil {
		h.t.Fatal(err)
	}
}

// Two tenants using the same request id, or seeing the same Twilio SID,
// each get their own events: every Nats-Msg-Id outbound-sender publishes
// names the tenant, so JetStream's dedupe never drops one tenant's event as
// a repeat of another's, and the ledger keeps each tenant's message apart.
func TestTenantsDoNotShareDedupeIDs(t *testing.T) {
	h := start(t, options{})
	ctx := timeout(t)
	tenants := []string{tenant, otherTenant}

	// The same request id sent by both tenants: sent, then delivered.
	const sameID = "req-shared-1"
	for i, tn := range tenants {
		h.requestFor(tn, &outboundv1.OutboundMessageRequested{RequestId: sameID, EntryId: entrySMS,
			Conversation: smsTo("+1555020009" + string(rune('0'+i))), Body: "hello from " + tn})
	}
	for _, tn := range tenants {
		h.stored(subjects.OutboundSent(tn))
		h.stored(subjects.OutboundDeliveryUpdated(tn))
	}

	// The same request id refused in both tenants.
	const refusedID = "req-shared-2"
	for _, tn := range tenants {
		h.requestFor(tn, &outboundv1.OutboundMessageRequested{RequestId: refusedID, EntryId: entrySMS, Conversation: smsTo("12345"), Body: "x"})
	}
	for _, tn := range tenants {
		h.stored(subjects.OutboundFailed(tn))
	}

	// The same inbound message SID (a STOP) in both tenants.
	const inboundSID = "SM00000000000000000000000000000099"
	for _, tn := range tenants {
		if err := h.bus.Emit(ctx, subjects.ChatMessageReceived(tn), &chatv1.MessageReceived{
			TenantId: tn, MessageSid: inboundSID, Body: "STOP", Conversation: smsTo("+15550200095"), ReceivedAt: timestamppb.Now(),
		}, tn+"/"+inboundSID); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range tenants {
		h.stored(subjects.OutboundContactUpdated(tn))
	}

	// The same Twilio SID in both tenants' ledgers (two accounts cannot
	// share one at Twilio, but a guard keyed by SID alone would merge them).
	mc, err := mongodb.Connect(ctx, h.mongo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
	led := ledger.New(mc.Database(h.db))
	t.Cleanup(led.Close)
	const sharedSID, ledgerID = "SM00000000000000000000000000000098", "req-shared-3"
	for _, tn := range tenants {
		now := time.Now()
		if _, _, err := led.Begin(ctx, &ledger.Request{Tenant: tn, RequestID: ledgerID, EntryID: entrySMS, Body: "x", RequestedAt: now, CreatedAt: now,
			Conversation: ledger.Conversation{Channel: int32(messagingv1.Channel_CHANNEL_SMS), Path: int32(messagingv1.TwilioPath_TWILIO_PATH_MESSAGING), Customer: "+15550200096", Business: smsNumber}}); err != nil {
			t.Fatal(err)
		}
		if _, fresh, err := led.Decide(ctx, &ledger.Outcome{Tenant: tn, RequestID: ledgerID, State: ledger.StateSent, TwilioSID: sharedSID, Status: "queued", Attempts: 1, DecidedAt: now},
			&ledger.Message{Tenant: tn, SID: sharedSID, RequestID: ledgerID, Status: "queued"}); err != nil || !fresh {
			t.Fatalf("record %s's message %s: fresh %v, %v", tn, sharedSID, fresh, err)
		}
	}
	for _, tn := range tenants {
		if err := h.bus.Emit(ctx, subjects.ChatDeliveryUpdated(tn), &chatv1.DeliveryUpdated{
			TenantId: tn, MessageSid: sharedSID, Status: messagingv1.DeliveryStatus_DELIVERY_STATUS_READ, RawStatus: "read", OccurredAt: timestamppb.Now(),
		}, tn+"/"+sharedSID+":read"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range tenants {
		ev := waitEvent(t, h, subjects.KindOutboundDeliveryUpdate, func(e *outboundv1.OutboundDeliveryUpdated) bool {
			return e.GetTenantId() == tn && e.GetTwilioSid() == sharedSID
		})
		if ev.GetRequestId() != ledgerID || ev.GetStatus() != messagingv1.DeliveryStatus_DELIVERY_STATUS_READ {
			t.Errorf("%s: delivery update %v, want %s read", tn, ev, ledgerID)
		}
	}
	st, err := h.bus.JS.Stream(ctx, subjects.StreamOutbound)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, tn := range tenants {
		for {
			m, err := st.GetLastMsgForSubject(ctx, subjects.OutboundDeliveryUpdated(tn))
			if err != nil {
				t.Fatal(err)
			}
			var ev outboundv1.OutboundDeliveryUpdated
			if err := proto.Unmarshal(m.Data, &ev); err == nil && ev.GetTwilioSid() == sharedSID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's read update of %s was not stored: dropped as another tenant's duplicate", tn, sharedSID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
