package twiliosim_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

var (
	smSIDRe   = regexp.MustCompile(`^SM[0-9a-f]{32}$`)
	mmSIDRe   = regexp.MustCompile(`^MM[0-9a-f]{32}$`)
	imSIDRe   = regexp.MustCompile(`^IM[0-9a-f]{32}$`)
	chSIDRe   = regexp.MustCompile(`^CH[0-9a-f]{32}$`)
	mbSIDRe   = regexp.MustCompile(`^MB[0-9a-f]{32}$`)
	msDateRe  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	uuidishRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

func TestMessagingWebhookSMS(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)

	res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: smsNumber, Body: "Why do you say that? "})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if res.Path != "messaging" || !smSIDRe.MatchString(res.MessageSID) {
		t.Errorf("SendMessage() = path %q sid %q, want messaging and an SM sid", res.Path, res.MessageSID)
	}
	if res.Webhook == nil || res.Webhook.Status != http.StatusOK || res.Webhook.Attempts != 1 {
		t.Fatalf("SendMessage().Webhook = %+v, want status 200 after 1 attempt", res.Webhook)
	}

	got := rc.requests("/sms")
	if len(got) != 1 {
		t.Fatalf("got %d webhooks on /sms, want 1", len(got))
	}
	r := got[0]
	checkSignature(t, r)
	if r.Method != http.MethodPost {
		t.Errorf("method = %s, want POST", r.Method)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q, want application/x-www-form-urlencoded", ct)
	}
	if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "TwilioProxy/") {
		t.Errorf("User-Agent = %q, want TwilioProxy/…", ua)
	}
	if tok := r.Header.Get("I-Twilio-Idempotency-Token"); !uuidishRe.MatchString(tok) {
		t.Errorf("I-Twilio-Idempotency-Token = %q, want a token", tok)
	}
	p := r.Form
	wantKeys := "AccountSid,ApiVersion,Body,From,FromCity,FromCountry,FromState,FromZip,MessageSid,MessagingServiceSid," +
		"NumMedia,NumSegments,SmsMessageSid,SmsSid,SmsStatus,To,ToCity,ToCountry,ToState,ToZip"
	if got := joinKeys(p); got != wantKeys {
		t.Errorf("parameters = %s, want %s", got, wantKeys)
	}
	want := map[string]string{
		"AccountSid": acctSID, "ApiVersion": "2010-04-01", "Body": "Why do you say that? ", "From": customer,
		"To": smsNumber, "MessageSid": res.MessageSID, "SmsSid": res.MessageSID, "SmsMessageSid": res.MessageSID,
		"SmsStatus": "received", "NumMedia": "0", "NumSegments": "1", "MessagingServiceSid": msgSvc,
		"FromCountry": "US", "ToCountry": "US", "FromCity": "", "ToZip": "",
	}
	for k, v := range want {
		if p.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, p.Get(k), v)
		}
	}
}

func TestMessagingWebhookGETSignsFullURL(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)

	if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: getNumber, Body: "It's here & now"}); err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	got := rc.requests("/sms-get")
	if len(got) != 1 {
		t.Fatalf("got %d webhooks on /sms-get, want 1", len(got))
	}
	r := got[0]
	if r.Method != http.MethodGet || r.Body != "" {
		t.Errorf("method %s with body %q, want GET without a body", r.Method, r.Body)
	}
	checkSignature(t, r)
	if !strings.Contains(r.URL, "?tenant=acme&note=It%27s+here&") {
		t.Errorf("URL %s does not keep the configured query first, canonically encoded", r.URL)
	}
	if r.Query.Get("Body") != "It's here & now" || r.Query.Get("From") != customer {
		t.Errorf("query Body=%q From=%q, want the message parameters", r.Query.Get("Body"), r.Query.Get("From"))
	}
}

