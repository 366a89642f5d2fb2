package sessions_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// session.message.added says what Twilio bills for a customer's message:
// an SMS body's segments (GSM-7: 160 in one, 153 a part; UCS-2: 70), one
// for a WhatsApp message.
func TestMessageAddedCarriesInboundSegments(t *testing.T) {
	h := start(t)
	wa := inbound("SM4", "whatsapp:+15550003", strings.Repeat("x", 400))
	wa.Conversation.Channel = messagingv1.Channel_CHANNEL_WHATSAPP
	wa.Conversation.BusinessAddress = "whatsapp:+12025550100"
	for _, m := range []proto.Message{
		inbound("SM1", "+15550001", "hello"), inbound("SM2", "+15550001", strings.Repeat("a", 161)),
		inbound("SM3", "+15550002", strings.Repeat("é€😀", 30)), wa,
	} {
		h.publish(t, subjects.ChatMessageReceived("acme"), m, m.(interface{ GetMessageSid() string }).GetMessageSid())
	}
	want := map[string]int32{"SM1": 1, "SM2": 2, "SM3": 2, "SM4": 1}
	got := map[string]int32{}
	waitFor(t, "four messages added", func() bool {
		for _, m := range h.streamEvents(t, subjects.StreamSession, subjects.SessionMessageAdded("acme")) {
			var ev sessionv1.MessageAdded
			if proto.Unmarshal(m.Data, &ev) == nil {
				got[ev.GetMessageId()] = ev.GetNumSegments()
			}
		}
		return len(got) == len(want)
	})
	for id, n := range want {
		if got[id] != n {
			t.Errorf("%s: %d segments, want %d", id, got[id], n)
		}
	}
}
