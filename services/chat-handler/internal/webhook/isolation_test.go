package webhook_test

import (
	"net/http"
	"net/url"
	"testing"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/chattest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

// Two tenants' genuine webhooks that carry the same SIDs (or idempotency
// token) are both taken: the dedupe ids on the shared CHAT stream are
// scoped by tenant, so neither tenant can make the other's events vanish by
// posting a SID first.
func TestSameSIDsInTwoTenants(t *testing.T) {
	e := newEnv(t, webhook.Options{}, nil)
	const sid = "SM60000000000000000000000000000001"
	hdr := http.Header{"I-Twilio-Idempotency-Token": {"shared-token"}}
	type side struct {
		tenant, number, svc, acct, token string
	}
	sides := []side{{otherTen, otherNum, otherSvc, otherAcct, otherTok}, {tenant, smsNumber, convSvc, acct, token}}
	for _, s := range sides {
		inbound := url.Values{"MessageSid": {sid}, "AccountSid": {s.acct}, "From": {customer}, "To": {s.number}, "Body": {"hello " + s.tenant}}
		expectStatus(t, chattest.Webhook{URL: e.url(s.tenant, webhook.PathInbound), Params: inbound, Token: s.token, Header: hdr}, 200)
		status := url.Values{"MessageSid": {sid}, "MessageStatus": {"delivered"}, "AccountSid": {s.acct}, "From": {s.number}, "To": {customer}}
		expectStatus(t, chattest.Webhook{URL: e.url(s.tenant, webhook.PathStatus), Params: status, Token: s.token, Header: hdr}, 200)
		conv := func(event string, kv ...string) url.Values {
			p := convParams(event, kv...)
			p.Set("AccountSid", s.acct)
			p.Set("ChatServiceSid", s.svc)
			return p
		}
		for _, p := range []url.Values{
			conv("onMessageAdded", "MessageSid", "IM60000000000000000000000000000001", "Source", "SMS", "Author", customer, "Body", "hi"),
			conv("onConversationAdded", "MessagingBinding.Address", customer),
			conv("onParticipantAdded", "ParticipantSid", "MB60000000000000000000000000000001", "MessagingBinding.Address", customer),
			conv("onConversationStateUpdated", "StateFrom", "active", "StateTo", "closed"),
			conv("onDeliveryUpdated", "MessageSid", "IM60000000000000000000000000000002", "DeliveryReceiptSid", "DY60000000000000000000000000000001", "Status", "read"),
		} {
			expectStatus(t, chattest.Webhook{URL: e.url(s.tenant, webhook.PathConversations), Params: p, Token: s.token, Header: hdr}, 200)
		}
	}
	for _, s := range sides {
		msgs := chattest.Find(t, e.js, subjects.ChatMessageReceived(s.tenant), func() *chatv1.MessageReceived { return &chatv1.MessageReceived{} },
			func(*chatv1.MessageReceived) bool { return true })
		if len(msgs) != 2 || msgs[0].GetMessageSid() != sid || msgs[0].GetBody() != "hello "+s.tenant || msgs[0].GetTenantId() != s.tenant {
			t.Errorf("%s: MessageReceived = %v, want its own inbound message and Conversations message", s.tenant, msgs)
		}
		for _, subj := range []string{
			subjects.ChatDeliveryUpdated(s.tenant), subjects.ChatConversationAdded(s.tenant), subjects.ChatParticipantAdded(s.tenant),
			subjects.ChatConversationStateUpdated(s.tenant),
		} {
			want := 1
			if subj == subjects.ChatDeliveryUpdated(s.tenant) {
				want = 2 // the status callback and onDeliveryUpdated
			}
			if got := len(chattest.Messages(t, e.js, subj)); got != want {
				t.Errorf("%s: %d events, want %d", subj, got, want)
			}
		}
	}
}
