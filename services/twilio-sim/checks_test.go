package twiliosim_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard-cc/switchboard/pkg/twilioclient"
	twiliosim "github.com/switchboard-cc/switchboard/services/twilio-sim"
)

// TestConfigurationReads: what a connector check reads (the account, a
// number's webhook settings, a Conversations service's webhook
// configuration) is served in Twilio's shapes, with no contract violation.
func TestConfigurationReads(t *testing.T) {
	rc := newReceiver(t)
	s, cfg, ctx := startStrict(t, rc, func(a *twiliosim.Account) { a.FriendlyName = "Acme production" })
	tw := twilioClient(t, s.base, keySID, keySecret)

	acct, err := tw.Api.FetchAccount(acctSID)
	if err != nil {
		t.Fatalf("FetchAccount: %v", err)
	}
	if *acct.Sid != acctSID || *acct.Status != "active" || *acct.FriendlyName != "Acme production" {
		t.Errorf("account = %s %s %q, want %s active \"Acme production\"", *acct.Sid, *acct.Status, *acct.FriendlyName, acctSID)
	}
	if _, err := tw.Api.FetchAccount("AC" + "ffffffffffffffffffffffffffffffff"); !isTwilioError(err, 404, 20404) {
		t.Errorf("FetchAccount of another account: %v, want 404/20404", err)
	}

	lp := &api.ListIncomingPhoneNumberParams{}
	lp.SetPhoneNumber(getNumber)
	nums, err := tw.Api.ListIncomingPhoneNumber(lp)
	if err != nil {
		t.Fatalf("ListIncomingPhoneNumber: %v", err)
	}
	if len(nums) != 1 || *nums[0].PhoneNumber != getNumber || *nums[0].SmsMethod != "GET" || *nums[0].SmsUrl != rc.url("/sms-get?tenant=acme&note=It's+here") {
		t.Errorf("numbers = %+v, want %s with its GET webhook", nums, getNumber)
	}
	lp = &api.ListIncomingPhoneNumberParams{}
	lp.SetPhoneNumber("+12025550103") // the WhatsApp sender's number
	nums, err = tw.Api.ListIncomingPhoneNumber(lp)
	if err != nil {
		t.Fatalf("ListIncomingPhoneNumber: %v", err)
	}
	if len(nums) != 1 || *nums[0].FriendlyName != waNumber || *nums[0].SmsUrl != rc.url("/wa") || *nums[0].SmsMethod != "POST" {
		t.Errorf("numbers = %+v, want the WhatsApp sender %s", nums, waNumber)
	}
	all, err := tw.Api.ListIncomingPhoneNumber(&api.ListIncomingPhoneNumberParams{})
	if err != nil || len(all) != len(cfg.Accounts[0].Numbers) {
		t.Errorf("all numbers: %d (%v), want %d", len(all), err, len(cfg.Accounts[0].Numbers))
	}

	wh, err := tw.ConversationsV1.FetchServiceWebhookConfiguration(convSvcGet)
	if err != nil {
		t.Fatalf("FetchServiceWebhookConfiguration: %v", err)
	}
	if *wh.PostWebhookUrl != rc.url("/conv-get?tenant=acme&note=It's+here") || *wh.Method != "GET" || !slices.Contains(*wh.Filters, "onMessageAdded") || wh.PreWebhookUrl != nil {
		t.Errorf("webhooks = %s %s %v, want the GET service's", *wh.PostWebhookUrl, *wh.Method, *wh.Filters)
	}
	if _, err := tw.ConversationsV1.FetchServiceWebhookConfiguration("IS" + "ffffffffffffffffffffffffffffffff"); !isTwilioError(err, 404, 20404) {
		t.Errorf("webhooks of an unknown service: %v, want 404/20404", err)
	}

	violations, err := s.c.ContractViolations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Errorf("contract violation: %s %s (%s, %s): %s", v.Method, v.Path, v.Operation, v.Direction, v.Detail)
	}
}

// TestRegionalAccount: an account in ie1 answers calls made for its
// region's hosts and refuses the same credentials on another region's, as
// Twilio does; contract mode records the host each call was meant for.
func TestRegionalAccount(t *testing.T) {
	t.Setenv("TWILIO_EDGE", "")
	t.Setenv("TWILIO_REGION", "")
	s, _, ctx := startStrict(t, newReceiver(t), func(a *twiliosim.Account) { a.Region = "ie1" })
	target, _ := url.Parse(s.base)

	creds := twilioclient.Credentials{AccountSID: acctSID, APIKeySID: keySID, APIKeySecret: keySecret, Region: "ie1", Edge: "dublin"}
	ie := twilioclient.NewClient(creds, twilioclient.Options{BaseURL: target})
	if _, err := ie.Api.FetchAccount(acctSID); err != nil {
		t.Fatalf("FetchAccount in ie1: %v", err)
	}
	if _, err := ie.ConversationsV1.FetchServiceWebhookConfiguration(convSvc); err != nil {
		t.Fatalf("FetchServiceWebhookConfiguration in ie1: %v", err)
	}
	creds.Region, creds.Edge = "us1", ""
	us := twilioclient.NewClient(creds, twilioclient.Options{BaseURL: target})
	if _, err := us.Api.FetchAccount(acctSID); !isTwilioError(err, 401, 20003) {
		t.Errorf("FetchAccount of an ie1 account on us1: %v, want 401/20003", err)
	}

	other := twiliosim.Account{AccountSID: "AC" + strings.Repeat("ab", 16), AuthToken: "other", APIKeys: map[string]string{keySID: "x"}}
	if err := s.c.PutAccount(ctx, other); err == nil || !strings.Contains(err.Error(), "api key "+keySID+" also belongs to account") {
		t.Errorf("an API key of two accounts: %v, want it refused", err)
	}

	ex, err := s.c.ContractRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, x := range ex {
		hosts = append(hosts, x.OriginalHost)
	}
	want := []string{"api.dublin.ie1.twilio.com", "conversations.dublin.ie1.twilio.com", "api.twilio.com"}
	if !slices.Equal(hosts, want) {
		t.Errorf("hosts = %v, want %v", hosts, want)
	}
	if len(ex) == 3 && (ex[0].Status != 200 || ex[2].Status != 401 || ex[0].Operation != "FetchAccount") {
		t.Errorf("exchanges = %+v, want FetchAccount 200 … 401", ex)
	}
}

// startStrict runs the emulator in contract mode with the base accounts,
// the first one edited.
func startStrict(t *testing.T, rc *receiver, edit func(*twiliosim.Account)) (*sim, twiliosim.Config, context.Context) {
	t.Helper()
	cfg := baseConfig(rc)
	cfg.ContractDir = contractDir(t)
	edit(&cfg.Accounts[0])
	return startSim(t, cfg), cfg, testCtx(t)
}

func isTwilioError(err error, status, code int) bool {
	var te *client.TwilioRestError
	return errors.As(err, &te) && te.Status == status && te.Code == code
}
