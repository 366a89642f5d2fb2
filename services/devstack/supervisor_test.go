package devstack_test

import (
	"context"
	"encoding/json"
	"github.com/chromedp/chromedp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

type frameMessage struct {
	SessionID string `json:"session_id"`
	Message   struct {
		ID, Direction, Sender, Body, Visibility string
	} `json:"message"`
}

func messageFrame(body, sender string) func(agentclient.Frame) bool {
	return func(f agentclient.Frame) bool {
		var m frameMessage
		return f.Decode(&m) == nil && m.Message.Body == body && (sender == "" || m.Message.Sender == sender)
	}
}

// A supervisor watches the queues and agents, lists an agent's chats,
// monitors one silently, whispers to the agent, writes to the customer and
// ends the chat; the agent's own view never shows the audit trail, and an
// agent cannot do any of it.
func TestSupervisorDesk(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	sam := agent(t, ctx, info, "sam@demo.example")
	if w, _ := sam.WaitFor(ctx, "welcome", nil); !strings.Contains(string(w.Data), "supervisor") || strings.Contains(string(w.Data), `"agent","supervisor"`) {
		t.Errorf("sam's welcome %s, want the supervisor role only", w.Data)
	}

	for typ, data := range map[string]map[string]string{
		"supervisor.watch": {}, "supervisor.monitor": {"session_id": "ss_x"}, "supervisor.whisper": {"session_id": "ss_x", "body": "x"},
		"supervisor.end": {"session_id": "ss_x"}, "supervisor.agent_chats": {"agent_id": "bob"}, "supervisor.reset_rona": {"agent_id": "bob"},
	} {
		if _, err := alice.Request(ctx, typ, data); !agentclient.IsCode(err, "forbidden") {
			t.Errorf("agent alice's %s: %v, want forbidden", typ, err)
		}
	}

	if _, err := sam.Request(ctx, "supervisor.watch", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sam.WaitFor(ctx, "queues", nil); err != nil {
		t.Fatalf("no queue view: %v (frames %v)", err, sam.Frames())
	}

	const customer = "+15557659901"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "My order is late"}); err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, alice, customer)
	if _, err := alice.Request(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Fatal(err)
	}
	if _, err := sam.WaitFor(ctx, "queues", func(f agentclient.Frame) bool {
		return strings.Contains(string(f.Data), `"service_id":"support"`) && strings.Contains(string(f.Data), `"agent_id":"alice"`) &&
			strings.Contains(string(f.Data), `"active_tasks":1`)
	}); err != nil {
		t.Fatalf("the queue view never showed alice busy: %v", err)
	}
	chats, err := sam.Request(ctx, "supervisor.agent_chats", map[string]string{"agent_id": "alice"})
	if err != nil || !strings.Contains(string(chats.Data), o.SessionID) {
		t.Fatalf("alice's chats: %s %v", chats.Data, err)
	}

	mon, err := sam.Request(ctx, "supervisor.monitor", map[string]string{"session_id": o.SessionID})
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	if s := string(mon.Data); !strings.Contains(s, "My order is late") || !strings.Contains(s, "started monitoring") || !strings.Contains(s, `"agent_id":"alice"`) {
		t.Errorf("monitored chat %s lacks the customer's message, the audit entry or its agent", s)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Hello?"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sam.WaitFor(ctx, "message.added", messageFrame("Hello?", "customer")); err != nil {
		t.Fatalf("the monitor missed the customer's message: %v", err)
	}

	if _, err := sam.Request(ctx, "supervisor.whisper", map[string]string{"session_id": o.SessionID, "body": "Offer a voucher"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.WaitFor(ctx, "message.added", messageFrame("Offer a voucher", "supervisor")); err != nil {
		t.Fatalf("alice never saw the whisper: %v", err)
	}
	if _, err := alice.Request(ctx, "note.add", map[string]string{"session_id": o.SessionID, "body": "Customer is a regular"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sam.WaitFor(ctx, "message.added", messageFrame("Customer is a regular", "agent")); err != nil {
		t.Fatalf("sam never saw alice's note: %v", err)
	}
	const barge = "Hi, this is Sam, the team lead."
	if _, err := sam.Request(ctx, "supervisor.barge", map[string]string{"session_id": o.SessionID, "body": barge, "client_msg_id": "b1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == barge }); err != nil {
		t.Fatalf("the barge never reached the customer: %v", err)
	}
	if _, err := alice.WaitFor(ctx, "message.added", messageFrame(barge, "supervisor")); err != nil {
		t.Fatalf("alice never saw the barge: %v", err)
	}
	inbox, err := sim.Inbox(ctx, customer)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range inbox {
		if m.Body == "Offer a voucher" || m.Body == "Customer is a regular" {
			t.Errorf("an internal note reached the customer: %q", m.Body)
		}
	}

	// alice's own view after a reload: notes yes, the audit trail no.
	again := agent(t, ctx, info, "alice@demo.example")
	var snap struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			Messages  []struct{ Body, Visibility string }
		} `json:"sessions"`
	}
	for _, f := range again.Frames() {
		if f.Type == "snapshot" {
			if err := json.Unmarshal(f.Data, &snap); err != nil {
				t.Fatal(err)
			}
		}
	}
	var whisper bool
	for _, s := range snap.Sessions {
		for _, m := range s.Messages {
			if m.Visibility != "" || strings.Contains(m.Body, "monitoring") {
				t.Errorf("alice's view shows the audit entry %q", m.Body)
			}
			whisper = whisper || m.Body == "Offer a voucher"
		}
	}
	if !whisper {
		t.Errorf("alice's reloaded view lacks the whisper: %+v", snap.Sessions)
	}

	if _, err := sam.Request(ctx, "supervisor.end", map[string]string{"session_id": o.SessionID}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*agentclient.Conn{"alice": alice, "sam": sam} {
		if _, err := c.WaitFor(ctx, "session.ended", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
			t.Errorf("%s never saw the chat end: %v", name, err)
		}
	}
	if _, err := sam.Request(ctx, "supervisor.whisper", map[string]string{"session_id": o.SessionID, "body": "too late"}); !agentclient.IsCode(err, "conflict") {
		t.Errorf("whisper into an ended chat: %v, want conflict", err)
	}
	if r, err := sam.Request(ctx, "supervisor.reset_rona", map[string]string{"agent_id": "alice"}); err != nil || r.Field("agent_id") != "alice" {
		t.Errorf("reset rona: %s %v", r.Data, err)
	}
}

// In a real browser: a supervisor signs in to the supervisor view, sees the
// queues and agents, opens an agent's chat, whispers, writes to the
// customer and ends the chat.
func TestConsoleSupervisorView(t *testing.T) {
	bctx := browser(t)
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	const customer = "+15557659902"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Is anyone there?"}); err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, alice, customer)
	if _, err := alice.Request(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatal(err)
	}

	var deskHidden bool
	if err := chromedp.Run(bctx,
		chromedp.Navigate(info.ConsoleURL),
		chromedp.WaitVisible("#login-form"),
		chromedp.SetValue("#login-tenant", "demo"),
		chromedp.SendKeys("#login-email", "sam@demo.example"),
		chromedp.SendKeys("#login-password", "demo"),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible("#supervisor-view"),
		chromedp.Evaluate(`document.getElementById("desk-view").hidden`, &deskHidden),
		waitText("#sv-queues", "support"),
		waitText("#sv-agents", "alice"),
		chromedp.Click(`#sv-agents tr[data-agent-id="alice"] button.chats`),
		chromedp.WaitVisible(`#sv-chats li[data-session-id="`+o.SessionID+`"]`),
		chromedp.Click(`#sv-chats li[data-session-id="`+o.SessionID+`"]`),
		waitText("#sv-transcript", "Is anyone there?"),
		waitText("#sv-transcript", "started monitoring"),
		chromedp.SendKeys("#sv-whisper", "Ask for the order number"),
		chromedp.Click("#sv-whisper-form button"),
		waitText("#sv-transcript", "Ask for the order number"),
		chromedp.SendKeys("#sv-barge", "Sam here, we are on it."),
		chromedp.Click("#sv-barge-form button"),
		waitText("#sv-transcript", "Sam here, we are on it."),
	); err != nil {
		t.Fatalf("supervisor view: %v", err)
	}
	if !deskHidden {
		t.Error("a supervisor who takes no chats sees the agent desk")
	}
	screenshot(t, bctx, "supervisor-desk.png")
	if _, err := alice.WaitFor(ctx, "message.added", messageFrame("Ask for the order number", "supervisor")); err != nil {
		t.Errorf("alice never saw the whisper: %v", err)
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == "Sam here, we are on it." }); err != nil {
		t.Errorf("the customer never got the supervisor's message: %v", err)
	}
	if err := chromedp.Run(bctx,
		chromedp.Click("#sv-end"),
		waitText("#sv-meta", "ended"),
	); err != nil {
		t.Fatalf("end: %v", err)
	}
	if _, err := alice.WaitFor(ctx, "session.ended", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Errorf("alice never saw the chat end: %v", err)
	}
}

// screenshot saves the page to docs/<name> when UPDATE_SCREENSHOTS is set
// (how the README's pictures are made).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") == "" {
		return
	}
	var png []byte
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1400, 900), chromedp.Sleep(300*time.Millisecond), chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
