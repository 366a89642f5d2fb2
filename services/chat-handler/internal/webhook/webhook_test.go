package webhook_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/natsembed"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/twiliosig"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/chattest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/route"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
)

const (
	tenant     = "acme"
	acct       = "AC00000000000000000000000000000001"
	token      = "0123456789abcdef0123456789abcdef"
	nextToken  = "fedcba9876543210fedcba9876543210"
	convSvc    = "IS00000000000000000000000000000001"
	smsNumber  = "+15550001111"
	waNumber   = "whatsapp:+15550002222"
	offNumber  = "+15550003333"
	otherTen   = "globex"
	otherAcct  = "AC00000000000000000000000000000002"
	otherTok   = "00000000000000000000000000000002"
	otherSvc   = "IS00000000000000000000000000000002"
	otherNum   = "+15550004444"
	customer   = "+15557654321"
	waCustomer = "whatsapp:+15557654321"
)

func routes() *route.Static {
	s := route.NewStatic()
	tokens := []string{token, nextToken}
	s.AddService(convSvc, &route.Route{Tenant: tenant, EntryID: "sms-conv", ServiceID: "support", Channel: messagingv1.Channel_CHANNEL_SMS,
		Path: messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS, AccountSID: acct, AuthTokens: tokens})
	s.AddAddress(smsNumber, &route.Route{Tenant: tenant, EntryID: "sms-num", ServiceID: "support", Channel: messagingv1.Channel_CHANNEL_SMS,
		Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, AccountSID: acct, AuthTokens: tokens})
	s.AddAddress(waNumber, &route.Route{Tenant: tenant, EntryID: "wa", ServiceID: "support", Channel: messagingv1.Channel_CHANNEL_WHATSAPP,
		Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, AccountSID: acct, AuthTokens: tokens})
	s.AddAddress(offNumber, &route.Route{Tenant: tenant, EntryID: "off", ServiceID: "support", Channel: messagingv1.Channel_CHANNEL_SMS,
		AccountSID: acct, AuthTokens: tokens, Disabled: true, DisabledReason: `messaging entry "off" is disabled`})
	s.AddService(otherSvc, &route.Route{Tenant: otherTen, EntryID: "g", ServiceID: "sales", Channel: messagingv1.Channel_CHANNEL_SMS,
		AccountSID: otherAcct, AuthTokens: []string{otherTok}})
	s.AddAddress(otherNum, &route.Route{Tenant: otherTen, EntryID: "g-sms", ServiceID: "sales", Channel: messagingv1.Channel_CHANNEL_SMS,
		Path: messagingv1.TwilioPath_TWILIO_PATH_MESSAGING, AccountSID: otherAcct, AuthTokens: []string{otherTok}})
	return s
}

type env struct {
	srv *httptest.Server
	js  jetstream.JetStream
}

func (e *env) url(tnt, path string) string { return webhook.TenantURL(e.srv.URL, tnt, path) }

