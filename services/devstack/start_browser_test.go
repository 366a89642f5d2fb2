package devstack_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// In a real browser, on the whole stack: an agent starts a WhatsApp
// conversation with a customer who never wrote. They pick the demo
// tenant's WhatsApp entry and the order_update template, fill in its
// variables and start; the chat is on their desk at once (no offer), the
// emulator receives the template from the entry's number, no workflow
// greets the customer, and the customer's answer lands in that chat.
func TestConsoleStartsAWhatsAppConversation(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer, business = "whatsapp:+15557650777", "whatsapp:+12025550101"
	if err := chromedp.Run(ctx, signIn("bob@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(sctx,
		chromedp.Click("#new-conversation"),
		chromedp.WaitVisible("#start-form"),
		chromedp.WaitReady(`#start-template option[value="`+devstack.DemoTemplateOrderUpdate+`"]`),
		chromedp.SetValue("#start-template", devstack.DemoTemplateOrderUpdate),
		chromedp.Evaluate(`document.getElementById("start-template").dispatchEvent(new Event("change"))`, nil),
		chromedp.WaitVisible("#start-var-2"),
		chromedp.SendKeys("#start-customer", "+15557650777"),
		chromedp.SendKeys("#start-var-1", "Ann"),
		chromedp.SendKeys("#start-var-2", "DC-9"),
		waitText("#start-preview", "Hi Ann, there is news about your order DC-9."),
		chromedp.Click("#start-send"),
		chromedp.WaitNotVisible("#start-form"),
		waitText("#session-customer", "+15557650777"),
		waitText("#transcript", "Hi Ann, there is news about your order DC-9. Reply here to continue."),
	); err != nil {
		var status, entries, page string
		_ = chromedp.Run(ctx, chromedp.Text("#start-info", &status, chromedp.ByQuery),
			chromedp.Evaluate(`[...document.querySelectorAll("#start-entry option")].map(o => o.textContent).join(" | ")`, &entries),
			chromedp.Evaluate(`JSON.stringify({form: document.getElementById("start-form").hidden, templates: [...document.querySelectorAll("#start-template option")].map(o => o.value),
				vars: [...document.querySelectorAll("#start-vars input")].map(i => i.id + "=" + i.value), preview: document.getElementById("start-preview").textContent,
				customer: document.getElementById("session-customer").textContent, error: document.getElementById("desk-error").textContent,
				transcript: document.getElementById("transcript").textContent})`, &page))
		t.Fatalf("starting the conversation: %v (form says %q; entries %q; page %s)", err, status, entries, page)
	}
	m, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.ContentSID != "" })
	if err != nil {
		t.Fatalf("the template did not reach the emulator: %v", err)
	}
	var vars map[string]string
	if err := json.Unmarshal([]byte(m.ContentVariables), &vars); err != nil {
		t.Fatalf("content variables %q: %v", m.ContentVariables, err)
	}
	if m.ContentSID != devstack.DemoTemplateOrderUpdate || vars["1"] != "Ann" || vars["2"] != "DC-9" || m.From != business {
		t.Errorf("emulator got %s with %q from %s, want %s with {1: Ann, 2: DC-9} from %s", m.ContentSID, m.ContentVariables, m.From, devstack.DemoTemplateOrderUpdate, business)
	}

	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: business, Body: "Great, when does it arrive?", ProfileName: "Ann"}); err != nil {
		t.Fatal(err)
	}
	var offers int
	if err := chromedp.Run(ctx,
		waitText("#transcript", "Great, when does it arrive?"),
		chromedp.Evaluate(`document.querySelectorAll("li.offer").length`, &offers),
	); err != nil {
		t.Fatalf("the customer's answer: %v", err)
	}
	if offers != 0 {
		t.Errorf("%d offer cards: the answer should land in the started chat, not be offered", offers)
	}
	inbox, err := sim.Inbox(ctx, customer)
	if err != nil {
		t.Fatal(err)
	}
	if len(inbox) != 1 {
		t.Errorf("the customer got %d messages, want the template only (no workflow greeting): %+v", len(inbox), inbox)
	}
	const reply = "Tomorrow before noon."
	if err := chromedp.Run(ctx,
		chromedp.SendKeys("#reply", reply),
		chromedp.Click("#send"),
		waitText("#transcript", reply),
	); err != nil {
		t.Fatalf("reply in the started chat: %v", err)
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == reply }); err != nil {
		t.Fatalf("the reply did not reach the customer: %v", err)
	}
}
