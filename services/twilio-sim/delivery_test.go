package twiliosim_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	api "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

var rawDlrRe = regexp.MustCompile(`^\d{10}$`)

// send creates a message through twilio-go and fails the test on error.
func send(t *testing.T, tw interface {
	CreateMessage(*api.CreateMessageParams) (*api.ApiV2010Message, error)
}, set func(*api.CreateMessageParams)) *api.ApiV2010Message {
	t.Helper()
	p := &api.CreateMessageParams{}
	set(p)
	m, err := tw.CreateMessage(p)
	if err != nil {
		t.Fatalf("CreateMessage() error = %v", err)
	}
	return m
}

func statuses(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Form.Get("MessageStatus"))
	}
	return out
}

func TestStatusCallbacks(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret).Api

	t.Run("in order", func(t *testing.T) {
		m := send(t, tw, func(p *api.CreateMessageParams) {
			p.SetTo(customer).SetFrom(plainNumber).SetBody("status").SetStatusCallback(rc.url("/status-in-order"))
		})
		got := rc.waitRequests(t, "/status-in-order", 2)
		if s := strings.Join(statuses(got), ","); s != "sent,delivered" {
			t.Fatalf("callbacks = %s, want sent,delivered (no callback for queued)", s)
		}
		for _, r := range got {
			checkSignature(t, r)
			p := r.Form
			if p.Get("MessageSid") != *m.Sid || p.Get("SmsSid") != *m.Sid || p.Get("SmsStatus") != p.Get("MessageStatus") ||
				p.Get("AccountSid") != acctSID || p.Get("From") != plainNumber || p.Get("To") != customer || p.Get("ApiVersion") != "2010-04-01" {
				t.Errorf("callback %s = %v", p.Get("MessageStatus"), p)
			}
			if p.Has("ErrorCode") || p.Has("MessagingServiceSid") {
				t.Errorf("callback %s has ErrorCode or MessagingServiceSid: %v", p.Get("MessageStatus"), p)
			}
		}
		if got[0].Form.Has("RawDlrDoneDate") || !rawDlrRe.MatchString(got[1].Form.Get("RawDlrDoneDate")) {
			t.Errorf("RawDlrDoneDate sent=%q delivered=%q, want only on delivered as YYMMDDhhmm", got[0].Form.Get("RawDlrDoneDate"), got[1].Form.Get("RawDlrDoneDate"))
		}
		if got[0].Header.Get("I-Twilio-Idempotency-Token") == got[1].Header.Get("I-Twilio-Idempotency-Token") {
			t.Errorf("two status events share an idempotency token")
		}
		f, err := tw.FetchMessage(*m.Sid, &api.FetchMessageParams{})
		if err != nil {
			t.Fatalf("FetchMessage() error = %v", err)
		}
		if deref(f.Status) != "delivered" || f.DateSent == nil {
			t.Errorf("fetched status %q date_sent %v, want delivered with a date", deref(f.Status), f.DateSent)
		}
	})

	t.Run("messaging service callback", func(t *testing.T) {
		m := send(t, tw, func(p *api.CreateMessageParams) {
			p.SetTo("+15551230009").SetMessagingServiceSid(msgSvc).SetBody("svc")
		})
		got := rc.waitRequests(t, "/status-mg", 2)
		for _, r := range got {
			if r.Form.Get("MessageSid") == *m.Sid && r.Form.Get("MessagingServiceSid") != msgSvc {
				t.Errorf("callback MessagingServiceSid = %q, want %s", r.Form.Get("MessagingServiceSid"), msgSvc)
			}
		}
	})

	t.Run("out of order", func(t *testing.T) {
		ooo := true
		if _, err := s.c.AddDeliveryRule(ctx, simclient.DeliveryRule{To: "+15551230002", DeliveryOptions: simclient.DeliveryOptions{OutOfOrder: &ooo}}); err != nil {
			t.Fatalf("AddDeliveryRule() error = %v", err)
		}
		m := send(t, tw, func(p *api.CreateMessageParams) {
			p.SetTo("+15551230002").SetFrom(plainNumber).SetBody("ooo").SetStatusCallback(rc.url("/status-ooo"))
		})
		got := rc.waitRequests(t, "/status-ooo", 2)
		if s := strings.Join(statuses(got), ","); s != "delivered,sent" {
			t.Errorf("callbacks = %s, want delivered,sent", s)
		}
		f, _ := tw.FetchMessage(*m.Sid, &api.FetchMessageParams{})
		if deref(f.Status) != "delivered" {
			t.Errorf("final status = %q, want delivered", deref(f.Status))
		}
	})

	t.Run("forced carrier failure", func(t *testing.T) {
		code := 30007
		if _, err := s.c.AddDeliveryRule(ctx, simclient.DeliveryRule{To: "+15551230003", DeliveryOptions: simclient.DeliveryOptions{ErrorCode: &code}}); err != nil {
			t.Fatalf("AddDeliveryRule() error = %v", err)
		}
		m := send(t, tw, func(p *api.CreateMessageParams) {
			p.SetTo("+15551230003").SetFrom(plainNumber).SetBody("fail").SetStatusCallback(rc.url("/status-fail"))
		})
		got := rc.waitRequests(t, "/status-fail", 2)
		if s := strings.Join(statuses(got), ","); s != "sent,undelivered" {
			t.Fatalf("callbacks = %s, want sent,undelivered", s)
		}
		if got[0].Form.Has("ErrorCode") || got[1].Form.Get("ErrorCode") != "30007" {
			t.Errorf("ErrorCode sent=%q undelivered=%q, want only 30007 on undelivered", got[0].Form.Get("ErrorCode"), got[1].Form.Get("ErrorCode"))
		}
		f, _ := tw.FetchMessage(*m.Sid, &api.FetchMessageParams{})
		if deref(f.Status) != "undelivered" || deref(f.ErrorCode) != 30007 || f.ErrorMessage == nil {
			t.Errorf("fetched status %q error %d message %v, want undelivered 30007 with a message", deref(f.Status), deref(f.ErrorCode), f.ErrorMessage)
		}
		// The rule was used up: the next send succeeds.
		send(t, tw, func(p *api.CreateMessageParams) {
			p.SetTo("+15551230003").SetFrom(plainNumber).SetBody("ok").SetStatusCallback(rc.url("/status-after"))
		})
		if s := strings.Join(statuses(rc.waitRequests(t, "/status-after", 2)), ","); s != "sent,delivered" {
			t.Errorf("after the rule callbacks = %s, want sent,delivered", s)
		}
	})

	t.Run("forced failure before sending", func(t *testing.T) {
		code := 30008
		if _, err := s.c.AddDeliveryRule(ctx, simclient.DeliveryRule{To: "+15551230004", DeliveryOptions: simclient.DeliveryOptions{ErrorCode: &code, FinalStatus: "failed"}}); err != nil {
			t.Fatalf("AddDeliveryRule() error = %v", err)
		}
		send(t, tw, func(p *api.CreateMessageParams) {
			p.SetTo("+15551230004").SetFrom(plainNumber).SetBody("fail").SetStatusCallback(rc.url("/status-failed"))
		})
		got := rc.waitRequests(t, "/status-failed", 1)
		if got[0].Form.Get("MessageStatus") != "failed" || got[0].Form.Get("ErrorCode") != "30008" || got[0].Form.Has("RawDlrDoneDate") {
			t.Errorf("callback = %v, want failed 30008 without RawDlrDoneDate", got[0].Form)
		}
	})
}