// startBus runs an embedded NATS with the CHAT stream.
func startBus(t testing.TB) *bus.Bus {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	b, err := bus.Connect(ns.ClientURL(), "webhook-test", slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(context.Background(), subjects.StreamOptions{}, subjects.StreamChat); err != nil {
		t.Fatal(err)
	}
	return b
}

func newEnv(t *testing.T, opts webhook.Options, pub webhook.Emitter) *env {
	t.Helper()
	e := &env{}
	if pub == nil {
		b := startBus(t)
		e.js = b.JS
		pub = b
	}
	h := webhook.New(routes(), pub, opts, slogDiscard())
	mux := http.NewServeMux()
	h.Routes(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func must[T proto.Message](t *testing.T, e *env, filter string, mk func() T) T {
	t.Helper()
	msgs := chattest.Messages(t, e.js, filter)
	if len(msgs) != 1 {
		t.Fatalf("%s: %d messages, want 1", filter, len(msgs))
	}
	return chattest.Decode(t, msgs[0], mk())
}

func convParams(event string, kv ...string) url.Values {
	p := url.Values{
		"AccountSid": {acct}, "ChatServiceSid": {convSvc}, "ConversationSid": {"CH00000000000000000000000000000001"},
		"EventType": {event}, "RetryCount": {"0"},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Set(kv[i], kv[i+1])
	}
	return p
}

func expectStatus(t *testing.T, w chattest.Webhook, want int) string {
	t.Helper()
	got, body, _ := w.Do(t, nil)
	if got != want {
		t.Fatalf("%s %s: status %d (%s), want %d", w.Method, w.URL, got, strings.TrimSpace(body), want)
	}
	return body
}

func TestConversationsEvents(t *testing.T) {
	e := newEnv(t, webhook.Options{}, nil)
	cb := e.url(tenant, webhook.PathConversations)

	t.Run("onMessageAdded with body", func(t *testing.T) {
		p := convParams("onMessageAdded", "MessageSid", "IM00000000000000000000000000000001", "Source", "SMS", "Author", customer,
			"Body", "Where is my order?", "Index", "3", "ParticipantSid", "MB00000000000000000000000000000001",
			"Attributes", "{}", "DateCreated", "2026-11-20T10:00:00.123Z", "MessagingServiceSid", "MG00000000000000000000000000000001")
		expectStatus(t, chattest.Webhook{URL: cb, Params: p, Token: token, Header: http.Header{"I-Twilio-Idempotency-Token": {"tok-1"}}}, 200)
		m := must(t, e, subjects.ChatMessageReceived(tenant)+"", func() *chatv1.MessageReceived { return &chatv1.MessageReceived{} })
		if m.GetMessageSid() != "IM00000000000000000000000000000001" || m.GetBody() != "Where is my order?" || m.GetIndex() != 3 ||
			m.GetEntryId() != "sms-conv" || m.GetServiceId() != "support" || m.GetSource() != "SMS" || m.GetIdempotencyToken() != "tok-1" {
			t.Errorf("MessageReceived = %v", m)
		}
		c := m.GetConversation()
		if c.GetChannel() != messagingv1.Channel_CHANNEL_SMS || c.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS ||
			c.GetCustomerAddress() != customer || c.GetConversationSid() != "CH00000000000000000000000000000001" || c.GetChatServiceSid() != convSvc {
			t.Errorf("conversation = %v", c)
		}
		if got := m.GetCreatedAt().AsTime(); !got.Equal(time.Date(2026, 11, 20, 10, 0, 0, 123e6, time.UTC)) {
			t.Errorf("created_at = %v", got)
		}
	})

	t.Run("onMessageAdded with media and no body, over GET", func(t *testing.T) {
		p := convParams("onMessageAdded", "MessageSid", "IM00000000000000000000000000000002", "Source", "WHATSAPP", "Author", waCustomer,
			"Media", `[{"Sid":"ME00000000000000000000000000000001","Filename":"a.jpg","ContentType":"image/jpeg","Size":1234,"Category":"media"}]`)
		expectStatus(t, chattest.Webhook{Method: http.MethodGet, URL: cb, Params: p, Token: token}, 200)
		got := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), func() *chatv1.MessageReceived { return &chatv1.MessageReceived{} },
			func(m *chatv1.MessageReceived) bool { return m.GetMessageSid() == "IM00000000000000000000000000000002" })
		if len(got) != 1 {
			t.Fatalf("%d messages, want 1", len(got))
		}
		m := got[0]
		if m.GetBody() != "" || len(m.GetMedia()) != 1 || m.GetMedia()[0].GetSid() != "ME00000000000000000000000000000001" ||
			m.GetMedia()[0].GetContentType() != "image/jpeg" || m.GetMedia()[0].GetSizeBytes() != 1234 ||
			m.GetConversation().GetChannel() != messagingv1.Channel_CHANNEL_WHATSAPP {
			t.Errorf("MessageReceived = %v", m)
		}
	})

	t.Run("onMessageAdded from the API is acknowledged, not published", func(t *testing.T) {
		p := convParams("onMessageAdded", "MessageSid", "IM00000000000000000000000000000003", "Source", "API", "Author", "system", "Body", "hi")
		expectStatus(t, chattest.Webhook{URL: cb, Params: p, Token: token}, 200)
		if got := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), func() *chatv1.MessageReceived { return &chatv1.MessageReceived{} },
			func(m *chatv1.MessageReceived) bool { return m.GetMessageSid() == "IM00000000000000000000000000000003" }); len(got) != 0 {
			t.Errorf("API message published: %v", got)
		}
	})

	t.Run("onConversationAdded", func(t *testing.T) {
		p := convParams("onConversationAdded", "MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", "+15550009999",
			"State", "active", "Attributes", "{}", "DateCreated", "2026-11-20T10:00:00.000Z", "MessagingServiceSid", "MG00000000000000000000000000000001")
		expectStatus(t, chattest.Webhook{URL: cb, Params: p, Token: token}, 200)
		m := must(t, e, subjects.ChatConversationAdded(tenant), func() *chatv1.ConversationAdded { return &chatv1.ConversationAdded{} })
		c := m.GetConversation()
		if m.GetState() != chatv1.ConversationState_CONVERSATION_STATE_ACTIVE || c.GetCustomerAddress() != customer ||
			c.GetBusinessAddress() != "+15550009999" || c.GetConversationSid() != "CH00000000000000000000000000000001" ||
			m.GetEntryId() != "sms-conv" || c.GetChannel() != messagingv1.Channel_CHANNEL_SMS {
			t.Errorf("ConversationAdded = %v", m)
		}
	})

	t.Run("onParticipantAdded", func(t *testing.T) {
		p := convParams("onParticipantAdded", "ParticipantSid", "MB00000000000000000000000000000001", "MessagingBinding.Address", waCustomer,
			"MessagingBinding.ProxyAddress", "whatsapp:+15550009999", "RoleSid", "RL00000000000000000000000000000001")
		expectStatus(t, chattest.Webhook{URL: cb, Params: p, Token: token}, 200)
		m := must(t, e, subjects.ChatParticipantAdded(tenant), func() *chatv1.ParticipantAdded { return &chatv1.ParticipantAdded{} })
		if m.GetParticipantSid() != "MB00000000000000000000000000000001" || m.GetAddress() != waCustomer ||
			m.GetChannel() != messagingv1.Channel_CHANNEL_WHATSAPP || m.GetRoleSid() != "RL00000000000000000000000000000001" {
			t.Errorf("ParticipantAdded = %v", m)
		}
	})

	t.Run("onConversationStateUpdated", func(t *testing.T) {
		p := convParams("onConversationStateUpdated", "StateFrom", "inactive", "StateTo", "closed", "Reason", "TIMER",
			"DateUpdated", "2026-11-21T10:00:00.000Z")
		expectStatus(t, chattest.Webhook{URL: cb, Params: p, Token: token, Header: http.Header{"I-Twilio-Idempotency-Token": {"state-1"}}}, 200)
		m := must(t, e, subjects.ChatConversationStateUpdated(tenant), func() *chatv1.ConversationStateUpdated { return &chatv1.ConversationStateUpdated{} })
		if m.GetStateFrom() != chatv1.ConversationState_CONVERSATION_STATE_INACTIVE || m.GetStateTo() != chatv1.ConversationState_CONVERSATION_STATE_CLOSED ||
			m.GetReason() != "TIMER" || m.GetConversationSid() != "CH00000000000000000000000000000001" || m.GetIdempotencyToken() != "state-1" {
			t.Errorf("ConversationStateUpdated = %v", m)
		}
	})

	t.Run("onDeliveryUpdated", func(t *testing.T) {
		p := convParams("onDeliveryUpdated", "MessageSid", "IM00000000000000000000000000000009", "DeliveryReceiptSid", "DY00000000000000000000000000000001",
			"Status", "undelivered", "ErrorCode", "30007", "ParticipantSid", "MB00000000000000000000000000000001", "ChannelMessageSid", "SM00000000000000000000000000000001")
		expectStatus(t, chattest.Webhook{URL: cb, Params: p, Token: token}, 200)
		m := must(t, e, subjects.ChatDeliveryUpdated(tenant), func() *chatv1.DeliveryUpdated { return &chatv1.DeliveryUpdated{} })
		if m.GetStatus() != messagingv1.DeliveryStatus_DELIVERY_STATUS_UNDELIVERED || m.GetErrorCode() != 30007 ||
			m.GetDeliveryReceiptSid() != "DY00000000000000000000000000000001" || m.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS {
			t.Errorf("DeliveryUpdated = %v", m)
		}
	})

	t.Run("other event types are acknowledged", func(t *testing.T) {
		expectStatus(t, chattest.Webhook{URL: cb, Params: convParams("onMessageUpdated", "MessageSid", "IM1"), Token: token}, 200)
	})

	t.Run("ChatServiceSid from the webhook URL when Twilio leaves it out", func(t *testing.T) {
		p := convParams("onMessageAdded", "MessageSid", "IM00000000000000000000000000000004", "Source", "SMS", "Author", customer, "Body", "x")
		p.Del("ChatServiceSid")
		expectStatus(t, chattest.Webhook{URL: cb, Params: p, Token: token}, 400)
		expectStatus(t, chattest.Webhook{URL: cb + "?chatServiceSid=" + convSvc, Params: p, Token: token}, 200)
	})
}