func TestConversationsAutocreation(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)

	res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "hello"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if res.Path != "conversations" || !chSIDRe.MatchString(res.ConversationSID) || !imSIDRe.MatchString(res.MessageSID) {
		t.Fatalf("SendMessage() = %+v, want the conversations path with CH and IM sids", res)
	}
	got := rc.requests("/conv")
	var events []string
	for _, r := range got {
		checkSignature(t, r)
		events = append(events, r.Form.Get("EventType"))
		if r.Form.Get("RetryCount") != "0" {
			t.Errorf("%s RetryCount = %q, want 0", r.Form.Get("EventType"), r.Form.Get("RetryCount"))
		}
		if r.Form.Get("ConversationSid") != res.ConversationSID || r.Form.Get("ChatServiceSid") != convSvc || r.Form.Get("AccountSid") != acctSID {
			t.Errorf("%s names conversation %q service %q account %q", r.Form.Get("EventType"), r.Form.Get("ConversationSid"), r.Form.Get("ChatServiceSid"), r.Form.Get("AccountSid"))
		}
	}
	if strings.Join(events, ",") != "onConversationAdded,onParticipantAdded,onMessageAdded" {
		t.Fatalf("events = %v, want onConversationAdded, onParticipantAdded, onMessageAdded", events)
	}
	added, part, msg := got[0].Form, got[1].Form, got[2].Form
	if added.Get("MessagingBinding.Address") != customer || added.Get("MessagingBinding.ProxyAddress") != convNumber || added.Get("State") != "active" {
		t.Errorf("onConversationAdded = %v, want the customer binding and state active", added)
	}
	if part.Get("MessagingBinding.Address") != customer || part.Get("MessagingBinding.ProxyAddress") != convNumber || !mbSIDRe.MatchString(part.Get("ParticipantSid")) {
		t.Errorf("onParticipantAdded = %v, want the customer binding and an MB sid", part)
	}
	wantMsg := map[string]string{
		"Source": "SMS", "Author": customer, "Body": "hello", "Index": "0", "Attributes": "{}",
		"MessageSid": res.MessageSID, "ParticipantSid": part.Get("ParticipantSid"), "MessagingServiceSid": msgSvc,
	}
	for k, v := range wantMsg {
		if msg.Get(k) != v {
			t.Errorf("onMessageAdded %s = %q, want %q", k, msg.Get(k), v)
		}
	}
	if !msDateRe.MatchString(msg.Get("DateCreated")) {
		t.Errorf("onMessageAdded DateCreated = %q, want ISO 8601 with milliseconds", msg.Get("DateCreated"))
	}
	if msg.Has("Media") {
		t.Errorf("onMessageAdded has Media %q for a text message", msg.Get("Media"))
	}

	// The pair is bound now: the next message only adds a message.
	res2, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "again"})
	if err != nil {
		t.Fatalf("second SendMessage() error = %v", err)
	}
	if res2.ConversationSID != res.ConversationSID {
		t.Errorf("second message went to %s, want the same conversation %s", res2.ConversationSID, res.ConversationSID)
	}
	got = rc.requests("/conv")
	if len(got) != 4 || got[3].Form.Get("EventType") != "onMessageAdded" || got[3].Form.Get("Index") != "1" {
		t.Errorf("after the second message got %d webhooks, last %v; want a fourth, onMessageAdded with Index 1", len(got), got[len(got)-1].Form)
	}
}

func TestConversationsWebhookByGET(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	if _, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{From: customer, To: convGetNumber, Body: "via get"}); err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	got := rc.requests("/conv-get")
	if len(got) != 3 {
		t.Fatalf("got %d GET webhooks, want 3", len(got))
	}
	for _, r := range got {
		if r.Method != http.MethodGet {
			t.Errorf("method = %s, want GET", r.Method)
		}
		checkSignature(t, r)
		if r.Query.Get("tenant") != "acme" || r.Query.Get("RetryCount") != "0" {
			t.Errorf("query %v, want the configured tenant and RetryCount 0", r.Query)
		}
	}
}