func TestOptOut(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret).Api

	res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: smsNumber, Body: "stop"})
	if err != nil {
		t.Fatalf("SendMessage(STOP) error = %v", err)
	}
	if res.OptOutType != "STOP" {
		t.Errorf("OptOutType = %q, want STOP", res.OptOutType)
	}
	hook := rc.requests("/sms")[0]
	checkSignature(t, hook)
	if hook.Form.Get("OptOutType") != "STOP" || hook.Form.Get("Body") != "stop" {
		t.Errorf("webhook OptOutType %q Body %q, want STOP and the keyword (advanced opt-out is on)", hook.Form.Get("OptOutType"), hook.Form.Get("Body"))
	}
	inbox, err := s.c.Inbox(ctx, customer)
	if err != nil || len(inbox) != 1 || inbox[0].Path != "auto_reply" {
		t.Errorf("inbox after STOP = %+v (err %v), want Twilio's auto-reply", inbox, err)
	}

	sendErr := func(set func(*api.CreateMessageParams)) error {
		p := &api.CreateMessageParams{}
		set(p)
		_, err := tw.CreateMessage(p)
		return err
	}
	blocked := []struct {
		name string
		set  func(*api.CreateMessageParams)
	}{
		{"same number", func(p *api.CreateMessageParams) { p.SetTo(customer).SetFrom(smsNumber).SetBody("x") }},
		{"messaging service", func(p *api.CreateMessageParams) { p.SetTo(customer).SetMessagingServiceSid(msgSvc).SetBody("x") }},
		{"another number of the pool", func(p *api.CreateMessageParams) { p.SetTo(customer).SetFrom(convNumber).SetBody("x") }},
	}
	for _, b := range blocked {
		te := restErr(t, sendErr(b.set))
		if te.Status != http.StatusBadRequest || te.Code != 21610 {
			t.Errorf("%s: error %d/%d, want 400/21610", b.name, te.Status, te.Code)
		}
	}
	if err := sendErr(func(p *api.CreateMessageParams) { p.SetTo(customer).SetFrom(plainNumber).SetBody("x") }); err != nil {
		t.Errorf("send from a number outside the pool error = %v, want success", err)
	}

	if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: smsNumber, Body: "START"}); err != nil {
		t.Fatalf("SendMessage(START) error = %v", err)
	}
	if err := sendErr(blocked[0].set); err != nil {
		t.Errorf("send after START error = %v, want success", err)
	}

	t.Run("not a keyword", func(t *testing.T) {
		res, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: "+15551230005", To: smsNumber, Body: "stop please"})
		if err != nil || res.OptOutType != "" {
			t.Fatalf("SendMessage(stop please) = %+v, %v; want no keyword", res, err)
		}
		if err := sendErr(func(p *api.CreateMessageParams) { p.SetTo("+15551230005").SetFrom(smsNumber).SetBody("x") }); err != nil {
			t.Errorf("send error = %v, want success", err)
		}
	})

	t.Run("without advanced opt-out", func(t *testing.T) {
		if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: "+15551230006", To: getNumber, Body: "UNSUBSCRIBE"}); err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		hooks := rc.requests("/sms-get")
		if q := hooks[len(hooks)-1].Query; q.Has("OptOutType") {
			t.Errorf("webhook has OptOutType %q without advanced opt-out", q.Get("OptOutType"))
		}
		te := restErr(t, sendErr(func(p *api.CreateMessageParams) { p.SetTo("+15551230006").SetFrom(getNumber).SetBody("x") }))
		if te.Code != 21610 {
			t.Errorf("error code %d, want 21610", te.Code)
		}
	})

	t.Run("conversation message fails delivery", func(t *testing.T) {
		in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: "+15551230007", To: convNumber, Body: "hi"})
		if err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: "+15551230007", To: convNumber, Body: "STOP"}); err != nil {
			t.Fatalf("SendMessage(STOP) error = %v", err)
		}
		cp := &conversations.CreateServiceConversationMessageParams{}
		cp.SetAuthor("agent").SetBody("are you there?")
		m, err := twilioClient(t, s.base, keySID, keySecret).ConversationsV1.CreateServiceConversationMessage(convSvc, in.ConversationSID, cp)
		if err != nil {
			t.Fatalf("CreateServiceConversationMessage() error = %v, want it accepted", err)
		}
		got, err := s.c.WaitWebhooks(ctx, simclient.WebhookFilter{Event: "onDeliveryUpdated", MessageSID: *m.Sid}, 1)
		if err != nil {
			t.Fatalf("WaitWebhooks() error = %v", err)
		}
		p := got[0].Params
		if p["Status"][0] != "failed" || p["ErrorCode"][0] != "21610" {
			t.Errorf("onDeliveryUpdated = %v, want failed with 21610", p)
		}
	})
}