func TestMessagingEvents(t *testing.T) {
	e := newEnv(t, webhook.Options{}, nil)
	inbound := e.url(tenant, webhook.PathInbound)
	mk := func() *chatv1.MessageReceived { return &chatv1.MessageReceived{} }
	bySID := func(sid string) func(*chatv1.MessageReceived) bool {
		return func(m *chatv1.MessageReceived) bool { return m.GetMessageSid() == sid }
	}
	smsParams := func(sid, body string, kv ...string) url.Values {
		p := url.Values{"MessageSid": {sid}, "SmsMessageSid": {sid}, "SmsSid": {sid}, "SmsStatus": {"received"}, "AccountSid": {acct},
			"From": {customer}, "To": {smsNumber}, "Body": {body}, "NumMedia": {"0"}, "NumSegments": {"1"}, "ApiVersion": {"2010-04-01"},
			"ToCountry": {"US"}, "ToState": {""}, "FromCity": {""}}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Set(kv[i], kv[i+1])
		}
		return p
	}

	t.Run("MMS with every media item, answered with empty TwiML", func(t *testing.T) {
		p := smsParams("MM00000000000000000000000000000001", "", "NumMedia", "3",
			"MediaUrl0", "https://api.twilio.com/m/0", "MediaContentType0", "image/jpeg",
			"MediaUrl1", "https://api.twilio.com/m/1", "MediaContentType1", "image/png",
			"MediaUrl2", "https://api.twilio.com/m/2", "MediaContentType2", "video/mp4")
		got, body, hdr := chattest.Webhook{URL: inbound, Params: p, Token: token}.Do(t, nil)
		if got != 200 || !strings.Contains(body, "<Response></Response>") || !strings.HasPrefix(hdr.Get("Content-Type"), "text/xml") {
			t.Fatalf("answer %d %q %q, want 200 with empty TwiML", got, body, hdr.Get("Content-Type"))
		}
		ms := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), mk, bySID("MM00000000000000000000000000000001"))
		if len(ms) != 1 || len(ms[0].GetMedia()) != 3 || ms[0].GetMedia()[2].GetUrl() != "https://api.twilio.com/m/2" ||
			ms[0].GetMedia()[1].GetContentType() != "image/png" {
			t.Fatalf("MessageReceived = %v", ms)
		}
		if c := ms[0].GetConversation(); c.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_MESSAGING || c.GetBusinessAddress() != smsNumber ||
			c.GetCustomerAddress() != customer || c.GetChannel() != messagingv1.Channel_CHANNEL_SMS {
			t.Errorf("conversation = %v", c)
		}
	})

	t.Run("WhatsApp with ProfileName and WaId", func(t *testing.T) {
		p := url.Values{"MessageSid": {"SM00000000000000000000000000000002"}, "AccountSid": {acct}, "From": {waCustomer}, "To": {waNumber},
			"Body": {"hola"}, "NumMedia": {"1"}, "MediaUrl0": {"https://api.twilio.com/m/9"}, "MediaContentType0": {"image/jpeg"},
			"ProfileName": {"Ann"}, "WaId": {"15557654321"}, "MessageType": {"image"}}
		expectStatus(t, chattest.Webhook{URL: inbound, Params: p, Token: token}, 200)
		ms := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), mk, bySID("SM00000000000000000000000000000002"))
		if len(ms) != 1 || ms[0].GetProfileName() != "Ann" || ms[0].GetWaId() != "15557654321" || ms[0].GetSource() != "WHATSAPP" ||
			ms[0].GetConversation().GetChannel() != messagingv1.Channel_CHANNEL_WHATSAPP || len(ms[0].GetMedia()) != 1 || ms[0].GetEntryId() != "wa" {
			t.Fatalf("MessageReceived = %v", ms)
		}
	})

	t.Run("OptOutType", func(t *testing.T) {
		for i, tt := range []struct {
			kw   string
			want messagingv1.OptOutType
		}{{"STOP", messagingv1.OptOutType_OPT_OUT_TYPE_STOP}, {"START", messagingv1.OptOutType_OPT_OUT_TYPE_START}, {"HELP", messagingv1.OptOutType_OPT_OUT_TYPE_HELP}} {
			sid := "SM0000000000000000000000000000010" + string(rune('0'+i))
			expectStatus(t, chattest.Webhook{URL: inbound, Params: smsParams(sid, tt.kw, "OptOutType", tt.kw), Token: token}, 200)
			ms := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), mk, bySID(sid))
			if len(ms) != 1 || ms[0].GetOptOutType() != tt.want {
				t.Errorf("%s: MessageReceived = %v, want opt_out_type %v", tt.kw, ms, tt.want)
			}
		}
	})

	t.Run("fallback URL", func(t *testing.T) {
		p := smsParams("SM00000000000000000000000000000003", "via fallback", "ErrorCode", "11205", "ErrorUrl", inbound)
		body := expectStatus(t, chattest.Webhook{URL: e.url(tenant, webhook.PathFallback), Params: p, Token: token}, 200)
		if !strings.Contains(body, "<Response>") {
			t.Errorf("fallback answer %q, want TwiML", body)
		}
		ms := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), mk, bySID("SM00000000000000000000000000000003"))
		if len(ms) != 1 || !ms[0].GetFallback() || ms[0].GetFallbackErrorCode() != 11205 {
			t.Fatalf("MessageReceived = %v", ms)
		}
	})

	t.Run("status callbacks", func(t *testing.T) {
		status := e.url(tenant, webhook.PathStatus)
		for _, st := range []url.Values{
			{"MessageSid": {"SM00000000000000000000000000000004"}, "MessageStatus": {"sent"}, "SmsStatus": {"sent"}, "AccountSid": {acct}, "From": {waNumber}, "To": {waCustomer}},
			{"MessageSid": {"SM00000000000000000000000000000004"}, "MessageStatus": {"failed"}, "SmsStatus": {"failed"}, "ErrorCode": {"63016"}, "AccountSid": {acct}, "From": {waNumber}, "To": {waCustomer}},
		} {
			expectStatus(t, chattest.Webhook{URL: status, Params: st, Token: token}, 200)
		}
		ds := chattest.Find(t, e.js, subjects.ChatDeliveryUpdated(tenant), func() *chatv1.DeliveryUpdated { return &chatv1.DeliveryUpdated{} },
			func(d *chatv1.DeliveryUpdated) bool { return d.GetMessageSid() == "SM00000000000000000000000000000004" })
		if len(ds) != 2 || ds[0].GetStatus() != messagingv1.DeliveryStatus_DELIVERY_STATUS_SENT ||
			ds[1].GetStatus() != messagingv1.DeliveryStatus_DELIVERY_STATUS_FAILED || ds[1].GetErrorCode() != 63016 || ds[1].GetEntryId() != "wa" {
			t.Fatalf("DeliveryUpdated = %v", ds)
		}
	})

	t.Run("three deliveries and the fallback give one message", func(t *testing.T) {
		p := smsParams("SM00000000000000000000000000000005", "again and again")
		for range 3 {
			expectStatus(t, chattest.Webhook{URL: inbound, Params: p, Token: token, Header: http.Header{"I-Twilio-Idempotency-Token": {"same"}}}, 200)
		}
		fb := smsParams("SM00000000000000000000000000000005", "again and again", "ErrorCode", "11200")
		expectStatus(t, chattest.Webhook{URL: e.url(tenant, webhook.PathFallback), Params: fb, Token: token}, 200)
		if ms := chattest.Find(t, e.js, subjects.ChatMessageReceived(tenant), mk, bySID("SM00000000000000000000000000000005")); len(ms) != 1 {
			t.Fatalf("%d messages, want 1", len(ms))
		}
	})
}

