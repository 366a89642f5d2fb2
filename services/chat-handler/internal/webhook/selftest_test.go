package webhook_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/pkg/chatwebhook"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/chattest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

// TestSelfTest: a signed self-test passes routing and the signature check
// like a customer's message, is answered with its nonce, and publishes
// nothing; unsigned, wrongly signed, another tenant's or a disabled
// route's self-tests are refused exactly like such webhooks.
func TestSelfTest(t *testing.T) {
	e := newEnv(t, webhook.Options{}, nil)
	inbound := func(to, nonce string) url.Values {
		return url.Values{"AccountSid": {acct}, "MessageSid": {"SM00000000000000000000000000000000"}, "From": {customer},
			"To": {to}, "Body": {""}, chatwebhook.SelfTestParam: {nonce}}
	}
	conv := convParams("onMessageAdded", "MessageSid", "IM00000000000000000000000000000000", "Author", customer,
		"Source", "SMS", "Body", "", chatwebhook.SelfTestParam, "conv-nonce")

	for _, c := range []struct {
		name   string
		w      chattest.Webhook
		status int
		nonce  string
	}{
		{"messaging", chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: inbound(smsNumber, "n-1"), Token: token}, 200, "n-1"},
		{"secondary token", chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: inbound(waNumber, "n-2"), Token: nextToken}, 200, "n-2"},
		{"conversations", chattest.Webhook{URL: e.url(tenant, webhook.PathConversations), Params: conv, Token: token}, 200, "conv-nonce"},
		{"unsigned", chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: inbound(smsNumber, "n-3")}, 403, ""},
		{"wrong token", chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: inbound(smsNumber, "n-4"), Token: otherTok}, 403, ""},
		{"marker added after signing", chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: inbound(smsNumber, "n-5"), Token: token,
			SignedParams: url.Values{"AccountSid": {acct}, "MessageSid": {"SM00000000000000000000000000000000"}, "From": {customer}, "To": {smsNumber}, "Body": {""}}}, 403, ""},
		{"another tenant's number", chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: inbound(otherNum, "n-6"), Token: otherTok}, 403, ""},
		{"disabled entry", chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: inbound(offNumber, "n-7"), Token: token}, 403, ""},
		{"malformed nonce", chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: inbound(smsNumber, "a b"), Token: token}, 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, h := c.w.Do(t, nil)
			if status != c.status {
				t.Fatalf("status %d (%s), want %d", status, strings.TrimSpace(body), c.status)
			}
			if got := h.Get(chatwebhook.SelfTestHeader); got != c.nonce {
				t.Errorf("%s = %q, want %q", chatwebhook.SelfTestHeader, got, c.nonce)
			}
			if c.status == http.StatusOK && c.w.URL == e.url(tenant, webhook.PathInbound) && !strings.Contains(body, "<Response></Response>") {
				t.Errorf("body %q, want empty TwiML", body)
			}
		})
	}
	if msgs := chattest.Messages(t, e.js, "chat.>"); len(msgs) != 0 {
		t.Errorf("%d events on CHAT after self-tests, want none", len(msgs))
	}
}