func TestWhatsAppWindow(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret).Api

	if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: waCustomer, To: waNumber, Body: "hi", ProfileName: "Ann"}); err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	freeform := func(path string) *api.ApiV2010Message {
		return send(t, tw, func(p *api.CreateMessageParams) {
			p.SetTo(waCustomer).SetFrom(waNumber).SetBody(strings.Repeat("long ", 100)).SetStatusCallback(rc.url(path))
		})
	}
	m := freeform("/wa-status-in")
	if deref(m.NumSegments) != "1" {
		t.Errorf("WhatsApp num_segments = %q, want 1", deref(m.NumSegments))
	}
	got := rc.waitRequests(t, "/wa-status-in", 2)
	if s := strings.Join(statuses(got), ","); s != "sent,delivered" {
		t.Errorf("inside the window callbacks = %s, want sent,delivered", s)
	}
	for _, r := range got {
		checkSignature(t, r)
		if r.Form.Get("ChannelPrefix") != "whatsapp" || r.Form.Get("ChannelToAddress") != "+15551230001" || r.Form.Has("RawDlrDoneDate") {
			t.Errorf("WhatsApp callback = %v, want channel fields and no RawDlrDoneDate", r.Form)
		}
	}

	if _, err := s.c.AdvanceClock(ctx, 25*time.Hour); err != nil {
		t.Fatalf("AdvanceClock() error = %v", err)
	}
	m = freeform("/wa-status-out")
	if deref(m.Status) != "queued" {
		t.Errorf("outside the window create status = %q, want queued (accepted, fails later)", deref(m.Status))
	}
	got = rc.waitRequests(t, "/wa-status-out", 1)
	if got[0].Form.Get("MessageStatus") != "failed" || got[0].Form.Get("ErrorCode") != "63016" {
		t.Errorf("outside the window callback = %v, want failed 63016", got[0].Form)
	}
	inbox, err := s.c.WaitInboxMessage(ctx, waCustomer, func(o simclient.OutboundMessage) bool { return o.SID == *m.Sid && o.Status == "failed" })
	if err != nil || inbox.ErrorCode != 63016 {
		t.Errorf("inbox entry = %+v (err %v), want failed 63016", inbox, err)
	}

	send(t, tw, func(p *api.CreateMessageParams) {
		p.SetTo(waCustomer).SetFrom(waNumber).SetContentSid("HX0123456789abcdef0123456789abcdef").
			SetContentVariables(`{"1":"Ann"}`).SetStatusCallback(rc.url("/wa-status-template"))
	})
	if s := strings.Join(statuses(rc.waitRequests(t, "/wa-status-template", 2)), ","); s != "sent,delivered" {
		t.Errorf("template outside the window callbacks = %s, want sent,delivered", s)
	}

	// A new customer message reopens the window.
	if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: waCustomer, To: waNumber, Body: "back"}); err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	freeform("/wa-status-reopened")
	if s := strings.Join(statuses(rc.waitRequests(t, "/wa-status-reopened", 2)), ","); s != "sent,delivered" {
		t.Errorf("after the customer wrote again callbacks = %s, want sent,delivered", s)
	}
}