func TestSignatures(t *testing.T) {
	e := newEnv(t, webhook.Options{}, nil)
	cb := e.url(tenant, webhook.PathConversations)
	msg := func(sid string) url.Values {
		return convParams("onMessageAdded", "MessageSid", sid, "Source", "SMS", "Author", customer, "Body", "hello")
	}
	tests := []struct {
		name string
		w    chattest.Webhook
		want int
	}{
		{"valid", chattest.Webhook{URL: cb, Params: msg("IM10000000000000000000000000000001"), Token: token}, 200},
		{"secondary token during rotation", chattest.Webhook{URL: cb, Params: msg("IM10000000000000000000000000000002"), Token: nextToken}, 200},
		{"forged with another token", chattest.Webhook{URL: cb, Params: msg("IM10000000000000000000000000000003"), Token: "not-the-auth-token"}, 403},
		{"missing", chattest.Webhook{URL: cb, Params: msg("IM10000000000000000000000000000004")}, 403},
		{"replayed with a changed body", chattest.Webhook{URL: cb, Params: msg("IM10000000000000000000000000000005"), Token: token,
			SignedParams: func() url.Values { p := msg("IM10000000000000000000000000000005"); p.Set("Body", "original"); return p }()}, 403},
		{"signed for another URL", chattest.Webhook{URL: cb, Params: msg("IM10000000000000000000000000000006"), Token: token,
			SignedURL: "https://elsewhere.example/api/acs/chat-handler/tenants/acme/twilio-callbacks"}, 403},
		// Tenant globex's admin holds a valid Auth Token, of another
		// account: events forged into acme with it are refused.
		{"another tenant's token", chattest.Webhook{URL: cb, Params: msg("IM10000000000000000000000000000007"), Token: otherTok}, 403},
		// acme's valid webhook sent to globex's URL: the URL differs, and
		// acme's service is not globex's.
		{"sent to another tenant's URL", chattest.Webhook{URL: e.url(otherTen, webhook.PathConversations), Params: msg("IM10000000000000000000000000000008"), Token: token,
			SignedURL: cb}, 403},
		{"another tenant's service with this tenant's token", chattest.Webhook{URL: e.url(otherTen, webhook.PathConversations),
			Params: func() url.Values {
				p := msg("IM10000000000000000000000000000009")
				p.Set("ChatServiceSid", otherSvc)
				return p
			}(), Token: token}, 403},
		{"query string kept in the signed URL", chattest.Webhook{URL: cb + "?team=blue&x=%27", Params: msg("IM10000000000000000000000000000010"), Token: token}, 200},
		{"query string dropped from the signed URL", chattest.Webhook{URL: cb + "?team=blue", Params: msg("IM10000000000000000000000000000011"), Token: token, SignedURL: cb}, 403},
		{"AccountSid of another account", chattest.Webhook{URL: cb, Params: func() url.Values {
			p := msg("IM10000000000000000000000000000012")
			p.Set("AccountSid", otherAcct)
			return p
		}(), Token: token}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectStatus(t, tt.w, tt.want) })
	}
	// Only the accepted ones reached the stream.
	ms := chattest.Messages(t, e.js, subjects.ChatMessageReceived(tenant))
	if len(ms) != 3 {
		t.Errorf("%d messages on the stream, want 3 (the accepted ones)", len(ms))
	}
}

