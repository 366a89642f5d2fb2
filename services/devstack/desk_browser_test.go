package devstack_test

import (
	"context"
	"encoding/json"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// signIn opens the console and signs the agent in.
func signIn(email string, info devstack.Info) chromedp.Tasks {
	return signInTo("demo", email, "demo", info)
}

// signInTo signs in to another tenant's console.
func signInTo(tenant, email, password string, info devstack.Info) chromedp.Tasks {
	return append(submitSignIn(tenant, email, password, info),
		chromedp.WaitVisible("#desk-view"),
		waitText("#conn-state", "connected"),
	)
}

// submitSignIn opens the console and submits the sign-in form.
func submitSignIn(tenant, email, password string, info devstack.Info) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Navigate(info.ConsoleURL),
		chromedp.WaitVisible("#login-form"),
		chromedp.SetValue("#login-tenant", tenant),
		chromedp.SendKeys("#login-email", email),
		chromedp.SendKeys("#login-password", password),
		chromedp.Click("#login-submit"),
	}
}

// In a real browser: the sign-in page shows no presence controls; offer
// cards preview the customer's first message and the wait; a chat in the
// background counts its unread messages; each chat has its own draft
// meter; a reload opens the most recent chat instead of an empty pane.
func TestConsoleDeskDetails(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const smsCustomer, waCustomer = "+15557650201", "whatsapp:+15557650202"

	var whoDisplay string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(info.ConsoleURL),
		chromedp.WaitVisible("#login-form"),
		chromedp.Evaluate(`getComputedStyle(document.getElementById("who")).display`, &whoDisplay),
	); err != nil {
		t.Fatal(err)
	}
	if whoDisplay != "none" {
		t.Errorf("presence controls on the sign-in page: display %q", whoDisplay)
	}
	if err := chromedp.Run(ctx, signIn("alice@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}

	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: smsCustomer, To: devstack.DemoSMSNumber, Body: "My parcel 1042 never came"}); err != nil {
		t.Fatal(err)
	}
	var card, plain string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		waitText("li.offer .offer-preview", "My parcel 1042 never came"),
		waitText("li.offer .offer-wait", "waiting"),
		chromedp.Text("li.offer", &card),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "My parcel 1042 never came"),
		chromedp.SendKeys("#reply", "It’s on its way — soon…"),
		waitText("#reply-count", "UCS-2"),
		chromedp.WaitVisible("#gsm7"),
		chromedp.Click("#gsm7"),
		waitText("#reply-count", "GSM-7"),
		chromedp.Value("#reply", &plain),
		chromedp.Evaluate(`document.getElementById("reply").value = ""`, nil),
		chromedp.SendKeys("#reply", "Checking now"),
		waitText("#reply-count", "SMS segment"),
	); err != nil {
		t.Fatalf("first chat: %v (card %q)", err, card)
	}
	if plain != "It's on its way - soon..." {
		t.Errorf("GSM-7 rewrite = %q", plain)
	}

	if err := chromedp.Run(ctx, chromedp.Click("#offer-alerts")); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: waCustomer, To: "whatsapp:+12025550101", Body: "Hi from WhatsApp"}); err != nil {
		t.Fatal(err)
	}
	var meter, title string
	var alerted int
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		chromedp.Title(&title),
		chromedp.Evaluate(`state.alerted || 0`, &alerted),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Hi from WhatsApp"),
		chromedp.Text("#reply-count", &meter),
	); err != nil {
		t.Fatalf("second chat: %v", err)
	}
	if !strings.Contains(title, "(1) New offer") || alerted != 1 {
		t.Errorf("an offer with alerts on: title %q, %d alerts; want the count in the title and one alert", title, alerted)
	}
	if strings.Contains(meter, "SMS") {
		t.Errorf("the WhatsApp chat shows the SMS chat's meter %q", meter)
	}

	screenshot(t, ctx, "agent-desk.png")

	// The SMS chat is in the background now: its new message is counted.
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: smsCustomer, To: devstack.DemoSMSNumber, Body: "Any news?"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx,
		waitText("#sessions", "1"),
		chromedp.WaitVisible("#sessions .badge.unread"),
		clickRedrawn(`#sessions li:not(.selected)`),
		waitText("#transcript", "Any news?"),
		chromedp.WaitNotPresent("#sessions .badge.unread"),
	); err != nil {
		t.Fatalf("unread marker: %v", err)
	}

	var paneHidden bool
	if err := chromedp.Run(ctx,
		chromedp.Reload(),
		waitText("#conn-state", "connected"),
		chromedp.WaitVisible("#session-pane"),
		chromedp.Evaluate(`document.getElementById("session-pane").hidden`, &paneHidden),
	); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if paneHidden {
		t.Error("after a reload the chat pane is empty though chats are active")
	}
}

