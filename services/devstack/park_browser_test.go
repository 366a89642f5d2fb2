package devstack_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// In a real browser: the agent parks a chat from its head; the chat list
// marks it, the reply box is disabled with a note, the customer's messages
// still show; Resume enables the reply box again and a reply goes out.
func TestConsoleParkAndResume(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "+15557650301"
	if err := chromedp.Run(ctx, signIn("alice@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "My order never came"}); err != nil {
		t.Fatal(err)
	}
	var replyDisabled, sendDisabled bool
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "My order never came"),
		waitText("#park", "Park"),
		chromedp.Click("#park"),
		waitText("#session-meta", "parked"),
		waitText("#park", "Resume"),
		chromedp.WaitVisible("#parked-note"),
		chromedp.WaitVisible("#sessions li.parked .badge.parked"),
		chromedp.Evaluate(`document.getElementById("reply").disabled`, &replyDisabled),
		chromedp.Evaluate(`document.getElementById("send").disabled`, &sendDisabled),
	); err != nil {
		t.Fatalf("park: %v", err)
	}
	if !replyDisabled || !sendDisabled {
		t.Errorf("while parked: reply disabled %v, send disabled %v; want both disabled", replyDisabled, sendDisabled)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Hello? Anyone?"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx,
		waitText("#transcript", "Hello? Anyone?"),
		chromedp.Click("#park"),
		waitText("#park", "Park"),
		chromedp.WaitNotVisible("#parked-note"),
		chromedp.WaitNotPresent("#sessions li.parked"),
		chromedp.Evaluate(`document.getElementById("reply").disabled`, &replyDisabled),
	); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if replyDisabled {
		t.Error("reply box still disabled after resume")
	}
	if err := chromedp.Run(ctx,
		chromedp.SendKeys("#reply", "Sorry for the wait, checking now."),
		chromedp.Click("#send"),
		waitText("#transcript", "Sorry for the wait, checking now."),
	); err != nil {
		t.Fatalf("reply after resume: %v", err)
	}
}