func TestWhatsAppWindowConversations(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	conv := twilioClient(t, s.base, keySID, keySecret).ConversationsV1

	in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: waCustomer, To: waConvNumber, Body: "hi"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if _, err := s.c.AdvanceClock(ctx, 25*time.Hour); err != nil {
		t.Fatalf("AdvanceClock() error = %v", err)
	}
	p := &conversations.CreateServiceConversationMessageParams{}
	p.SetAuthor("agent").SetBody("late reply")
	late, err := conv.CreateServiceConversationMessage(convSvc, in.ConversationSID, p)
	if err != nil {
		t.Fatalf("CreateServiceConversationMessage() error = %v", err)
	}
	p = &conversations.CreateServiceConversationMessageParams{}
	p.SetAuthor("agent").SetContentSid("HX0123456789abcdef0123456789abcdef")
	tmpl, err := conv.CreateServiceConversationMessage(convSvc, in.ConversationSID, p)
	if err != nil {
		t.Fatalf("CreateServiceConversationMessage(template) error = %v", err)
	}
	got, err := s.c.WaitWebhooks(ctx, simclient.WebhookFilter{Event: "onDeliveryUpdated", MessageSID: *late.Sid}, 1)
	if err != nil {
		t.Fatalf("WaitWebhooks() error = %v", err)
	}
	if got[0].Params["Status"][0] != "failed" || got[0].Params["ErrorCode"][0] != "63016" {
		t.Errorf("late free-form receipt = %v, want failed 63016", got[0].Params)
	}
	got, err = s.c.WaitWebhooks(ctx, simclient.WebhookFilter{Event: "onDeliveryUpdated", MessageSID: *tmpl.Sid}, 2)
	if err != nil {
		t.Fatalf("WaitWebhooks(template) error = %v", err)
	}
	if got[1].Params["Status"][0] != "delivered" {
		t.Errorf("template receipts end with %v, want delivered", got[1].Params["Status"])
	}
}