func TestDeliveriesRepeatTheSameEvent(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)

	t.Run("conversations", func(t *testing.T) {
		res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "dup", Deliveries: 3})
		if err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		if res.Webhook == nil || res.Webhook.Attempts != 3 {
			t.Errorf("Webhook = %+v, want 3 attempts", res.Webhook)
		}
		var msgs []received
		for _, r := range rc.requests("/conv") {
			if r.Form.Get("EventType") == "onMessageAdded" {
				msgs = append(msgs, r)
			}
		}
		if len(msgs) != 3 {
			t.Fatalf("got %d onMessageAdded, want 3", len(msgs))
		}
		token := msgs[0].Header.Get("I-Twilio-Idempotency-Token")
		for i, r := range msgs {
			checkSignature(t, r)
			if got := r.Header.Get("I-Twilio-Idempotency-Token"); got != token {
				t.Errorf("delivery %d token = %q, want %q", i, got, token)
			}
			if got := r.Form.Get("MessageSid"); got != res.MessageSID {
				t.Errorf("delivery %d MessageSid = %q, want %q", i, got, res.MessageSID)
			}
			if got, want := r.Form.Get("RetryCount"), string(rune('0'+i)); got != want {
				t.Errorf("delivery %d RetryCount = %q, want %q", i, got, want)
			}
		}
	})

	t.Run("messaging", func(t *testing.T) {
		res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: smsNumber, Body: "dup", Deliveries: 2})
		if err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		got := rc.requests("/sms")
		if len(got) != 2 {
			t.Fatalf("got %d webhooks, want 2", len(got))
		}
		if got[0].Header.Get("I-Twilio-Idempotency-Token") != got[1].Header.Get("I-Twilio-Idempotency-Token") ||
			got[0].Form.Get("MessageSid") != res.MessageSID || got[1].Form.Get("MessageSid") != res.MessageSID {
			t.Errorf("duplicates differ: %v / %v", got[0].Header, got[1].Header)
		}
	})
}

func TestWhatsAppInbound(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)

	t.Run("messaging with media", func(t *testing.T) {
		res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{
			From: waCustomer, To: waNumber, ProfileName: "Ann",
			Media: []simclient.Media{{URL: "https://example.com/cat.jpg", ContentType: "image/jpeg"}},
		})
		if err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		got := rc.requests("/wa")
		if len(got) != 1 {
			t.Fatalf("got %d webhooks, want 1", len(got))
		}
		checkSignature(t, got[0])
		p := got[0].Form
		want := map[string]string{
			"From": waCustomer, "To": waNumber, "ProfileName": "Ann", "WaId": "15551230001", "NumMedia": "1",
			"MediaContentType0": "image/jpeg", "MessageType": "image",
			"MessageSid": res.MessageSID, "Body": "",
		}
		for k, v := range want {
			if p.Get(k) != v {
				t.Errorf("%s = %q, want %q", k, p.Get(k), v)
			}
		}
		if !twilioMediaURL(acctSID, res.MessageSID).MatchString(p.Get("MediaUrl0")) {
			t.Errorf("MediaUrl0 = %q, want Twilio's URL of the message's media", p.Get("MediaUrl0"))
		}
		if !mmSIDRe.MatchString(res.MessageSID) {
			t.Errorf("MessageSid = %q, want MM… for a media message", res.MessageSID)
		}
		if p.Has("ToCountry") {
			t.Errorf("WhatsApp webhook carries geo field ToCountry")
		}
	})

	t.Run("conversations media only", func(t *testing.T) {
		res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{
			From: waCustomer, To: waConvNumber,
			Media: []simclient.Media{{URL: "https://example.com/cat.jpg", ContentType: "image/jpeg", Filename: "cat.jpg", Size: 42}},
		})
		if err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		var msg received
		for _, r := range rc.requests("/conv") {
			if r.Form.Get("MessageSid") == res.MessageSID {
				msg = r
			}
		}
		if msg.Form == nil {
			t.Fatalf("no onMessageAdded for %s", res.MessageSID)
		}
		checkSignature(t, msg)
		if msg.Form.Has("Body") {
			t.Errorf("media-only onMessageAdded has a Body parameter %q", msg.Form.Get("Body"))
		}
		if msg.Form.Get("Source") != "WHATSAPP" || msg.Form.Get("Author") != waCustomer {
			t.Errorf("Source %q Author %q, want WHATSAPP and the customer", msg.Form.Get("Source"), msg.Form.Get("Author"))
		}
		var media []map[string]any
		if err := json.Unmarshal([]byte(msg.Form.Get("Media")), &media); err != nil || len(media) != 1 {
			t.Fatalf("Media = %q, want a JSON array of one item (err %v)", msg.Form.Get("Media"), err)
		}
		if media[0]["ContentType"] != "image/jpeg" || media[0]["Filename"] != "cat.jpg" || !strings.HasPrefix(media[0]["Sid"].(string), "ME") {
			t.Errorf("Media[0] = %v, want Sid ME…, ContentType image/jpeg, Filename cat.jpg", media[0])
		}
	})

	t.Run("at most one media", func(t *testing.T) {
		_, err := s.c.SendMessage(ctx, simclient.CustomerMessage{
			From: waCustomer, To: waNumber,
			Media: []simclient.Media{{URL: "https://example.com/a.jpg"}, {URL: "https://example.com/b.jpg"}},
		})
		var se *simclient.Error
		if !asSimError(err, &se) || se.Status != http.StatusBadRequest {
			t.Errorf("SendMessage() with two WhatsApp media error = %v, want a 400", err)
		}
	})
}