func TestJSONBodySignature(t *testing.T) {
	e := newEnv(t, webhook.Options{}, nil)
	body := `{"EventType":"onMessageAdded","AccountSid":"` + acct + `","ChatServiceSid":"` + convSvc + `","ConversationSid":"CH1","MessageSid":"IM20000000000000000000000000000001","Source":"SMS","Author":"` + customer + `","Body":"json","Index":4}`
	full := e.url(tenant, webhook.PathConversations) + "?bodySHA256=" + twiliosig.BodySHA256([]byte(body))
	send := func(b string) int {
		req, _ := http.NewRequest(http.MethodPost, full, strings.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Twilio-Signature", twiliosig.Sign(token, full, nil))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := send(body); got != 200 {
		t.Fatalf("signed JSON body: status %d, want 200", got)
	}
	if got := send(strings.Replace(body, `"json"`, `"evil"`, 1)); got != 403 {
		t.Fatalf("changed JSON body: status %d, want 403", got)
	}
	m := must(t, e, subjects.ChatMessageReceived(tenant), func() *chatv1.MessageReceived { return &chatv1.MessageReceived{} })
	if m.GetBody() != "json" || m.GetIndex() != 4 {
		t.Errorf("MessageReceived = %v", m)
	}
}

func TestPublicURL(t *testing.T) {
	const public = "https://chat.example.com"
	p := func(sid string) url.Values {
		return convParams("onMessageAdded", "MessageSid", sid, "Source", "SMS", "Author", customer, "Body", "hi")
	}
	path := webhook.TenantPrefix + tenant + webhook.PathConversations
	t.Run("configured public base, default port either way", func(t *testing.T) {
		e := newEnv(t, webhook.Options{PublicBaseURL: public}, nil)
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000001"), Token: token, SignedURL: public + path}, 200)
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000002"), Token: token, SignedURL: "https://chat.example.com:443" + path}, 200)
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000003"), Token: token, SignedURL: "http://chat.example.com" + path}, 403)
	})
	t.Run("public base with a path prefix the proxy strips", func(t *testing.T) {
		e := newEnv(t, webhook.Options{PublicBaseURL: public + "/switchboard/"}, nil)
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000004"), Token: token, SignedURL: public + "/switchboard" + path}, 200)
	})
	fwd := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"chat.example.com"}}
	t.Run("forwarding headers from a trusted proxy", func(t *testing.T) {
		e := newEnv(t, webhook.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, nil)
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000005"), Token: token, SignedURL: public + path, Header: fwd}, 200)
		// Forwarded (RFC 7239) and X-Forwarded-Port.
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000006"), Token: token, SignedURL: public + path,
			Header: http.Header{"Forwarded": {`for=1.2.3.4;proto=https;host="chat.example.com"`}}}, 200)
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000007"), Token: token, SignedURL: "https://chat.example.com:8443" + path,
			Header: http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"chat.example.com"}, "X-Forwarded-Port": {"8443"}}}, 200)
		// A value a client put before the proxy's own is not used.
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000008"), Token: token, SignedURL: "https://evil.example" + path,
			Header: http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example, chat.example.com"}}}, 403)
	})
	t.Run("forwarding headers from an untrusted peer are ignored", func(t *testing.T) {
		e := newEnv(t, webhook.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, nil)
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000009"), Token: token, SignedURL: public + path, Header: fwd}, 403)
		// The URL actually requested still validates.
		expectStatus(t, chattest.Webhook{URL: e.srv.URL + path, Params: p("IM30000000000000000000000000000010"), Token: token, Header: fwd}, 200)
	})
}

