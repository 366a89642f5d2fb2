package devstack_test

import (
	"context"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// DemoMenuNumber is the demo tenant's menu number (demo.yaml).
const demoMenuNumber = "+12025550102"

// The demo's menu number answers with a menu; choosing Orders transfers
// to support, whose workflow greets and queues, and the agent is offered
// the chat.
func TestDemoMenuToAgent(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	const customer = "+15551239001"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: demoMenuNumber, Body: "Hi"}); err != nil {
		t.Fatal(err)
	}
	menu, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return strings.Contains(m.Body, "What can we help you with?") })
	if err != nil {
		t.Fatalf("no menu: %v", err)
	}
	if !strings.Contains(menu.Body, "1. Orders") || !strings.Contains(menu.Body, "3. Opening hours") {
		t.Errorf("menu %q lacks its numbered choices", menu.Body)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: demoMenuNumber, Body: "opening hours"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return strings.Contains(m.Body, "around the clock") }); err != nil {
		t.Fatalf("no opening hours answer: %v", err)
	}
	if _, err := sim.WaitInbox(ctx, customer, 3); err != nil { // the menu again
		t.Fatal(err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: demoMenuNumber, Body: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool {
		return strings.Contains(m.Body, "Thanks for contacting Demo Company")
	}); err != nil {
		t.Fatalf("support's greeting never came: %v", err)
	}
	o := waitOffer(t, ctx, alice, customer)
	if o.ServiceName != "Customer Support" {
		t.Errorf("offer for service %q, want Customer Support", o.ServiceName)
	}
	if _, err := alice.Request(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	assigned, err := alice.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID })
	if err != nil {
		t.Fatal(err)
	}
	// What the menu collected is on the card and beside the chat.
	want := map[string]string{"topic": "Orders"}
	if got := frameParams(t, o.frame); !maps.Equal(got, want) {
		t.Errorf("offer parameters %v, want %v", got, want)
	}
	if got := frameParams(t, assigned); !maps.Equal(got, want) {
		t.Errorf("assigned chat parameters %v, want %v", got, want)
	}
}

// frameParams is the parameters of an offer.created or session.assigned
// frame.
func frameParams(t *testing.T, f agentclient.Frame) map[string]string {
	t.Helper()
	var v struct {
		Parameters map[string]string `json:"parameters"`
	}
	if err := f.Decode(&v); err != nil {
		t.Fatalf("%s frame: %v", f.Type, err)
	}
	return v.Parameters
}

// exampleEnv is what deploy/examples/tenant.yaml reads from the
// environment: made-up credentials the emulator accepts.
var exampleEnv = map[string]string{
	"TWILIO_ACCOUNT_SID":     "AC" + strings.Repeat("4", 32),
	"TWILIO_API_KEY_SID":     "SK" + strings.Repeat("4", 32),
	"TWILIO_API_KEY_SECRET":  "exampleSecret0123456789abcdefABCD",
	"TWILIO_AUTH_TOKEN":      strings.Repeat("5", 32),
	"AGENT_INITIAL_PASSWORD": "example-password-2026",
}

// applyExample applies deploy/examples/tenant.yaml as `switchboardctl
// apply` does, with its opening hours made round the clock so the test
// runs at any hour (and the test's edits), and registers its Twilio
// account with the emulator as the README's "Try your own workflow"
// section shows.
func applyExample(t *testing.T, ctx context.Context, info devstack.Info, edits ...func(*tenantspec.Spec)) *tenantspec.Spec {
	t.Helper()
	data, err := os.ReadFile("../../deploy/examples/tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := tenantspec.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.ExpandEnv(func(k string) (string, bool) { v, ok := exampleEnv[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	for i := range spec.Services {
		if oh := spec.Services[i].OpeningHours; oh != nil {
			oh.Windows, oh.Holidays = []tenantspec.Window{{Days: []string{"daily"}, Start: "00:00", End: "24:00"}}, nil
		}
	}
	for _, edit := range edits {
		edit(spec)
	}
	applySpec(t, ctx, info, spec)
	return spec
}

