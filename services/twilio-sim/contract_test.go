package twiliosim_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	api "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// TestContract drives every REST endpoint through twilio-go v1.31.0 with the
// emulator in strict contract mode and expects no difference between the
// exchanges and Twilio's OpenAPI documents.
func TestContract(t *testing.T) {
	dir := contractDir(t)
	rc := newReceiver(t)
	cfg := baseConfig(rc)
	cfg.ContractDir = dir
	s := startSim(t, cfg)
	ctx := testCtx(t)
	tw := twilioClient(t, s.base, keySID, keySecret)

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Programmable Messaging.
	p := &api.CreateMessageParams{}
	p.SetTo(customer).SetFrom(smsNumber).SetBody("contract").SetStatusCallback(rc.url("/status"))
	m, err := tw.Api.CreateMessage(p)
	must("CreateMessage", err)
	p = &api.CreateMessageParams{}
	p.SetTo(customer).SetMessagingServiceSid(msgSvc).SetBody("via service")
	_, err = tw.Api.CreateMessage(p)
	must("CreateMessage with MessagingServiceSid", err)
	p = &api.CreateMessageParams{}
	p.SetTo(customer).SetFrom(smsNumber).SetMediaUrl([]string{"https://example.com/a.png", "https://example.com/b.png"})
	mm, err := tw.Api.CreateMessage(p)
	must("CreateMessage with media", err)
	media, err := tw.Api.ListMedia(*mm.Sid, &api.ListMediaParams{})
	must("ListMedia", err)
	if len(media) != 2 {
		t.Fatalf("ListMedia listed %d items, want 2", len(media))
	}
	_, err = tw.Api.FetchMedia(*mm.Sid, *media[0].Sid, &api.FetchMediaParams{})
	must("FetchMedia", err)
	if _, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: waCustomer, To: waNumber, Body: "open window"}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	p = &api.CreateMessageParams{}
	p.SetTo(waCustomer).SetFrom(waNumber).SetContentSid("HX0123456789abcdef0123456789abcdef").SetContentVariables(`{"1":"Ann"}`)
	_, err = tw.Api.CreateMessage(p)
	must("CreateMessage with a template", err)
	_, err = tw.Api.FetchMessage(*m.Sid, &api.FetchMessageParams{})
	must("FetchMessage", err)
	lp := &api.ListMessageParams{}
	lp.SetTo(customer).SetPageSize(20)
	_, err = tw.Api.ListMessage(lp)
	must("ListMessage", err)

	// Conversations, service-scoped and default-service paths.
	in, err := s.c.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: convNumber, Body: "hi"})
	must("SendMessage to a Conversations number", err)
	sm := &conversations.CreateServiceConversationMessageParams{}
	sm.SetAuthor("agent").SetBody("hello").SetAttributes(`{"k":"v"}`).SetXTwilioWebhookEnabled("true")
	im, err := tw.ConversationsV1.CreateServiceConversationMessage(convSvc, in.ConversationSID, sm)
	must("CreateServiceConversationMessage", err)
	_, err = tw.ConversationsV1.FetchServiceConversationMessage(convSvc, in.ConversationSID, *im.Sid)
	must("FetchServiceConversationMessage", err)
	_, err = tw.ConversationsV1.ListServiceConversationMessage(convSvc, in.ConversationSID, &conversations.ListServiceConversationMessageParams{})
	must("ListServiceConversationMessage", err)
	_, err = s.c.WaitWebhooks(ctx, simclient.WebhookFilter{Kind: "conversations", Event: "onDeliveryUpdated", MessageSID: *im.Sid}, 2)
	must("wait for delivery receipts", err)
	_, err = tw.ConversationsV1.ListServiceConversationMessageReceipt(convSvc, in.ConversationSID, *im.Sid, &conversations.ListServiceConversationMessageReceiptParams{})
	must("ListServiceConversationMessageReceipt", err)
	dm := &conversations.CreateConversationMessageParams{}
	dm.SetBody("default path")
	im2, err := tw.ConversationsV1.CreateConversationMessage(in.ConversationSID, dm)
	must("CreateConversationMessage", err)
	_, err = tw.ConversationsV1.FetchConversationMessage(in.ConversationSID, *im2.Sid)
	must("FetchConversationMessage", err)
	_, err = tw.ConversationsV1.ListConversationMessage(in.ConversationSID, &conversations.ListConversationMessageParams{})
	must("ListConversationMessage", err)
	_, err = tw.ConversationsV1.ListConversationMessageReceipt(in.ConversationSID, *im.Sid, &conversations.ListConversationMessageReceiptParams{})
	must("ListConversationMessageReceipt", err)
	_, err = tw.ConversationsV1.FetchServiceConversation(convSvc, in.ConversationSID)
	must("FetchServiceConversation", err)
	_, err = tw.ConversationsV1.FetchConversation(in.ConversationSID)
	must("FetchConversation", err)
	_, err = tw.ConversationsV1.ListServiceConversationParticipant(convSvc, in.ConversationSID, &conversations.ListServiceConversationParticipantParams{})
	must("ListServiceConversationParticipant", err)
	_, err = tw.ConversationsV1.ListConversationParticipant(in.ConversationSID, &conversations.ListConversationParticipantParams{})
	must("ListConversationParticipant", err)
	up := &conversations.UpdateServiceConversationParams{}
	up.SetState("closed").SetXTwilioWebhookEnabled("true")
	_, err = tw.ConversationsV1.UpdateServiceConversation(convSvc, in.ConversationSID, up)
	must("UpdateServiceConversation", err)

	// Business-initiated conversation with a WhatsApp template.
	cc := &conversations.CreateServiceConversationParams{}
	cc.SetFriendlyName("outreach").SetUniqueName("outreach-1")
	conv, err := tw.ConversationsV1.CreateServiceConversation(convSvc, cc)
	must("CreateServiceConversation", err)
	cp := &conversations.CreateServiceConversationParticipantParams{}
	cp.SetMessagingBindingAddress("whatsapp:+15557770001").SetMessagingBindingProxyAddress(waConvNumber)
	_, err = tw.ConversationsV1.CreateServiceConversationParticipant(convSvc, *conv.Sid, cp)
	must("CreateServiceConversationParticipant", err)
	ip := &conversations.CreateServiceConversationParticipantParams{}
	ip.SetIdentity("agent-1")
	_, err = tw.ConversationsV1.CreateServiceConversationParticipant(convSvc, *conv.Sid, ip)
	must("CreateServiceConversationParticipant with identity", err)
	tm := &conversations.CreateServiceConversationMessageParams{}
	tm.SetAuthor("agent-1").SetContentSid("HX0123456789abcdef0123456789abcdef").SetContentVariables(`{"1":"Ann"}`)
	_, err = tw.ConversationsV1.CreateServiceConversationMessage(convSvc, "outreach-1", tm)
	must("CreateServiceConversationMessage by unique name", err)
	dc := &conversations.CreateConversationParams{}
	dc.SetFriendlyName("default service")
	dconv, err := tw.ConversationsV1.CreateConversation(dc)
	must("CreateConversation", err)
	dp := &conversations.CreateConversationParticipantParams{}
	dp.SetMessagingBindingAddress("+15557770002").SetMessagingBindingProxyAddress(convNumber)
	_, err = tw.ConversationsV1.CreateConversationParticipant(*dconv.Sid, dp)
	must("CreateConversationParticipant", err)
	du := &conversations.UpdateConversationParams{}
	du.SetFriendlyName("renamed").SetAttributes(`{"a":1}`)
	_, err = tw.ConversationsV1.UpdateConversation(*dconv.Sid, du)
	must("UpdateConversation", err)

	// Errors keep Twilio's shape too.
	p = &api.CreateMessageParams{}
	p.SetTo(customer).SetFrom("+19995550000").SetBody("not ours")
	if _, err := tw.Api.CreateMessage(p); err == nil {
		t.Fatalf("CreateMessage from a foreign number succeeded")
	}
	if _, err := tw.ConversationsV1.FetchConversation("CHffffffffffffffffffffffffffffffff"); err == nil {
		t.Fatalf("FetchConversation of an unknown conversation succeeded")
	}

	violations, err := s.c.ContractViolations(ctx)
	must("ContractViolations", err)
	for _, v := range violations {
		t.Errorf("contract violation: %s %s (%s, %s): %s", v.Method, v.Path, v.Operation, v.Direction, v.Detail)
	}
}