func TestRoutingAndMalformedRequests(t *testing.T) {
	e := newEnv(t, webhook.Options{MaxBodyBytes: 2048}, nil)
	inbound := e.url(tenant, webhook.PathInbound)
	sms := func(to string) url.Values {
		return url.Values{"MessageSid": {"SM40000000000000000000000000000001"}, "AccountSid": {acct}, "From": {customer}, "To": {to}, "Body": {"hi"}}
	}
	tests := []struct {
		name string
		w    chattest.Webhook
		want int
	}{
		// Nothing that routes: answered like a bad signature (see
		// TestUnsignedRequestsCannotEnumerate).
		{"tenant id that cannot exist", chattest.Webhook{URL: e.url("Not_A_Tenant", webhook.PathInbound), Params: sms(smsNumber), Token: token}, 403},
		{"unknown tenant", chattest.Webhook{URL: e.url("nobody", webhook.PathInbound), Params: sms(smsNumber), Token: token}, 403},
		{"unknown number", chattest.Webhook{URL: inbound, Params: sms("+15550000000"), Token: token}, 403},
		{"unknown Conversations service", chattest.Webhook{URL: e.url(tenant, webhook.PathConversations),
			Params: convParams("onMessageAdded", "ChatServiceSid", "IS99999999999999999999999999999999"), Token: token}, 403},
		{"disabled entry", chattest.Webhook{URL: inbound, Params: sms(offNumber), Token: token}, 403},
		{"disabled entry still takes status callbacks", chattest.Webhook{URL: e.url(tenant, webhook.PathStatus),
			Params: url.Values{"MessageSid": {"SM40000000000000000000000000000002"}, "MessageStatus": {"delivered"}, "From": {offNumber}, "To": {customer}}, Token: token}, 200},
		{"missing To", chattest.Webhook{URL: inbound, Params: url.Values{"MessageSid": {"SM1"}, "From": {customer}}, Token: token}, 400},
		{"missing MessageSid", chattest.Webhook{URL: inbound, Params: url.Values{"To": {smsNumber}, "From": {customer}}, Token: token}, 400},
		{"missing EventType", chattest.Webhook{URL: e.url(tenant, webhook.PathConversations), Params: url.Values{"ChatServiceSid": {convSvc}}, Token: token}, 400},
		{"body over the limit", chattest.Webhook{URL: inbound, Params: func() url.Values { p := sms(smsNumber); p.Set("Body", strings.Repeat("x", 4096)); return p }(), Token: token}, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectStatus(t, tt.w, tt.want) })
	}
	raw := func(method, ctype, body string) int {
		req, _ := http.NewRequest(method, inbound, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, tt := range []struct {
		name, ctype, body string
		want              int
	}{
		{"malformed form", "application/x-www-form-urlencoded", "To=%2B1555&Body=%zz", 400},
		{"semicolon separators", "application/x-www-form-urlencoded", "To=1;From=2", 400},
		{"not a form", "text/plain", "hello", 415},
		{"no content type with a body", "", "To=1", 415},
		{"malformed json", "application/json", "{", 400},
	} {
		if got := raw(http.MethodPost, tt.ctype, tt.body); got != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.want)
		}
	}
	if got := raw(http.MethodPut, "application/x-www-form-urlencoded", ""); got != http.StatusMethodNotAllowed {
		t.Errorf("PUT: status %d, want 405", got)
	}
	if ms := chattest.Messages(t, e.js, "chat.message.>"); len(ms) != 0 {
		t.Errorf("%d messages published by rejected requests", len(ms))
	}
}