// In a real browser: an offer left unanswered flags the agent (RONA) and
// the presence control says so until they are back.
func TestConsoleShowsRona(t *testing.T) {
	ctx := browser(t)
	info := devstacktest.Start(t, func(c *devstack.Config) { c.DemoRONATimeout = 5 * time.Second })
	sim := simclient.New(info.TwilioSimURL, nil)
	if err := chromedp.Run(ctx, signIn("bob@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: "+15557650301", To: devstack.DemoSMSNumber, Body: "Hello?"}); err != nil {
		t.Fatal(err)
	}
	var presence string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		chromedp.WaitVisible("#rona-banner"),
		chromedp.Value("#presence", &presence),
	); err != nil {
		t.Fatalf("rona: %v", err)
	}
	if presence != "rona" {
		t.Errorf("presence control reads %q during RONA, want the RONA entry", presence)
	}
	if err := chromedp.Run(ctx,
		chromedp.Click("#rona-reset"),
		chromedp.WaitNotVisible("#rona-banner"),
		chromedp.Value("#presence", &presence),
	); err != nil {
		t.Fatalf("back from rona: %v", err)
	}
	if presence != "available" {
		t.Errorf("presence after I'm back = %q", presence)
	}
}

// In a real browser: typing "/" and a shortcut lists the chat's canned
// responses (the service's and the tenant's); picking one inserts it
// filled in for the customer.
func TestConsoleCannedResponses(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	if err := chromedp.Run(ctx, signIn("alice@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: "whatsapp:+15557650401", To: "whatsapp:+12025550101", Body: "Where is it?", ProfileName: "Ann"}); err != nil {
		t.Fatal(err)
	}
	var picker, reply string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Where is it?"),
		chromedp.SendKeys("#reply", "/"),
		chromedp.WaitVisible("#canned-picker"),
		waitText("#canned-picker", "/thanks"),
		chromedp.Text("#canned-picker", &picker),
		chromedp.SendKeys("#reply", "or"),
		waitText("#canned-picker", "/order"),
		chromedp.Click(`#canned-picker li[data-shortcut="order"]`),
		chromedp.WaitNotVisible("#canned-picker"),
		chromedp.Value("#reply", &reply),
	); err != nil {
		t.Fatalf("canned responses: %v", err)
	}
	if !strings.Contains(picker, "/order") || !strings.Contains(picker, "/late") {
		t.Errorf("picker %q lacks the service's responses", picker)
	}
	if want := `Could you send me your order number, Ann? It starts with "DC-".`; reply != want {
		t.Errorf("inserted %q, want %q", reply, want)
	}
}

