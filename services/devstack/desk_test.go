package devstack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// An agent transfers a chat to a colleague by name with a note; the
// colleague is offered it with the note, takes it over, ends it, and
// fills in the after-call work form with the service's codes.
func TestTransferAndWrapUp(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	supportWrapUp(t, ctx, info)

	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	customer := "+15551239901"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "I want my money back"}); err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, alice, customer)
	if _, err := alice.Request(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if _, err := alice.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Fatal(err)
	}

	// The transfer dialog lists the tenant's services.
	list, err := alice.Request(ctx, "services.list", map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	var svcs struct {
		Services []struct{ ID, Name string } `json:"services"`
	}
	if err := list.Decode(&svcs); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, s := range svcs.Services {
		names[s.ID] = s.Name
	}
	if names["support"] != "Customer Support" || names["front-desk"] == "" {
		t.Errorf("services.list = %+v, want support and front-desk", svcs.Services)
	}

	// Refusals name what is wrong and change nothing.
	for _, bad := range []map[string]string{
		{"session_id": o.SessionID},
		{"session_id": o.SessionID, "to_service_id": "support", "to_agent_id": "bob"},
		{"session_id": o.SessionID, "to_agent_id": "alice"},
		{"session_id": "ss_not_hers", "to_agent_id": "bob"},
	} {
		if _, err := alice.Request(ctx, "session.transfer", bad); err == nil {
			t.Errorf("transfer %v accepted", bad)
		}
	}

	bob := agent(t, ctx, info, "bob@demo.example")
	if _, err := bob.Request(ctx, "presence.set", map[string]string{"presence": "available"}); err != nil {
		t.Fatal(err)
	}
	note := "Wants a refund for order 1042; already checked the address."
	if _, err := alice.Request(ctx, "session.transfer", map[string]string{"session_id": o.SessionID, "to_agent_id": "bob", "note": note}); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if _, err := alice.WaitFor(ctx, "session.transferred", func(f agentclient.Frame) bool {
		return f.Field("session_id") == o.SessionID && f.Field("to_agent_id") == "bob" && f.Field("note") == note
	}); err != nil {
		t.Fatalf("alice never saw the chat leave: %v", err)
	}
	offer, err := bob.WaitFor(ctx, "offer.created", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID })
	if err != nil {
		t.Fatalf("bob was not offered the chat: %v", err)
	}
	if offer.Field("note") != note || offer.Field("transferred_by") != "alice" {
		t.Errorf("bob's offer note %q by %q, want the note by alice", offer.Field("note"), offer.Field("transferred_by"))
	}
	if _, err := bob.Request(ctx, "offer.accept", map[string]string{"offer_id": offer.Field("offer_id")}); err != nil {
		t.Fatalf("bob accept: %v", err)
	}
	if _, err := bob.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Fatal(err)
	}
	// The chat is no longer alice's, and its canned responses are bob's.
	if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": o.SessionID, "body": "still here?", "client_msg_id": "late"}); !agentclient.IsCode(err, "forbidden") {
		t.Errorf("alice's send after the transfer: %v, want forbidden", err)
	}
	if _, err := alice.Request(ctx, "canned.list", map[string]string{"session_id": o.SessionID}); !agentclient.IsCode(err, "forbidden") {
		t.Errorf("alice's canned responses after the transfer: %v, want forbidden", err)
	}
	canned, err := bob.Request(ctx, "canned.list", map[string]string{"session_id": o.SessionID})
	if err != nil || !strings.Contains(string(canned.Data), `"shortcut":"order"`) || !strings.Contains(string(canned.Data), "Customer Support, "+customer) {
		t.Errorf("bob's canned responses: %s %v", canned.Data, err)
	}

	if _, err := bob.Request(ctx, "session.terminate", map[string]string{"session_id": o.SessionID}); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	form, err := bob.WaitFor(ctx, "wrapup.started", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID })
	if err != nil {
		t.Fatalf("no wrap-up form: %v", err)
	}
	var w struct {
		TaskID       string    `json:"task_id"`
		EndsAt       time.Time `json:"ends_at"`
		ServiceCodes []string  `json:"service_codes"`
		SalesCodes   []string  `json:"sales_codes"`
		Tags         []string  `json:"tags"`
	}
	if err := form.Decode(&w); err != nil {
		t.Fatal(err)
	}
	if len(w.ServiceCodes) != 2 || len(w.SalesCodes) != 1 || len(w.Tags) != 1 || w.EndsAt.IsZero() || w.TaskID == "" {
		t.Errorf("wrap-up form = %+v, want the service's 2 service codes, 1 sales code, 1 tag and a deadline", w)
	}
	// A reconnecting console gets the form back.
	again := agent(t, ctx, info, "bob@demo.example")
	var snap agentclient.Frame
	for _, f := range again.Frames() {
		if f.Type == "snapshot" {
			snap = f
		}
	}
	var s struct {
		WrapUps []struct {
			TaskID       string   `json:"task_id"`
			ServiceCodes []string `json:"service_codes"`
		} `json:"wrapups"`
	}
	if err := snap.Decode(&s); err != nil {
		t.Fatal(err)
	}
	if len(s.WrapUps) != 1 || s.WrapUps[0].TaskID != w.TaskID || len(s.WrapUps[0].ServiceCodes) != 2 {
		t.Errorf("snapshot wrap-ups = %+v, want the open form", s.WrapUps)
	}
	if _, err := bob.Request(ctx, "wrapup.submit", map[string]any{"task_id": w.TaskID, "service_codes": []string{"not-a-code"}}); !agentclient.IsCode(err, "invalid") {
		t.Errorf("submit with an unknown code: %v, want invalid", err)
	}
	if _, err := bob.Request(ctx, "wrapup.submit", map[string]any{"task_id": w.TaskID, "service_codes": []string{"refund"}, "tags": []string{"vip"}}); err != nil {
		t.Fatalf("submit: %v", err)
	}
	if _, err := bob.WaitFor(ctx, "wrapup.ended", func(f agentclient.Frame) bool {
		return f.Field("task_id") == w.TaskID && f.Field("session_id") == o.SessionID
	}); err != nil {
		t.Fatalf("no end of wrap-up: %v", err)
	}
}

