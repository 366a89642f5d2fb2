package twiliosim_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// deadURL is an http URL on a port nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/sms"
}

// withNumber adds a number to the test account at runtime through the /sim API.
func withNumber(t *testing.T, s *sim, cfg twiliosim.Config, n twiliosim.PhoneNumber) {
	t.Helper()
	a := cfg.Accounts[0]
	a.Numbers = append(append([]twiliosim.PhoneNumber(nil), a.Numbers...), n)
	if err := s.c.PutAccount(testCtx(t), a); err != nil {
		t.Fatalf("PutAccount() error = %v", err)
	}
}

func TestConnectionFailureRetriesThenFallback(t *testing.T) {
	rc := newReceiver(t)
	cfg := baseConfig(rc)
	s := startSim(t, cfg)
	ctx := testCtx(t)
	dead := deadURL(t)
	const number = "+12025550150"
	withNumber(t, s, cfg, twiliosim.PhoneNumber{Address: number, SmsURL: dead, SmsFallbackURL: rc.url("/fallback")})

	res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: number, Body: "anyone?"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if res.Webhook == nil || res.Webhook.Attempts != 2 || res.Webhook.Status != 0 || res.Webhook.FallbackStatus != http.StatusOK {
		t.Errorf("Webhook = %+v, want 2 attempts without an answer and a fallback answered 200", res.Webhook)
	}
	attempts, err := s.c.Webhooks(ctx, simclient.WebhookFilter{MessageSID: res.MessageSID})
	if err != nil {
		t.Fatalf("Webhooks() error = %v", err)
	}
	if len(attempts) != 3 || attempts[0].Error == "" || attempts[1].Error == "" || attempts[2].Kind != "fallback" {
		t.Fatalf("attempts = %+v, want two failed requests and one fallback", attempts)
	}
	if attempts[0].IdempotencyToken != attempts[1].IdempotencyToken {
		t.Errorf("retry changed the idempotency token")
	}
	fb := rc.requests("/fallback")
	if len(fb) != 1 {
		t.Fatalf("fallback got %d requests, want 1", len(fb))
	}
	checkSignature(t, fb[0])
	if fb[0].Form.Get("ErrorCode") != "11205" || fb[0].Form.Get("ErrorUrl") != dead || fb[0].Form.Get("MessageSid") != res.MessageSID {
		t.Errorf("fallback ErrorCode %q ErrorUrl %q MessageSid %q, want 11205, %s, the message", fb[0].Form.Get("ErrorCode"), fb[0].Form.Get("ErrorUrl"), fb[0].Form.Get("MessageSid"), dead)
	}
	if fb[0].Header.Get("I-Twilio-Idempotency-Token") != attempts[0].IdempotencyToken {
		t.Errorf("fallback token differs from the primary's")
	}
}