// In a real browser: a WhatsApp reply Twilio refused because the 24-hour
// window had closed (63016) offers no Resend, which would fail the same
// way. Instead the reply box gives way to the template picker: the agent
// picks the demo account's order_update template, whose {{1}} is prefilled
// with the customer's name, fills {{2}}, sees the preview and sends; the
// emulator receives the template's content sid and variables, and the
// transcript shows the text.
func TestConsoleTemplateOutsideTheWindow(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "whatsapp:+15557650501"
	if err := chromedp.Run(ctx, signIn("bob@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: "whatsapp:+12025550101", Body: "Hi", ProfileName: "Ann"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Hi"),
	); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if _, err := sim.WaitInbox(ctx, customer, 1); err != nil { // the greeting
		t.Fatal(err)
	}
	closed := 63016
	if _, err := sim.AddDeliveryRule(ctx, simclient.DeliveryRule{To: customer, Count: 1, DeliveryOptions: simclient.DeliveryOptions{ErrorCode: &closed}}); err != nil {
		t.Fatal(err)
	}
	var resendButtons int
	var name string
	if err := chromedp.Run(ctx,
		chromedp.SendKeys("#reply", "Your table is booked."),
		chromedp.Click("#send"),
		waitText("#transcript", "63016"),
		waitText("#transcript", "Not resent: the WhatsApp window is closed"),
		chromedp.Evaluate(`document.querySelectorAll("#transcript button.resend").length`, &resendButtons),
	); err != nil {
		t.Fatalf("refused reply: %v", err)
	}
	if resendButtons != 0 {
		t.Errorf("%d Resend buttons on a 63016 failure", resendButtons)
	}
	if err := chromedp.Run(ctx,
		// outbound-sender closes the window on 63016; the console shows it
		// and offers the templates instead of the reply box.
		waitText("#compliance", "window is closed"),
		chromedp.WaitVisible("#template-form"),
		chromedp.WaitNotVisible("#reply-form"),
	); err != nil {
		t.Fatalf("no template picker once the window closed: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(sctx,
		chromedp.WaitReady(`#template-select option[value="`+devstack.DemoTemplateOrderUpdate+`"]`), // options have no box: ready, not visible
		chromedp.SetValue("#template-select", devstack.DemoTemplateOrderUpdate),
		chromedp.Evaluate(`document.getElementById("template-select").dispatchEvent(new Event("change"))`, nil),
		chromedp.WaitVisible("#template-var-2"),
		chromedp.Value("#template-var-1", &name),
		// {{2}} starts with the template's sample value; the agent types the real one.
		chromedp.Evaluate(`document.getElementById("template-var-2").value = ""`, nil),
		chromedp.SendKeys("#template-var-2", "DC-4711"),
		waitText("#template-preview", "Hi Ann, there is news about your order DC-4711."),
	); err != nil {
		var info, preview, options string
		_ = chromedp.Run(ctx, chromedp.Text("#template-info", &info, chromedp.ByQuery), chromedp.Text("#template-preview", &preview, chromedp.ByQuery),
			chromedp.Evaluate(`[...document.querySelectorAll("#template-select option")].map(o => o.value).join(",") + " vars: " + [...document.querySelectorAll("#template-vars input")].map(i => i.id + "=" + i.value).join(",")`, &options))
		t.Fatalf("choosing and filling the template: %v (picker says %q, options %q, preview %q)", err, info, options, preview)
	}
	if err := chromedp.Run(ctx,
		chromedp.Click("#template-send"),
		waitText("#transcript", "Hi Ann, there is news about your order DC-4711. Reply here to continue."),
		waitText("#transcript", "template"),
	); err != nil {
		t.Fatalf("sending the template: %v", err)
	}
	if name != "Ann" {
		t.Errorf("{{1}} prefilled with %q, want the customer's name Ann", name)
	}
	m, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.ContentSID != "" })
	if err != nil {
		t.Fatalf("the template did not reach the emulator: %v", err)
	}
	var vars map[string]string
	if err := json.Unmarshal([]byte(m.ContentVariables), &vars); err != nil {
		t.Fatalf("content variables %q: %v", m.ContentVariables, err)
	}
	if m.ContentSID != devstack.DemoTemplateOrderUpdate || vars["1"] != "Ann" || vars["2"] != "DC-4711" || len(vars) != 2 {
		t.Errorf("emulator got %s with %q, want %s with {1: Ann, 2: DC-4711}", m.ContentSID, m.ContentVariables, devstack.DemoTemplateOrderUpdate)
	}
	if strings.Contains(m.Body, "{{") {
		t.Errorf("the customer's message carries template text %q", m.Body)
	}
}

