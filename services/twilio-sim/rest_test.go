package twiliosim_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// restErr extracts Twilio's error from a twilio-go error.
func restErr(t *testing.T, err error) *client.TwilioRestError {
	t.Helper()
	var te *client.TwilioRestError
	if !errors.As(err, &te) {
		t.Fatalf("error = %v (%T), want *client.TwilioRestError", err, err)
	}
	return te
}

func TestCreateMessage(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret)

	p := &api.CreateMessageParams{}
	p.SetTo(customer).SetFrom(smsNumber).SetBody("Hello! 👍").SetStatusCallback(rc.url("/status"))
	m, err := tw.Api.CreateMessage(p)
	if err != nil {
		t.Fatalf("CreateMessage() error = %v", err)
	}
	if m.Sid == nil || !smSIDRe.MatchString(*m.Sid) {
		t.Fatalf("Sid = %v, want SM…", m.Sid)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"status", deref(m.Status), "queued"},
		{"num_segments", deref(m.NumSegments), "1"},
		{"num_media", deref(m.NumMedia), "0"},
		{"direction", deref(m.Direction), "outbound-api"},
		{"api_version", deref(m.ApiVersion), "2010-04-01"},
		{"from", deref(m.From), smsNumber},
		{"to", deref(m.To), customer},
		{"account_sid", deref(m.AccountSid), acctSID},
		{"error_code nil", m.ErrorCode == nil, true},
		{"price nil", m.Price == nil, true},
		{"uri", deref(m.Uri), "/2010-04-01/Accounts/" + acctSID + "/Messages/" + *m.Sid + ".json"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if m.DateCreated == nil || !strings.HasSuffix(*m.DateCreated, "+0000") {
		t.Errorf("date_created = %v, want RFC 2822 in UTC", m.DateCreated)
	}

	inbox, err := s.c.WaitInbox(ctx, customer, 1)
	if err != nil {
		t.Fatalf("WaitInbox() error = %v", err)
	}
	if inbox[0].SID != *m.Sid || inbox[0].Body != "Hello! 👍" || inbox[0].From != smsNumber || inbox[0].Path != "messaging" {
		t.Errorf("inbox[0] = %+v, want the sent message", inbox[0])
	}

	fp := &api.FetchMessageParams{}
	got, err := tw.Api.FetchMessage(*m.Sid, fp)
	if err != nil {
		t.Fatalf("FetchMessage() error = %v", err)
	}
	if deref(got.Sid) != *m.Sid || deref(got.Body) != "Hello! 👍" {
		t.Errorf("FetchMessage() = %v %v, want the created message", got.Sid, got.Body)
	}
}

func TestCreateMessageWithMessagingService(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	tw := twilioClient(t, s.base, acctSID, authToken)

	p := &api.CreateMessageParams{}
	p.SetTo(customer).SetMessagingServiceSid(msgSvc).SetBody("via service")
	m, err := tw.Api.CreateMessage(p)
	if err != nil {
		t.Fatalf("CreateMessage() error = %v", err)
	}
	if deref(m.Status) != "accepted" || m.From != nil || deref(m.NumSegments) != "0" || deref(m.MessagingServiceSid) != msgSvc {
		t.Errorf("create with a Messaging Service = status %q from %v segments %q mg %q, want accepted, null, \"0\", %s",
			deref(m.Status), m.From, deref(m.NumSegments), deref(m.MessagingServiceSid), msgSvc)
	}
	inbox, err := s.c.WaitInbox(testCtx(t), customer, 1)
	if err != nil {
		t.Fatalf("WaitInbox() error = %v", err)
	}
	if inbox[0].From != smsNumber && inbox[0].From != convNumber {
		t.Errorf("sender = %s, want a pool number (%s or %s)", inbox[0].From, smsNumber, convNumber)
	}
}

func TestCreateMessageValidation(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	tw := twilioClient(t, s.base, keySID, keySecret)
	tests := []struct {
		name   string
		params func(*api.CreateMessageParams)
		status int
		code   int
	}{
		{"missing To", func(p *api.CreateMessageParams) { p.SetFrom(smsNumber).SetBody("x") }, 400, 21604},
		{"invalid To", func(p *api.CreateMessageParams) { p.SetTo("12345abc").SetFrom(smsNumber).SetBody("x") }, 400, 21211},
		{"missing body", func(p *api.CreateMessageParams) { p.SetTo(customer).SetFrom(smsNumber) }, 400, 21602},
		{"body too long", func(p *api.CreateMessageParams) {
			p.SetTo(customer).SetFrom(smsNumber).SetBody(strings.Repeat("a", 1601))
		}, 400, 21617},
		{"missing From", func(p *api.CreateMessageParams) { p.SetTo(customer).SetBody("x") }, 400, 21603},
		{"foreign From", func(p *api.CreateMessageParams) { p.SetTo(customer).SetFrom("+19995550000").SetBody("x") }, 400, 21606},
		{"channel mismatch", func(p *api.CreateMessageParams) { p.SetTo(waCustomer).SetFrom(smsNumber).SetBody("x") }, 400, 21910},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &api.CreateMessageParams{}
			tt.params(p)
			_, err := tw.Api.CreateMessage(p)
			te := restErr(t, err)
			if te.Status != tt.status || te.Code != tt.code {
				t.Errorf("error = %d/%d %q, want %d/%d", te.Status, te.Code, te.Message, tt.status, tt.code)
			}
			if te.MoreInfo == "" || te.Message == "" {
				t.Errorf("error lacks message or more_info: %+v", te)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	tests := []struct {
		name       string
		user, pass string
		wantCode   int
	}{
		{"account sid and auth token", acctSID, authToken, 0},
		{"api key and secret", keySID, keySecret, 0},
		{"wrong token", acctSID, "wrongtoken", 20003},
		{"wrong key secret", keySID, "wrongsecret", 20003},
		{"key secret as account password", acctSID, keySecret, 20003},
		{"unknown key", "SKffffffffffffffffffffffffffffffff", keySecret, 20003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := twilioClient(t, s.base, tt.user, tt.pass)
			p := &api.CreateMessageParams{}
			p.SetTo(customer).SetFrom(smsNumber).SetBody("auth")
			_, err := tw.Api.CreateMessage(p)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("CreateMessage() error = %v, want success", err)
				}
				return
			}
			te := restErr(t, err)
			if te.Status != http.StatusUnauthorized || te.Code != tt.wantCode {
				t.Errorf("error = %d/%d, want 401/%d", te.Status, te.Code, tt.wantCode)
			}
		})
	}

	t.Run("no credentials", func(t *testing.T) {
		resp, err := http.Post(s.base+"/2010-04-01/Accounts/"+acctSID+"/Messages.json", "application/x-www-form-urlencoded", strings.NewReader("To=%2B15551230001"))
		if err != nil {
			t.Fatalf("POST error = %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", resp.StatusCode)
		}
	})
}