func TestServerErrorGoesToFallbackWithoutRetry(t *testing.T) {
	rc := newReceiver(t)
	rc.handle("/sms", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	s := startSim(t, baseConfig(rc))
	res, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{From: customer, To: smsNumber, Body: "boom"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if res.Webhook.Status != http.StatusInternalServerError || res.Webhook.Attempts != 1 {
		t.Errorf("Webhook = %+v, want one attempt answered 500", res.Webhook)
	}
	fb := rc.requests("/sms-fallback")
	if len(fb) != 1 || fb[0].Form.Get("ErrorCode") != "11200" || fb[0].Form.Get("ErrorUrl") != rc.url("/sms") {
		t.Fatalf("fallback requests = %+v, want one with ErrorCode 11200 and the primary URL", fb)
	}
	checkSignature(t, fb[0])
}

func TestURLFragmentOverridesRetries(t *testing.T) {
	rc := newReceiver(t)
	cfg := baseConfig(rc)
	s := startSim(t, cfg)
	const number = "+12025550151"
	withNumber(t, s, cfg, twiliosim.PhoneNumber{Address: number, SmsURL: deadURL(t) + "#rc=3"})
	res, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{From: customer, To: number, Body: "x"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if res.Webhook.Attempts != 4 {
		t.Errorf("attempts = %d, want 4 (rc=3)", res.Webhook.Attempts)
	}
	if strings.Contains(res.Webhook.URL, "#") {
		t.Errorf("webhook URL %q keeps the fragment", res.Webhook.URL)
	}
}

// blockUntilAbandoned answers only after the emulator gave up on the request.
func blockUntilAbandoned(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func TestTimeoutsAbandonTheRequest(t *testing.T) {
	t.Run("messaging", func(t *testing.T) {
		rc := newReceiver(t)
		rc.handle("/sms", blockUntilAbandoned)
		cfg := baseConfig(rc)
		cfg.MessagingWebhookTimeout = 100 * time.Millisecond
		s := startSim(t, cfg)
		res, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{From: customer, To: smsNumber, Body: "slow"})
		if err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		if res.Webhook.Status != 0 || res.Webhook.Attempts != 2 || res.Webhook.FallbackStatus != http.StatusOK {
			t.Errorf("Webhook = %+v, want two abandoned attempts then the fallback", res.Webhook)
		}
		attempts, _ := s.c.Webhooks(testCtx(t), simclient.WebhookFilter{MessageSID: res.MessageSID, Kind: "messaging"})
		for _, a := range attempts {
			if a.StatusCode != 0 || !strings.Contains(a.Error, "timeout") {
				t.Errorf("attempt = status %d error %q, want no status and a timeout error", a.StatusCode, a.Error)
			}
		}
		if fb := rc.requests("/sms-fallback"); len(fb) != 1 || fb[0].Form.Get("ErrorCode") != "11205" {
			t.Errorf("fallback = %+v, want one with 11205", fb)
		}
	})

	t.Run("conversations", func(t *testing.T) {
		rc := newReceiver(t)
		rc.handle("/conv", blockUntilAbandoned)
		cfg := baseConfig(rc)
		cfg.ConversationsWebhookTimeout = 100 * time.Millisecond
		cfg.WebhookRetries = -1
		s := startSim(t, cfg)
		res, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{From: customer, To: convNumber, Body: "slow"})
		if err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		if res.Webhook.Status != 0 || res.Webhook.Attempts != 1 || res.Webhook.Error == "" {
			t.Errorf("Webhook = %+v, want one abandoned attempt", res.Webhook)
		}
		attempts, _ := s.c.Webhooks(testCtx(t), simclient.WebhookFilter{Kind: "conversations"})
		if len(attempts) != 3 {
			t.Fatalf("got %d attempts, want one per event (3)", len(attempts))
		}
		for _, a := range attempts {
			if !strings.Contains(a.Error, "timeout") {
				t.Errorf("%s attempt error = %q, want a timeout", a.Event, a.Error)
			}
		}
	})
}

func TestConversationsRetryCountOnRetry(t *testing.T) {
	rc := newReceiver(t)
	var calls atomic.Int32
	rc.handle("/conv", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// Drop the connection without answering: a connection failure.
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
	})
	cfg := baseConfig(rc)
	cfg.Accounts[0].ConversationsServices[0].Filters = []string{"onMessageAdded"}
	s := startSim(t, cfg)
	res, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{From: customer, To: convNumber, Body: "retry"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	got := rc.requests("/conv")
	if len(got) != 2 || res.Webhook.Attempts != 2 || res.Webhook.Status != http.StatusOK {
		t.Fatalf("got %d requests, summary %+v; want a failed attempt and a retry answered 200", len(got), res.Webhook)
	}
	if got[0].Form.Get("RetryCount") != "0" || got[1].Form.Get("RetryCount") != "1" {
		t.Errorf("RetryCount %q then %q, want 0 then 1", got[0].Form.Get("RetryCount"), got[1].Form.Get("RetryCount"))
	}
	if got[0].Header.Get("I-Twilio-Idempotency-Token") != got[1].Header.Get("I-Twilio-Idempotency-Token") {
		t.Errorf("retry changed the idempotency token")
	}
	checkSignature(t, got[1])
}

func TestConversationLifecycle(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	conv := twilioClient(t, s.base, keySID, keySecret).ConversationsV1

	first, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "one"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}

	// The pair is bound: another conversation cannot take it.
	other, err := conv.CreateServiceConversation(convSvc, &conversations.CreateServiceConversationParams{})
	if err != nil {
		t.Fatalf("CreateServiceConversation() error = %v", err)
	}
	pp := &conversations.CreateServiceConversationParticipantParams{}
	pp.SetMessagingBindingAddress(customer).SetMessagingBindingProxyAddress(convNumber)
	_, err = conv.CreateServiceConversationParticipant(convSvc, *other.Sid, pp)
	if te := restErr(t, err); te.Code != 50416 || te.Status != http.StatusConflict {
		t.Errorf("adding a bound pair error = %d/%d, want 409/50416", te.Status, te.Code)
	}

	up := &conversations.UpdateServiceConversationParams{}
	up.SetState("closed").SetXTwilioWebhookEnabled("true")
	closed, err := conv.UpdateServiceConversation(convSvc, first.ConversationSID, up)
	if err != nil {
		t.Fatalf("UpdateServiceConversation() error = %v", err)
	}
	if deref(closed.State) != "closed" {
		t.Errorf("state = %q, want closed", deref(closed.State))
	}
	got, err := s.c.WaitWebhooks(ctx, simclient.WebhookFilter{Event: "onConversationStateUpdated"}, 1)
	if err != nil {
		t.Fatalf("WaitWebhooks() error = %v", err)
	}
	p := got[0].Params
	if p["StateFrom"][0] != "active" || p["StateTo"][0] != "closed" || p["ConversationSid"][0] != first.ConversationSID {
		t.Errorf("onConversationStateUpdated = %v, want active → closed for the conversation", p)
	}

	// Closing released the pair: the next message starts a new conversation.
	second, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "two"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if second.ConversationSID == first.ConversationSID {
		t.Errorf("message after close went to the closed conversation")
	}
	mp := &conversations.CreateServiceConversationMessageParams{}
	mp.SetBody("too late")
	_, err = conv.CreateServiceConversationMessage(convSvc, first.ConversationSID, mp)
	if te := restErr(t, err); te.Status != http.StatusBadRequest {
		t.Errorf("message to a closed conversation error status = %d, want 400", te.Status)
	}

	// Twilio's timers close conversations too.
	if err := s.c.SetConversationState(ctx, second.ConversationSID, "closed", ""); err != nil {
		t.Fatalf("SetConversationState() error = %v", err)
	}
	got, err = s.c.WaitWebhooks(ctx, simclient.WebhookFilter{Event: "onConversationStateUpdated"}, 2)
	if err != nil {
		t.Fatalf("WaitWebhooks() error = %v", err)
	}
	if got[1].Params["Reason"][0] != "TIMER" {
		t.Errorf("Reason = %v, want TIMER", got[1].Params["Reason"])
	}
}

func TestRESTCloseWithoutWebhookHeaderIsSilent(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "one"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	up := &conversations.UpdateServiceConversationParams{}
	up.SetState("closed")
	if _, err := twilioClient(t, s.base, keySID, keySecret).ConversationsV1.UpdateServiceConversation(convSvc, in.ConversationSID, up); err != nil {
		t.Fatalf("UpdateServiceConversation() error = %v", err)
	}
	// A later message proves the close was processed; no state webhook came.
	if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "two"}); err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if got, _ := s.c.Webhooks(ctx, simclient.WebhookFilter{Event: "onConversationStateUpdated"}); len(got) != 0 {
		t.Errorf("got %d onConversationStateUpdated for a REST close without X-Twilio-Webhook-Enabled, want 0", len(got))
	}
}