func TestDeliveryReceiptsConversations(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "hi"})
	if err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	conv := twilioClient(t, s.base, keySID, keySecret).ConversationsV1
	p := &conversations.CreateServiceConversationMessageParams{}
	p.SetAuthor("agent").SetBody("hello")
	m, err := conv.CreateServiceConversationMessage(convSvc, in.ConversationSID, p)
	if err != nil {
		t.Fatalf("CreateServiceConversationMessage() error = %v", err)
	}
	var receipts []received
	eventually(t, func() bool {
		receipts = nil
		for _, r := range rc.requests("/conv") {
			if r.Form.Get("EventType") == "onDeliveryUpdated" && r.Form.Get("MessageSid") == *m.Sid {
				receipts = append(receipts, r)
			}
		}
		return len(receipts) == 2
	}, "two onDeliveryUpdated webhooks")
	for i, want := range []string{"sent", "delivered"} {
		r := receipts[i]
		checkSignature(t, r)
		f := r.Form
		if f.Get("Status") != want || !strings.HasPrefix(f.Get("DeliveryReceiptSid"), "DY") || !strings.HasPrefix(f.Get("ChannelMessageSid"), "SM") ||
			f.Get("ParticipantSid") != in.ParticipantSID || f.Get("RetryCount") != "0" || f.Has("ErrorCode") {
			t.Errorf("receipt %d = %v, want status %s with DY, SM, the customer participant", i, f, want)
		}
	}
	got, err := conv.FetchServiceConversationMessage(convSvc, in.ConversationSID, *m.Sid)
	if err != nil {
		t.Fatalf("FetchServiceConversationMessage() error = %v", err)
	}
	d, _ := (*got.Delivery).(map[string]any)
	if d["delivered"] != "all" || d["total"] != float64(1) {
		t.Errorf("delivery = %v, want total 1 and delivered all", d)
	}
}

func TestFaultInjection(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret)
	create := func() error {
		p := &api.CreateMessageParams{}
		p.SetTo(customer).SetFrom(plainNumber).SetBody("x")
		_, err := tw.Api.CreateMessage(p)
		return err
	}

	if _, err := s.c.InjectFault(ctx, simclient.Fault{Count: 2}); err != nil {
		t.Fatalf("InjectFault() error = %v", err)
	}
	for i := 0; i < 2; i++ {
		te := restErr(t, create())
		if te.Status != http.StatusTooManyRequests || te.Code != 20429 {
			t.Errorf("call %d error = %d/%d, want 429/20429", i, te.Status, te.Code)
		}
	}
	if err := create(); err != nil {
		t.Errorf("third call error = %v, want success once the faults are used up", err)
	}

	if _, err := s.c.InjectFault(ctx, simclient.Fault{PathPrefix: "/v1/", Status: 503}); err != nil {
		t.Fatalf("InjectFault() error = %v", err)
	}
	if err := create(); err != nil {
		t.Errorf("2010 call with a /v1/ fault error = %v, want success", err)
	}
	_, err := tw.ConversationsV1.FetchConversation("CHffffffffffffffffffffffffffffffff")
	if te := restErr(t, err); te.Status != http.StatusServiceUnavailable || te.Code != 20500 {
		t.Errorf("conversations call error = %d/%d, want 503/20500", te.Status, te.Code)
	}

	if _, err := s.c.InjectFault(ctx, simclient.Fault{Count: 5, Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"}); err != nil {
		t.Fatalf("InjectFault() error = %v", err)
	}
	if te := restErr(t, create()); te.Code != 21610 || te.Message != "Attempt to send to unsubscribed recipient" {
		t.Errorf("custom fault = %d %q", te.Code, te.Message)
	}
	pending, err := s.c.Faults(ctx)
	if err != nil || len(pending) != 1 || pending[0].Count != 4 {
		t.Errorf("Faults() = %+v, %v; want one with 4 left", pending, err)
	}
	if err := s.c.ClearFaults(ctx); err != nil {
		t.Fatalf("ClearFaults() error = %v", err)
	}
	if err := create(); err != nil {
		t.Errorf("after ClearFaults() error = %v, want success", err)
	}
}