// applySpec applies spec as `switchboardctl apply` does and registers its
// Twilio accounts with the emulator as the README's "Try your own
// workflow" section shows.
func applySpec(t *testing.T, ctx context.Context, info devstack.Info, spec *tenantspec.Spec) {
	t.Helper()
	tok, err := info.AuthKeys.Mint(authn.Claims{Roles: []string{authn.RolePlatform}, Name: "example-test",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "example-test"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenantspec.Apply(ctx, dialWith(t, info.ConfigAddr, tok), spec); err != nil {
		t.Fatalf("apply tenant %s: %v", spec.Tenant.ID, err)
	}
	base := info.ChatHandlerURL + "/api/acs/chat-handler/tenants/" + spec.Tenant.ID
	for _, c := range spec.Connectors {
		acct := simclient.Account{AccountSID: c.AccountSID, AuthToken: c.AuthToken, APIKeys: map[string]string{c.APIKeySID: c.APIKeySecret}}
		for _, e := range spec.MessagingEntries {
			for _, addr := range e.BusinessAddresses {
				if e.ConversationsServiceSID != "" {
					acct.ConversationsServices = append(acct.ConversationsServices, simclient.ConversationsService{SID: e.ConversationsServiceSID, PostWebhookURL: base + "/twilio-callbacks"})
					acct.Numbers = append(acct.Numbers, simclient.PhoneNumber{Address: addr, ConversationsServiceSID: e.ConversationsServiceSID})
				} else {
					acct.Numbers = append(acct.Numbers, simclient.PhoneNumber{Address: addr, SmsURL: base + "/messaging/inbound", SmsFallbackURL: base + "/messaging/fallback"})
				}
			}
		}
		if err := simclient.New(info.TwilioSimURL, nil).PutAccount(ctx, acct); err != nil {
			t.Fatalf("register the tenant's account with the emulator: %v", err)
		}
	}
}

// The README's example tenant converses end to end against the emulator:
// greeting, the booking number question with a retry, the queue, an offer
// at an agent who accepts.
func TestExampleTenantConverses(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	spec := applyExample(t, ctx, info)
	tok, err := agentclient.Login(ctx, info.ConsoleURL, spec.Tenant.ID, "luca.rossi@helvetia-travel.example", exampleEnv["AGENT_INITIAL_PASSWORD"])
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	luca, err := agentclient.Dial(ctx, info.ConsoleURL, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(luca.Close)
	if _, err := luca.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}

	sim := simclient.New(info.TwilioSimURL, nil)
	const customer, bookings = "+41795550123", "+41445550100"
	say := func(body string) {
		t.Helper()
		if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: bookings, Body: body}); err != nil {
			t.Fatalf("customer sends %q: %v", body, err)
		}
	}
	expect := func(what string) {
		t.Helper()
		if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return strings.Contains(m.Body, what) }); err != nil {
			t.Fatalf("the customer never got %q: %v", what, err)
		}
	}
	say("Hello, I need to change my flight")
	expect("Welcome to Helvetia Travel!")
	expect("What is your booking number?")
	say("12345")
	expect("Please send the 6 digits of your booking number")
	say("123456")
	o := waitOffer(t, ctx, luca, customer)
	if o.ServiceName != "Bookings" {
		t.Errorf("offer for service %q, want Bookings", o.ServiceName)
	}
	if _, err := luca.Request(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	f, err := luca.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID })
	if err != nil {
		t.Fatal(err)
	}
	var sv sessionView
	if err := f.Decode(&sv); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range sv.Messages {
		bodies = append(bodies, m.Body)
	}
	if !strings.Contains(strings.Join(bodies, "\n"), "123456") {
		t.Errorf("the agent's transcript %q lacks the customer's answer", bodies)
	}
	want := map[string]string{"booking_number": "123456"}
	if got := frameParams(t, o.frame); !maps.Equal(got, want) {
		t.Errorf("offer parameters %v, want %v", got, want)
	}
	if got := frameParams(t, f); !maps.Equal(got, want) {
		t.Errorf("assigned chat parameters %v, want %v", got, want)
	}
}