// supportWrapUp gives the demo's support service five minutes of after-call
// work with codes and tags, before any task has made distribution read it.
func supportWrapUp(t *testing.T, ctx context.Context, info devstack.Info) {
	t.Helper()
	conn, err := grpc.NewClient(info.ConfigAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(info.AdminToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	services := configv1.NewServiceServiceClient(conn)
	got, err := services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "demo", Id: "support"})
	if err != nil {
		t.Fatal(err)
	}
	svc := got.GetService()
	svc.Distribution.AfterCallWork = durationpb.New(5 * time.Minute)
	svc.Distribution.ServiceCodes = []string{"refund", "question"}
	svc.Distribution.SalesCodes = []string{"upsell"}
	svc.Distribution.Tags = []string{"vip"}
	if _, err := services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: svc, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"distribution"}}}); err != nil {
		t.Fatal(err)
	}
}

// In a real browser: the agent ends a chat (confirming), fills in the
// after-call work form with the service's codes, then transfers the next
// chat to another service with a note and dismisses it.
func TestConsoleWrapUpAndTransfer(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	supportWrapUp(t, ctx, info)
	sim := simclient.New(info.TwilioSimURL, nil)
	if err := chromedp.Run(ctx,
		chromedp.Navigate(info.ConsoleURL),
		chromedp.WaitVisible("#login-form"),
		chromedp.SetValue("#login-tenant", "demo"),
		chromedp.SendKeys("#login-email", "alice@demo.example"),
		chromedp.SendKeys("#login-password", "demo"),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible("#desk-view"),
		waitText("#conn-state", "connected"),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: "+15557650101", To: devstack.DemoSMSNumber, Body: "Refund please"}); err != nil {
		t.Fatal(err)
	}
	var form string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Refund please"),
		chromedp.Click("#terminate"),
		chromedp.WaitVisible("#terminate-yes"),
		chromedp.Click("#terminate-yes"),
		waitText("#session-meta", "ended"),
		chromedp.WaitVisible("li.wrapup"),
		waitText("li.wrapup .wrapup-timer", "left"),
		chromedp.Text("li.wrapup", &form),
		chromedp.Click(`li.wrapup input[value="refund"]`),
		chromedp.Click(`li.wrapup input[value="vip"]`),
		chromedp.Click("li.wrapup .wrapup-submit"),
		chromedp.WaitNotPresent("li.wrapup"),
	); err != nil {
		t.Fatalf("end and wrap up: %v", err)
	}
	for _, want := range []string{"Customer Support", "refund", "question", "upsell", "vip"} {
		if !strings.Contains(form, want) {
			t.Errorf("wrap-up form %q lacks %q", form, want)
		}
	}

	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: "+15557650102", To: devstack.DemoSMSNumber, Body: "Can I book a table?"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Can I book a table?"),
		chromedp.Click("#transfer"),
		chromedp.WaitVisible("#transfer-form"),
		waitText("#transfer-target", "Front desk"),
		chromedp.SetValue("#transfer-target", "service:front-desk"),
		chromedp.SendKeys("#transfer-note", "Wants a table for four on Friday."),
		chromedp.Click("#transfer-submit"),
		waitText("#session-meta", "transferred to front-desk"),
		chromedp.WaitVisible("#dismiss"),
		chromedp.Click("#dismiss"),
		chromedp.WaitVisible("#no-session"),
	); err != nil {
		t.Fatalf("transfer: %v", err)
	}
}