// failing is a broker that refuses or stalls.
type failing struct {
	stall     bool
	connected bool
}

func (f failing) Emit(ctx context.Context, _ string, _ proto.Message, _ string) error {
	if f.stall {
		<-ctx.Done()
		return ctx.Err()
	}
	return errors.New("nats: no responders available for request")
}

func (f failing) Connected() bool { return f.connected }

func TestBrokerUnavailable(t *testing.T) {
	p := url.Values{"MessageSid": {"SM50000000000000000000000000000001"}, "AccountSid": {acct}, "From": {customer}, "To": {smsNumber}, "Body": {"hi"}}
	for _, tt := range []struct {
		name string
		pub  failing
	}{
		{"disconnected", failing{}},
		{"publish fails", failing{connected: true}},
		{"publish stalls past the timeout", failing{connected: true, stall: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, webhook.Options{PublishTimeout: 100 * time.Millisecond}, tt.pub)
			got, _, hdr := chattest.Webhook{URL: e.url(tenant, webhook.PathInbound), Params: p, Token: token}.Do(t, nil)
			if got != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
				t.Errorf("status %d Retry-After %q, want 503 with Retry-After", got, hdr.Get("Retry-After"))
			}
		})
	}
}

func TestRedactAddress(t *testing.T) {
	for in, want := range map[string]string{"+15557654321": "…21", "whatsapp:+15557654321": "whatsapp:…21", "1": "…"} {
		if got := webhook.RedactAddress(in); got != want {
			t.Errorf("RedactAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