func TestAccountsFile(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "accounts.json")
	yamlPath := filepath.Join(dir, "accounts.yaml")
	if err := os.WriteFile(jsonPath, []byte(`{"accounts":[{"account_sid":"`+acctSID+`","auth_token":"t0k3n",
		"api_keys":{"`+keySID+`":"s3cr3t"},
		"numbers":[{"address":"+12025550100","sms_url":"http://127.0.0.1:9/sms","messaging_service_sid":"`+msgSvc+`"}],
		"messaging_services":[{"sid":"`+msgSvc+`","advanced_opt_out":true}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(yamlPath, []byte(`accounts:
  - account_sid: `+acctSID+`
    auth_token: t0k3n
    numbers:
      - address: "whatsapp:+12025550102"
        conversations_service_sid: `+convSvc+`
    conversations_services:
      - sid: `+convSvc+`
        post_webhook_url: http://127.0.0.1:9/conv
        method: GET
        filters: [onMessageAdded]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{jsonPath, yamlPath} {
		accounts, err := twiliosim.ReadAccountsFile(path)
		if err != nil {
			t.Fatalf("ReadAccountsFile(%s) error = %v", filepath.Base(path), err)
		}
		if len(accounts) != 1 || accounts[0].AccountSID != acctSID || len(accounts[0].Numbers) != 1 {
			t.Errorf("ReadAccountsFile(%s) = %+v", filepath.Base(path), accounts)
		}
		if err := (twiliosim.Config{Accounts: accounts}).Validate(); err != nil {
			t.Errorf("Validate() of %s = %v, want nil", filepath.Base(path), err)
		}
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"accounts":[{"acount_sid":"x"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := twiliosim.ReadAccountsFile(bad); err == nil {
		t.Errorf("ReadAccountsFile() of a misspelt field succeeded, want an error")
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := twiliosim.Config{
		Addr: "nonsense",
		Accounts: []twiliosim.Account{{
			AccountSID: "AC123",
			Numbers:    []twiliosim.PhoneNumber{{Address: "555", SmsMethod: "PUT", MessagingServiceSID: msgSvc}},
			ConversationsServices: []twiliosim.ConversationsService{
				{SID: convSvc, Filters: []string{"onMessageAddedd"}, PostWebhookURL: "not a url"},
			},
		}},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatalf("Validate() = nil, want errors")
	}
	for _, want := range []string{"addr", "account_sid", "auth_token", `number "555"`, "GET or POST", "onMessageAddedd", "post_webhook_url", "messaging service " + msgSvc} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to mention %q", err, want)
		}
	}
}

func TestPutAccountRejectsInvalid(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	err := s.c.PutAccount(context.Background(), twiliosim.Account{AccountSID: "AC0000000000000000000000000000000f", AuthToken: "x",
		Numbers: []twiliosim.PhoneNumber{{Address: smsNumber}}})
	var se *simclient.Error
	if !asSimError(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, "also belongs") {
		t.Errorf("PutAccount() with a number of another account error = %v, want a 400 naming the clash", err)
	}
}

func TestMessagingServiceInboundURLOverridesNumbers(t *testing.T) {
	rc := newReceiver(t)
	cfg := baseConfig(rc)
	cfg.Accounts[0].MessagingServices[0].InboundURL = rc.url("/pool?team=sales")
	cfg.Accounts[0].MessagingServices[0].FallbackURL = rc.url("/pool-fallback")
	rc.handle("/pool", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	s := startSim(t, cfg)
	res, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{From: customer, To: smsNumber, Body: "pool"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if n := len(rc.requests("/sms")); n != 0 {
		t.Errorf("number's own sms_url got %d requests, want 0 when the service has an inbound URL", n)
	}
	got := rc.requests("/pool")
	if len(got) != 1 || got[0].Form.Get("MessagingServiceSid") != msgSvc || !strings.HasSuffix(got[0].URL, "/pool?team=sales") {
		t.Fatalf("pool requests = %+v, want one with the service SID on the configured URL", got)
	}
	checkSignature(t, got[0])
	fb := rc.requests("/pool-fallback")
	if len(fb) != 1 || fb[0].Form.Get("ErrorCode") != "11200" || res.Webhook.FallbackStatus != http.StatusOK {
		t.Errorf("service fallback = %+v, summary %+v; want one call with 11200", fb, res.Webhook)
	}
}
