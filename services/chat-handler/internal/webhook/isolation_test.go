package webhook_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
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

// An unsigned or badly signed request learns nothing about what it names:
// an unknown tenant, number or Service SID is answered exactly like a known
// one with a missing or wrong signature (same status, same body), while the
// log keeps the actual cause for operators.
func TestUnsignedRequestsCannotEnumerate(t *testing.T) {
	var logs strings.Builder
	b := startBus(t)
	h := webhook.New(routes(), b, webhook.Options{}, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)))
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u := func(tnt, path string) string { return webhook.TenantURL(srv.URL, tnt, path) }
	sms := func(to string) url.Values {
		return url.Values{"MessageSid": {"SM80000000000000000000000000000001"}, "AccountSid": {acct}, "From": {customer}, "To": {to}, "Body": {"hi"}}
	}
	conv := func(svc string) url.Values {
		return convParams("onMessageAdded", "ChatServiceSid", svc, "MessageSid", "IM80000000000000000000000000000001", "Source", "SMS", "Author", customer)
	}
	tests := []struct {
		name string
		w    chattest.Webhook
	}{
		{"tenant's number, unsigned", chattest.Webhook{URL: u(tenant, webhook.PathInbound), Params: sms(smsNumber)}},
		{"tenant's number, wrong token", chattest.Webhook{URL: u(tenant, webhook.PathInbound), Params: sms(smsNumber), Token: otherTok}},
		{"another tenant's number, unsigned", chattest.Webhook{URL: u(tenant, webhook.PathInbound), Params: sms(otherNum)}},
		{"unknown number, unsigned", chattest.Webhook{URL: u(tenant, webhook.PathInbound), Params: sms("+15550000000")}},
		{"unknown number, signed with some token", chattest.Webhook{URL: u(tenant, webhook.PathInbound), Params: sms("+15550000000"), Token: token}},
		{"unknown tenant, unsigned", chattest.Webhook{URL: u("nobody", webhook.PathInbound), Params: sms(smsNumber)}},
		{"tenant id that cannot exist", chattest.Webhook{URL: u("No_Such", webhook.PathInbound), Params: sms(smsNumber)}},
		{"tenant's service, unsigned", chattest.Webhook{URL: u(tenant, webhook.PathConversations), Params: conv(convSvc)}},
		{"tenant's service, wrong token", chattest.Webhook{URL: u(tenant, webhook.PathConversations), Params: conv(convSvc), Token: "guess"}},
		{"unknown service, unsigned", chattest.Webhook{URL: u(tenant, webhook.PathConversations), Params: conv("IS99999999999999999999999999999999")}},
		{"status callback from the tenant's number, unsigned", chattest.Webhook{URL: u(tenant, webhook.PathStatus),
			Params: url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"sent"}, "From": {smsNumber}}}},
		{"status callback from an unknown number, unsigned", chattest.Webhook{URL: u(tenant, webhook.PathStatus),
			Params: url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"sent"}, "From": {"+15550000000"}}}},
	}
	type answer struct {
		status int
		body   string
	}
	var first answer
	for i, tt := range tests {
		status, body, _ := tt.w.Do(t, nil)
		got := answer{status, body}
		if i == 0 {
			first = got
			if status != http.StatusForbidden {
				t.Fatalf("%s: status %d, want 403", tt.name, status)
			}
			continue
		}
		if got != first {
			t.Errorf("%s: answer %d %q, want the same as %q: %d %q", tt.name, got.status, got.body, tests[0].name, first.status, first.body)
		}
	}
	for _, cause := range []string{"missing X-Twilio-Signature", "invalid X-Twilio-Signature", "no messaging entry of this tenant has it",
		"Conversations service IS99999999999999999999999999999999 is not a messaging entry", "tenant id that cannot exist"} {
		if !strings.Contains(logs.String(), cause) {
			t.Errorf("log lacks the cause %q", cause)
		}
	}
	if ms := chattest.Messages(t, b.JS, "chat.>"); len(ms) != 0 {
		t.Errorf("%d events published by refused requests", len(ms))
	}
}

// syncWriter serialises the handler's log writes.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