// In a real browser: the customer's earlier chat is one click away from
// their new one; another agent cannot read it.
func TestConsoleCustomerHistory(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "+15557650601"
	if err := chromedp.Run(ctx, signIn("alice@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "First visit: my bike is broken"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "First visit"),
		chromedp.Click("#terminate"),
		chromedp.Click("#terminate-yes"),
		waitText("#session-meta", "ended"),
		chromedp.Click("#dismiss"),
	); err != nil {
		t.Fatalf("first chat: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Back again about the bike"}); err != nil {
		t.Fatal(err)
	}
	var list string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Back again"),
		chromedp.Click("#history"),
		chromedp.WaitVisible("#history-panel"),
		chromedp.WaitVisible("#history-list li[data-session-id]"),
		chromedp.Text("#history-list", &list),
		chromedp.Click("#history-list li[data-session-id]"),
		waitText("#history-transcript", "First visit: my bike is broken"),
	); err != nil {
		t.Fatalf("history: %v", err)
	}
	if !strings.Contains(list, "handled") || !strings.Contains(list, "alice") {
		t.Errorf("history list %q lacks the outcome or the agent", list)
	}

	// Bob has no business with alice's customer.
	bob := agent(t, timeout(t), info, "bob@demo.example")
	var earlier, current string
	if err := chromedp.Run(ctx,
		chromedp.AttributeValue("#history-list li[data-session-id]", "data-session-id", &earlier, nil),
		chromedp.AttributeValue("#sessions li.selected", "data-session-id", &current, nil),
	); err != nil {
		t.Fatal(err)
	}
	for typ, data := range map[string]map[string]string{
		"session.history": {"session_id": current},
		"session.earlier": {"session_id": current, "earlier_session_id": earlier},
	} {
		if _, err := bob.Request(timeout(t), typ, data); !agentclient.IsCode(err, "forbidden") {
			t.Errorf("bob's %s on alice's chat: %v, want forbidden", typ, err)
		}
	}
}

// In a real browser: a reply whose frame is lost with the connection is
// sent again after the reconnect with the same client_msg_id, and the
// customer gets it once; a retried send over the websocket is one message.
func TestConsoleReplySurvivesDrop(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "+15557650701"
	if err := chromedp.Run(ctx, signIn("alice@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Are you there?"}); err != nil {
		t.Fatal(err)
	}
	// The next message.send frame is swallowed and the socket closed, as a
	// network drop would.
	const drop = `(() => { const orig = WebSocket.prototype.send;
	  WebSocket.prototype.send = function (d) {
	    if (String(d).includes('"message.send"')) { WebSocket.prototype.send = orig; this.close(); return; }
	    return orig.call(this, d);
	  }; })()`
	const reply = "Yes, I'm here. Sorry for the wait."
	var before string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Are you there?"),
		chromedp.Evaluate(`state.stream`, &before),
		chromedp.Evaluate(drop, nil),
		chromedp.SendKeys("#reply", reply),
		chromedp.Click("#send"),
		waitText("#conn-state", "reconnecting"),
		waitText("#conn-state", "connected"),
		waitText("#transcript", reply),
	); err != nil {
		t.Fatalf("reply across a drop: %v", err)
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == reply }); err != nil {
		t.Fatal(err)
	}
	var outbox int
	if err := chromedp.Run(ctx, chromedp.Evaluate(`state.outbox.size`, &outbox)); err != nil {
		t.Fatal(err)
	}
	if outbox != 0 {
		t.Errorf("%d replies left in the outbox", outbox)
	}
	// The reconnect resumed the socket's stream: the frames it missed,
	// not a snapshot.
	var resumed bool
	var after string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`state.resumed`, &resumed), chromedp.Evaluate(`state.stream`, &after)); err != nil {
		t.Fatal(err)
	}
	if !resumed || before == "" || after != before {
		t.Errorf("after the drop: resumed %v, stream %q then %q; want a resume of the same stream", resumed, before, after)
	}

	// The same client_msg_id sent again (a client that never saw the ack)
	// is the same message.
	alice := agent(t, timeout(t), info, "alice@demo.example")
	var sid string
	if err := chromedp.Run(ctx, chromedp.AttributeValue("#sessions li.selected", "data-session-id", &sid, nil)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := alice.Request(timeout(t), "message.send", map[string]string{"session_id": sid, "body": "Once only", "client_msg_id": "retry-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == "Once only" }); err != nil {
		t.Fatal(err)
	}
	inbox, err := sim.Inbox(ctx, customer)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, m := range inbox {
		counts[m.Body]++
	}
	if counts[reply] != 1 || counts["Once only"] != 1 {
		t.Errorf("customer got the reply %d times and the retried send %d times, want once each", counts[reply], counts["Once only"])
	}
}