// TestContractCatchesBadRequests checks that strict mode notices requests
// Twilio's documents do not allow.
func TestContractCatchesBadRequests(t *testing.T) {
	dir := contractDir(t)
	rc := newReceiver(t)
	cfg := baseConfig(rc)
	cfg.ContractDir = dir
	s := startSim(t, cfg)
	ctx := testCtx(t)

	post := func(path string, form url.Values) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatalf("build request: %v", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(keySID, keySecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		resp.Body.Close()
	}
	msgs := "/2010-04-01/Accounts/" + acctSID + "/Messages.json"
	post(msgs, url.Values{"From": {smsNumber}, "Body": {"no To"}})
	post(msgs, url.Values{"To": {customer}, "From": {smsNumber}, "Bdy": {"typo"}, "Body": {"x"}})
	post(msgs, url.Values{"To": {customer}, "From": {smsNumber}, "Body": {"x"}, "StatusCallback": {"not a url"}})

	violations, err := s.c.ContractViolations(ctx)
	if err != nil {
		t.Fatalf("ContractViolations() error = %v", err)
	}
	var details []string
	for _, v := range violations {
		details = append(details, v.Detail)
	}
	all := strings.Join(details, "\n")
	for _, want := range []string{`"To"`, `"Bdy"`, `StatusCallback`} {
		if !strings.Contains(all, want) {
			t.Errorf("violations do not mention %s:\n%s", want, all)
		}
	}
	if err := s.c.Reset(context.Background()); err != nil {
		t.Fatalf("Reset() error = %v", err)
	}
	if v, _ := s.c.ContractViolations(ctx); len(v) != 0 {
		t.Errorf("after Reset() %d violations remain", len(v))
	}
}
