package devstack_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// In a real browser: what the workflow collected shows on the offer card
// and in the chat's Customer details, as text: a customer's answer that
// is markup stays text and runs nothing.
func TestConsoleCustomerDetails(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	// The example tenant's booking question takes any answer here.
	spec := applyExample(t, ctx, info, func(s *tenantspec.Spec) {
		for i := range s.Workflows {
			for j, a := range s.Workflows[i].Definition.Activities {
				if a.ID == "booking" {
					delete(s.Workflows[i].Definition.Activities[j].Params, "pattern")
				}
			}
		}
	})
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer, bookings = "+41795550177", "+41445550100"
	const answer = `<img src=x onerror="window.__injected=1">`
	if err := chromedp.Run(ctx, signInTo(spec.Tenant.ID, "luca.rossi@helvetia-travel.example", exampleEnv["AGENT_INITIAL_PASSWORD"], info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	for _, body := range []string{"Hello, I need to change my flight", answer} {
		if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: bookings, Body: body}); err != nil {
			t.Fatal(err)
		}
		if body != answer {
			if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return strings.Contains(m.Body, "booking number") }); err != nil {
				t.Fatalf("no booking question: %v", err)
			}
		}
	}
	var cardKey, cardValue string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer dl.offer-params"),
		chromedp.Evaluate(`document.querySelector("li.offer dl.offer-params dt").textContent`, &cardKey),
		chromedp.Evaluate(`document.querySelector("li.offer dl.offer-params dd").textContent`, &cardValue),
	); err != nil {
		t.Fatalf("offer card: %v", err)
	}
	if cardKey != "booking_number" || cardValue != answer {
		t.Errorf("offer card lists %q: %q, want booking_number: %q", cardKey, cardValue, answer)
	}
	var key, value string
	var images int
	var injected bool
	if err := chromedp.Run(ctx,
		clickRedrawn("li.offer button.accept"),
		chromedp.WaitVisible("#session-details"),
		waitText("#session-details", "Customer details"),
		waitText("#session-details-list", "booking_number"),
		// Read at once: every render replaces the list's nodes.
		chromedp.Evaluate(`document.querySelector("#session-details-list dt").textContent`, &key),
		chromedp.Evaluate(`document.querySelector("#session-details-list dd").textContent`, &value),
		chromedp.Evaluate(`document.querySelectorAll("#session-details img, #offers img").length`, &images),
		chromedp.Evaluate(`window.__injected === 1`, &injected),
	); err != nil {
		t.Fatalf("customer details: %v", err)
	}
	if key != "booking_number" || value != answer {
		t.Errorf("customer details list %q: %q, want booking_number: %q", key, value, answer)
	}
	if images != 0 || injected {
		t.Errorf("the customer's markup became HTML: %d images, script ran %v", images, injected)
	}
}