func TestConversationMessageReachesCustomer(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "hi"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	tw := twilioClient(t, s.base, keySID, keySecret)

	p := &conversations.CreateServiceConversationMessageParams{}
	p.SetAuthor("agent").SetBody("How can I help?")
	m, err := tw.ConversationsV1.CreateServiceConversationMessage(convSvc, in.ConversationSID, p)
	if err != nil {
		t.Fatalf("CreateServiceConversationMessage() error = %v", err)
	}
	if !imSIDRe.MatchString(deref(m.Sid)) || m.Index != 1 || deref(m.Author) != "agent" || deref(m.Attributes) != "{}" ||
		deref(m.ChatServiceSid) != convSvc || deref(m.ConversationSid) != in.ConversationSID {
		t.Errorf("created message = sid %q index %d author %q attributes %q service %q conversation %q",
			deref(m.Sid), m.Index, deref(m.Author), deref(m.Attributes), deref(m.ChatServiceSid), deref(m.ConversationSid))
	}
	if m.Delivery == nil {
		t.Errorf("delivery = nil, want a summary for the SMS participant")
	}

	inbox, err := s.c.WaitInbox(ctx, customer, 1)
	if err != nil {
		t.Fatalf("WaitInbox() error = %v", err)
	}
	if inbox[0].Body != "How can I help?" || inbox[0].From != convNumber || inbox[0].Author != "agent" || inbox[0].Path != "conversations" {
		t.Errorf("inbox[0] = %+v, want the agent's message from %s", inbox[0], convNumber)
	}
	// REST-created messages fire no webhook unless asked to.
	for _, r := range rc.requests("/conv") {
		if r.Form.Get("MessageSid") == deref(m.Sid) && r.Form.Get("EventType") == "onMessageAdded" {
			t.Errorf("onMessageAdded fired for a REST message without X-Twilio-Webhook-Enabled")
		}
	}

	// The default-service path reaches the same conversation.
	dp := &conversations.CreateConversationMessageParams{}
	dp.SetBody("second").SetXTwilioWebhookEnabled("true")
	m2, err := tw.ConversationsV1.CreateConversationMessage(in.ConversationSID, dp)
	if err != nil {
		t.Fatalf("CreateConversationMessage() error = %v", err)
	}
	if deref(m2.Author) != "system" || m2.Index != 2 {
		t.Errorf("default-path message author %q index %d, want system and 2", deref(m2.Author), m2.Index)
	}
	var api []received
	eventually(t, func() bool {
		api = nil
		for _, r := range rc.requests("/conv") {
			if r.Form.Get("MessageSid") == deref(m2.Sid) {
				api = append(api, r)
			}
		}
		return len(api) > 0
	}, "onMessageAdded for the REST message with webhooks enabled")
	if api[0].Form.Get("Source") != "API" || api[0].Form.Get("Author") != "system" || api[0].Form.Has("ParticipantSid") {
		t.Errorf("API onMessageAdded = %v, want Source API, Author system, no ParticipantSid", api[0].Form)
	}
	checkSignature(t, api[0])

	got, err := tw.ConversationsV1.FetchServiceConversationMessage(convSvc, in.ConversationSID, deref(m.Sid))
	if err != nil {
		t.Fatalf("FetchServiceConversationMessage() error = %v", err)
	}
	if deref(got.Body) != "How can I help?" {
		t.Errorf("fetched body = %q", deref(got.Body))
	}
}

func TestUnknownConversationIs404(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	tw := twilioClient(t, s.base, keySID, keySecret)
	p := &conversations.CreateServiceConversationMessageParams{}
	p.SetBody("x")
	_, err := tw.ConversationsV1.CreateServiceConversationMessage(convSvc, "CHffffffffffffffffffffffffffffffff", p)
	te := restErr(t, err)
	if te.Status != 404 || te.Code != 20404 {
		t.Errorf("error = %d/%d, want 404/20404", te.Status, te.Code)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