func TestMessagingMMSMediaParameters(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	res, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{
		From: customer, To: smsNumber, Body: "two pics",
		Media: []simclient.Media{{URL: "https://example.com/a.png", ContentType: "image/png"}, {URL: "https://example.com/b.gif", ContentType: "image/gif"}},
	})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	p := rc.requests("/sms")[0].Form
	want := map[string]string{"NumMedia": "2", "MediaContentType0": "image/png", "MediaContentType1": "image/gif"}
	for k, v := range want {
		if p.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, p.Get(k), v)
		}
	}
	re := twilioMediaURL(acctSID, res.MessageSID)
	if !re.MatchString(p.Get("MediaUrl0")) || !re.MatchString(p.Get("MediaUrl1")) || p.Get("MediaUrl0") == p.Get("MediaUrl1") {
		t.Errorf("MediaUrl0 %q MediaUrl1 %q, want two of Twilio's media URLs of the message", p.Get("MediaUrl0"), p.Get("MediaUrl1"))
	}
}

func TestTwiMLReplyReachesTheCustomer(t *testing.T) {
	rc := newReceiver(t)
	rc.handle("/sms", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks, we got it</Message></Response>`))
	})
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: smsNumber, Body: "hi"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if len(res.Replies) != 1 {
		t.Fatalf("Replies = %v, want one", res.Replies)
	}
	inbox, err := s.c.WaitInbox(ctx, customer, 1)
	if err != nil {
		t.Fatalf("WaitInbox() error = %v", err)
	}
	if inbox[0].Body != "Thanks, we got it" || inbox[0].From != smsNumber || inbox[0].Path != "twiml" {
		t.Errorf("inbox[0] = %+v, want the TwiML reply from %s", inbox[0], smsNumber)
	}
}

func TestUnknownNumberIs404(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	_, err := s.c.SendMessage(testCtx(t), simclient.CustomerMessage{From: customer, To: "+19995550000", Body: "hi"})
	var se *simclient.Error
	if !asSimError(err, &se) || se.Status != http.StatusNotFound {
		t.Errorf("SendMessage() to an unknown number error = %v, want a 404", err)
	}
}
