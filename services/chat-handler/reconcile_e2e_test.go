package chathandler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	chatv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/chat/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/chattest"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/reconcile"
	"github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// gap is a tenant whose webhooks Twilio cannot deliver: its SMS number's
// URLs and its Conversations service's post-event URL point where nothing
// listens, as during an outage of every chat-handler.
const (
	gapAccount  = "AC22222222222222222222222222222222"
	gapToken    = "22222222222222222222222222222222"
	gapKey      = "SK22222222222222222222222222222222"
	gapSecret   = "gapSecret2222222222222222222222222"
	gapNumber   = "+12025550281"
	gapConvNum  = "+12025550282"
	gapService  = "IS22222222222222222222222222222222"
	gapSpecYAML = `
tenant:
  id: gap
  display_name: Gap
  modalities: {instant_messaging: true, twilio: true, sms: true, whatsapp: false}
organization_units:
  - {id: root, name: Gap}
connectors:
  - {id: twilio, name: Twilio, org_unit: root, account_sid: ` + gapAccount + `, api_key_sid: ` + gapKey + `, api_key_secret: ` + gapSecret + `, auth_token: "` + gapToken + `", region: us1}
messaging_entries:
  - {id: sms, name: SMS, org_unit: root, connector: twilio, channel: sms, path: messaging, business_addresses: ["` + gapNumber + `"]}
  - {id: conv, name: Conversations, org_unit: root, connector: twilio, channel: sms, path: conversations, conversations_service_sid: ` + gapService + `}
services:
  - {id: help, name: Help, org_unit: root, im: true, channels: [sms], messaging_entries: [sms, conv], greeting: Thanks for writing to Gap!}
`
)

