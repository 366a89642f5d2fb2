package core

import (
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

func event(t *testing.T, subject string, ev proto.Message) *bus.Message {
	t.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	h.Set(bus.HeaderType, string(ev.ProtoReflect().Descriptor().FullName()))
	return &bus.Message{Subject: subject, Data: data, Header: h}
}

// Contact updates name no session: keyed by subject, every contact of a
// tenant would queue in one lane behind the others.
func TestOutboundKey(t *testing.T) {
	wa := func(customer string) *messagingv1.ConversationRef {
		return &messagingv1.ConversationRef{Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, Channel: messagingv1.Channel_CHANNEL_WHATSAPP,
			CustomerAddress: customer, BusinessAddress: "whatsapp:+15550000000"}
	}
	contact := func(customer string) *bus.Message {
		return event(t, subjects.OutboundContactUpdated("t1"), &outboundv1.OutboundContactUpdated{TenantId: "t1", Conversation: wa(customer)})
	}
	key := func(m *bus.Message) string {
		t.Helper()
		k, err := OutboundKey(m)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, a2, b := key(contact("whatsapp:+15551110001")), key(contact("whatsapp:+15551110001")), key(contact("whatsapp:+15551110002"))
	if a != a2 || a == b {
		t.Errorf("contact keys: %q %q %q; want one conversation one key, two conversations two", a, a2, b)
	}
	if a == subjects.OutboundContactUpdated("t1") {
		t.Errorf("contact update keyed by its subject %q", a)
	}
	sent := key(event(t, subjects.OutboundSent("t1"), &outboundv1.OutboundMessageSent{TenantId: "t1", SessionId: "ss_1", RequestId: "r1"}))
	delivered := key(event(t, subjects.OutboundDeliveryUpdated("t1"), &outboundv1.OutboundDeliveryUpdated{TenantId: "t1", SessionId: "ss_1", RequestId: "r1"}))
	if sent != "t1/ss_1" || delivered != sent {
		t.Errorf("status keys %q, %q; want both t1/ss_1 (in order per session)", sent, delivered)
	}
}

func TestUnresendable(t *testing.T) {
	for _, tt := range []struct {
		code   int32
		reason string
		want   bool
	}{
		{63016, "twilio", true}, {0, "whatsapp_window_closed", true}, {21610, "twilio", true}, {0, "opted_out", true},
		{30003, "twilio", false}, {0, "retries_exhausted", false},
	} {
		if got := Unresendable(tt.code, tt.reason) != ""; got != tt.want {
			t.Errorf("Unresendable(%d, %q) = %v, want %v", tt.code, tt.reason, got, tt.want)
		}
	}
}