func TestSegmentCounts(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	tw := twilioClient(t, s.base, keySID, keySecret).Api
	digits := func(n int) string { return strings.Repeat("7", n) }
	tests := []struct {
		name, body, want string
	}{
		{"160 GSM-7", digits(160), "1"},
		{"161 GSM-7", digits(161), "2"},
		{"307 GSM-7", digits(307), "3"},
		{"caret and 159 digits", "^" + digits(159), "2"},
		{"70 UCS-2 units with an emoji", "😜" + digits(68), "1"},
		{"71 UCS-2 units with an emoji", "😜" + digits(69), "2"},
		{"134 UCS-2 units is two parts of 67", "😜" + digits(132), "2"},
		{"135 UCS-2 units", "😜" + digits(133), "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := send(t, tw, func(p *api.CreateMessageParams) { p.SetTo(customer).SetFrom(plainNumber).SetBody(tt.body) })
			if got := deref(m.NumSegments); got != tt.want {
				t.Errorf("num_segments = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOutboundMedia(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret)

	t.Run("messaging", func(t *testing.T) {
		m := send(t, tw.Api, func(p *api.CreateMessageParams) {
			p.SetTo(customer).SetFrom(plainNumber).SetMediaUrl([]string{"https://example.com/a.png", "https://example.com/b.png"})
		})
		if !mmSIDRe.MatchString(deref(m.Sid)) || deref(m.NumMedia) != "2" {
			t.Errorf("sid %q num_media %q, want MM… and 2", deref(m.Sid), deref(m.NumMedia))
		}
		got, err := s.c.WaitInboxMessage(ctx, customer, func(o simclient.OutboundMessage) bool { return o.SID == *m.Sid })
		if err != nil {
			t.Fatalf("WaitInboxMessage() error = %v", err)
		}
		if len(got.Media) != 2 || got.Media[1].URL != "https://example.com/b.png" {
			t.Errorf("inbox media = %+v", got.Media)
		}
	})

	t.Run("conversations", func(t *testing.T) {
		in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "hi"})
		if err != nil {
			t.Fatalf("SendMessage() error = %v", err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/v1/Services/"+convSvc+"/Media", strings.NewReader("PNGDATA"))
		req.Header.Set("Content-Type", "image/png")
		req.Header.Set("Content-Disposition", `attachment; filename="pic.png"`)
		req.SetBasicAuth(keySID, keySecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("upload error = %v", err)
		}
		var up struct {
			Sid string `json:"sid"`
		}
		decodeBody(t, resp, http.StatusCreated, &up)

		p := &conversations.CreateServiceConversationMessageParams{}
		p.SetAuthor("agent").SetMediaSid(up.Sid)
		m, err := tw.ConversationsV1.CreateServiceConversationMessage(convSvc, in.ConversationSID, p)
		if err != nil {
			t.Fatalf("CreateServiceConversationMessage() error = %v", err)
		}
		if m.Body != nil || m.Media == nil || len(*m.Media) != 1 {
			t.Fatalf("message body %v media %v, want no body and one media", m.Body, m.Media)
		}
		got, err := s.c.WaitInboxMessage(ctx, customer, func(o simclient.OutboundMessage) bool { return o.SID == *m.Sid })
		if err != nil {
			t.Fatalf("WaitInboxMessage() error = %v", err)
		}
		if len(got.Media) != 1 || got.Media[0].ContentType != "image/png" || got.Media[0].Filename != "pic.png" {
			t.Fatalf("inbox media = %+v", got.Media)
		}
		resp, err = http.Get(got.Media[0].URL)
		if err != nil {
			t.Fatalf("GET media error = %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "PNGDATA" || resp.Header.Get("Content-Type") != "image/png" {
			t.Errorf("media content = %q (%s), want the uploaded bytes", b, resp.Header.Get("Content-Type"))
		}
	})
}

func TestResetKeepsAccounts(t *testing.T) {
	rc := newReceiver(t)
	s := startSim(t, baseConfig(rc))
	ctx := testCtx(t)
	if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: smsNumber, Body: "STOP"}); err != nil {
		t.Fatalf("SendMessage() error = %v", err)
	}
	if _, err := s.c.InjectFault(ctx, simclient.Fault{Count: 3}); err != nil {
		t.Fatalf("InjectFault() error = %v", err)
	}
	if err := s.c.Reset(context.Background()); err != nil {
		t.Fatalf("Reset() error = %v", err)
	}
	inbox, _ := s.c.Inbox(ctx, customer)
	hooks, _ := s.c.Webhooks(ctx, simclient.WebhookFilter{})
	faults, _ := s.c.Faults(ctx)
	if len(inbox) != 0 || len(hooks) != 0 || len(faults) != 0 {
		t.Errorf("after Reset() inbox %d, webhooks %d, faults %d; want all empty", len(inbox), len(hooks), len(faults))
	}
	p := &api.CreateMessageParams{}
	p.SetTo(customer).SetFrom(smsNumber).SetBody("opt-outs were reset")
	if _, err := twilioClient(t, s.base, keySID, keySecret).Api.CreateMessage(p); err != nil {
		t.Errorf("CreateMessage() after Reset() error = %v, want the account kept and the opt-out gone", err)
	}
}