func mint(t *testing.T, info devstack.Info, tenant string, roles ...string) string {
	t.Helper()
	tok, err := info.AuthKeys.Mint(authn.Claims{Roles: roles, Tenant: tenant, Name: "test", RegisteredClaims: jwt.RegisteredClaims{Subject: "test-" + strings.Join(roles, "-")}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func reconcileCall(t *testing.T, ctx context.Context, info devstack.Info, tenant, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, info.ChatHandlerURL+webhook.TenantPrefix+tenant+"/reconcile", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	return res.StatusCode, b.String()
}

// Customer messages Twilio could not deliver while chat-handler was down
// (Programmable Messaging and Conversations alike) reach the CHAT stream
// exactly once when the tenant is reconciled from Twilio's history, as
// the webhook would have published them, with the statuses of the
// business's replies; a second run adds nothing.
func TestReconcileFromTwilioHistory(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	js := jetStream(t, info)

	applySpec(t, ctx, info, gapSpecYAML)
	const down = "http://127.0.0.1:1/down" // nothing listens on port 1
	if err := sim.PutAccount(ctx, simclient.Account{
		AccountSID: gapAccount, AuthToken: gapToken, APIKeys: map[string]string{gapKey: gapSecret},
		Numbers: []simclient.PhoneNumber{
			{Address: gapNumber, SmsURL: down, SmsFallbackURL: down},
			{Address: gapConvNum, ConversationsServiceSID: gapService},
		},
		ConversationsServices: []simclient.ConversationsService{{SID: gapService, PostWebhookURL: down}},
	}); err != nil {
		t.Fatalf("configure the emulator for gap: %v", err)
	}

	start := time.Now().Add(-time.Second)
	const ann, bob = "+15553330001", "+15553330002"
	var lost []simclient.CustomerMessageResult
	for i, m := range []simclient.CustomerMessage{
		{From: ann, To: gapNumber, Body: "first, while you were down"},
		{From: ann, To: gapNumber, Body: "second", Media: []simclient.Media{{URL: "https://example.com/a.png", ContentType: "image/png"}}},
		{From: bob, To: gapConvNum, Body: "over Conversations"},
		{From: bob, To: gapConvNum, Body: "still there?"},
	} {
		res, err := sim.SendMessage(ctx, m)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		lost = append(lost, res)
	}
	for _, m := range lost {
		if n := len(chattest.Find(t, js, subjects.ChatMessageReceived("gap"), newMsg, msgSID(m.MessageSID))); n != 0 {
			t.Fatalf("%s reached the stream though its webhook had nowhere to go", m.MessageSID)
		}
	}

	outSID := sendLost(t, ctx, info, gapNumber, ann, down)

	// Who may ask, and what a bad request is told.
	window := fmt.Sprintf(`{"since": %q}`, start.UTC().Format(time.RFC3339))
	for _, c := range []struct {
		name, tenant, token, body string
		status                    int
		says                      string
	}{
		{"no token", "gap", "", window, http.StatusUnauthorized, "bearer token"},
		{"an agent", "gap", mint(t, info, "gap", authn.RoleAgent), window, http.StatusForbidden, "admin"},
		{"another tenant's admin", "gap", mint(t, info, "demo", authn.RoleAdmin), window, http.StatusForbidden, "admin"},
		{"no since", "gap", mint(t, info, "gap", authn.RoleAdmin), `{}`, http.StatusBadRequest, "since is required"},
		{"inverted", "gap", mint(t, info, "gap", authn.RoleAdmin), `{"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}`, http.StatusBadRequest, "not before"},
		{"too long", "gap", mint(t, info, "gap", authn.RoleAdmin), `{"since": "2020-01-01T00:00:00Z"}`, http.StatusBadRequest, "longer than"},
		{"not a time", "gap", mint(t, info, "gap", authn.RoleAdmin), `{"since": "yesterday"}`, http.StatusBadRequest, "RFC 3339"},
		{"unknown field", "gap", mint(t, info, "gap", authn.RoleAdmin), `{"since": "2026-01-01T00:00:00Z", "tenant": "demo"}`, http.StatusBadRequest, "unknown field"},
	} {
		status, body := reconcileCall(t, ctx, info, c.tenant, c.token, c.body)
		if status != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, status, body, c.status, c.says)
		}
	}

	admin := mint(t, info, "gap", authn.RoleAdmin)
	for run := 1; run <= 2; run++ {
		status, body := reconcileCall(t, ctx, info, "gap", admin, window)
		if status != http.StatusOK {
			t.Fatalf("run %d: %d %s", run, status, body)
		}
		var rep reconcile.Report
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Entries != 2 || rep.CustomerMessages != len(lost) || len(rep.Problems) != 0 {
			t.Errorf("run %d reported %+v, want 2 entries and %d customer messages", run, rep, len(lost))
		}
	}
	for i, m := range lost {
		got := chattest.WaitFind(t, js, subjects.ChatMessageReceived("gap"), 1, newMsg, msgSID(m.MessageSID))
		if len(got) != 1 {
			t.Fatalf("message %d (%s) is on the stream %d times after two runs, want once", i, m.MessageSID, len(got))
		}
		ev := got[0]
		conv := ev.GetConversation()
		switch {
		case i < 2 && (conv.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_MESSAGING || conv.GetCustomerAddress() != ann ||
			conv.GetBusinessAddress() != gapNumber || ev.GetEntryId() != "sms"):
			t.Errorf("message %d = %v, want ann's on the Messaging path of entry sms", i, ev)
		case i >= 2 && (conv.GetPath() != messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS || conv.GetCustomerAddress() != bob ||
			conv.GetConversationSid() == "" || ev.GetEntryId() != "conv"):
			t.Errorf("message %d = %v, want bob's on the Conversations path of entry conv", i, ev)
		}
		if ev.GetServiceId() != "help" || ev.GetReceivedAt().AsTime().Before(start) {
			t.Errorf("message %d: service %q received %v", i, ev.GetServiceId(), ev.GetReceivedAt().AsTime())
		}
	}
	second := chattest.Find(t, js, subjects.ChatMessageReceived("gap"), newMsg, msgSID(lost[1].MessageSID))[0]
	if len(second.GetMedia()) != 1 || second.GetMedia()[0].GetContentType() != "image/png" || !strings.Contains(second.GetMedia()[0].GetUrl(), lost[1].MessageSID) {
		t.Errorf("the second message's media = %v, want its one image at Twilio's media URL", second.GetMedia())
	}
	if second.GetBody() != "second" {
		t.Errorf("the second message's body = %q", second.GetBody())
	}
	// A message the business sent whose status callbacks were lost: its
	// current status is on the stream once.
	got := chattest.WaitFind(t, js, subjects.ChatDeliveryUpdated("gap"), 1, newDelivery, func(d *chatv1.DeliveryUpdated) bool {
		return d.GetMessageSid() == outSID
	})
	if len(got) != 1 || got[0].GetStatus() != messagingv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED || got[0].GetEntryId() != "sms" {
		t.Errorf("status events of %s = %v, want one: delivered, entry sms", outSID, got)
	}

	// Bob's chat is open now and the workflow greeted him over
	// Conversations; the receipts of that greeting went nowhere. Once
	// Twilio has it delivered, a run brings the receipt in, once.
	greeting, err := sim.WaitInboxMessage(ctx, bob, func(m simclient.OutboundMessage) bool {
		return m.Path == "conversations" && m.Status == "delivered"
	})
	if err != nil {
		t.Fatalf("no greeting delivered to bob: %v", err)
	}
	for range 2 {
		if status, body := reconcileCall(t, ctx, info, "gap", admin, window); status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
	}
	receipts := chattest.WaitFind(t, js, subjects.ChatDeliveryUpdated("gap"), 1, newDelivery, func(d *chatv1.DeliveryUpdated) bool {
		return d.GetConversationSid() == greeting.ConversationSID && d.GetStatus() == messagingv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED
	})
	if len(receipts) != 1 || receipts[0].GetPath() != messagingv1.TwilioPath_TWILIO_PATH_CONVERSATIONS || receipts[0].GetDeliveryReceiptSid() == "" || receipts[0].GetEntryId() != "conv" {
		t.Errorf("delivered receipts of the greeting = %v, want one on the Conversations path of entry conv", receipts)
	}
}

// sendLost sends a message from the business whose status callbacks go
// nowhere, and waits until Twilio has it delivered.
func sendLost(t *testing.T, ctx context.Context, info devstack.Info, from, to, callback string) string {
	t.Helper()
	base, err := url.Parse(info.TwilioSimURL)
	if err != nil {
		t.Fatal(err)
	}
	client := twilioclient.NewClient(twilioclient.Credentials{AccountSID: gapAccount, APIKeySID: gapKey, APIKeySecret: gapSecret}, twilioclient.Options{BaseURL: base})
	p := &api.CreateMessageParams{}
	p.SetFrom(from).SetTo(to).SetBody("we are looking into it").SetStatusCallback(callback)
	m, err := client.Api.CreateMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	for {
		got, err := client.Api.FetchMessage(*m.Sid, &api.FetchMessageParams{})
		if err != nil {
			t.Fatal(err)
		}
		if *got.Status == "delivered" {
			return *m.Sid
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still %s", *m.Sid, *got.Status)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
