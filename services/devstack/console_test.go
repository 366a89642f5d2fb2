package devstack_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// browser starts headless Chromium for the test. Without one the test
// skips, unless SWITCHBOARD_REQUIRE_BROWSER is set (CI sets it), in which
// case it fails.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		msg := "no Chromium on PATH: install Debian's chromium package to run the console browser tests"
		if os.Getenv("SWITCHBOARD_REQUIRE_BROWSER") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Chromium's helpers may still write into the profile right after it
	// exits, so the profile is removed best-effort rather than by t.TempDir.
	profile, err := os.MkdirTemp("", "switchboard-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(func() {
		cancel()
		cancelBrowser()
		cancelAlloc()
	})
	return ctx
}

// An agent signs in to the console page, sees the offer card with the
// customer's number and the service, accepts, reads the customer's
// message, replies and terminates — in a real browser.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "+15557654321"

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

	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Where is my parcel?"}); err != nil {
		t.Fatal(err)
	}
	var card string
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		chromedp.Text("li.offer", &card),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Where is my parcel?"),
	); err != nil {
		t.Fatalf("offer and accept: %v", err)
	}
	if !strings.Contains(card, customer) || !strings.Contains(card, "Customer Support") || !strings.Contains(card, "SMS") {
		t.Errorf("offer card %q lacks the customer's number, the channel or the service", card)
	}

	const reply = "It left our warehouse this morning."
	if err := chromedp.Run(ctx,
		chromedp.SendKeys("#reply", reply),
		chromedp.Click("#send"),
		waitText("#transcript", reply),
	); err != nil {
		t.Fatalf("reply: %v", err)
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == reply }); err != nil {
		t.Fatalf("reply did not reach the customer: %v", err)
	}
	if err := chromedp.Run(ctx,
		chromedp.Click("#terminate"),
		chromedp.WaitVisible("#confirm-end"),
		chromedp.Click("#terminate-yes"),
		waitText("#session-meta", "ended"),
	); err != nil {
		t.Fatalf("terminate: %v", err)
	}

	// A reload keeps the ended chat on the desk, with its messages, until
	// the agent dismisses it; then the server no longer lists it.
	var sessionID string
	if err := chromedp.Run(ctx,
		chromedp.Reload(),
		waitText("#conn-state", "connected"),
		waitText("#session-meta", "ended"),
		waitText("#transcript", reply),
		chromedp.Evaluate(`state.selected`, &sessionID),
		chromedp.Click("#dismiss"),
		chromedp.WaitVisible("#no-session"),
	); err != nil {
		t.Fatalf("the ended chat after a reload, then dismissed: %v", err)
	}
	tok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := agentclient.Dial(ctx, info.ConsoleURL, tok)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := c.WaitFor(ctx, "snapshot", nil)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if sessionID != "" && !strings.Contains(string(snap.Data), sessionID) {
			break // the dismissal is in (it goes over the socket, after the click)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dismissed chat %q is still in the snapshot: %s", sessionID, snap.Data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clickRedrawn clicks sel in a part of the page the console redraws
// whenever a frame changes it (the chat list): a click that finds its node
// gone, replaced by the redraw between the lookup and the click, is made
// again on the new one.
func clickRedrawn(sel string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for attempt := 1; ; attempt++ {
			err := chromedp.Run(ctx, chromedp.Click(sel, chromedp.ByQuery))
			if err == nil || attempt == 5 || !strings.Contains(err.Error(), "Could not find node") {
				return err
			}
		}
	})
}

// waitText waits until the element's text contains want.
func waitText(sel, want string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var got string
			if err := chromedp.Run(ctx, chromedp.Text(sel, &got, chromedp.ByQuery)); err != nil {
				return err
			}
			if strings.Contains(got, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// In a real browser: each reply shows its delivery status; a reply the
// carrier did not deliver shows Twilio's error and a Resend button, and the
// resend reaches the customer; the draft shows its SMS segments (counted by
// the server); a customer's STOP blocks the reply box with the reason
// before the agent types, and START unblocks it.
func TestConsoleStatusAndResend(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "+15557650001"

	if err := chromedp.Run(ctx,
		chromedp.Navigate(info.ConsoleURL),
		chromedp.WaitVisible("#login-form"),
		chromedp.SetValue("#login-tenant", "demo"),
		chromedp.SendKeys("#login-email", "bob@demo.example"),
		chromedp.SendKeys("#login-password", "demo"),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible("#desk-view"),
		waitText("#conn-state", "connected"),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Did you get my order?"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Did you get my order?"),
	); err != nil {
		t.Fatalf("offer and accept: %v", err)
	}
	// The workflow's greeting went first; the next send to the customer
	// is not delivered by the carrier.
	if _, err := sim.WaitInbox(ctx, customer, 1); err != nil {
		t.Fatal(err)
	}
	undelivered := 30003
	if _, err := sim.AddDeliveryRule(ctx, simclient.DeliveryRule{To: customer, Count: 1, DeliveryOptions: simclient.DeliveryOptions{ErrorCode: &undelivered}}); err != nil {
		t.Fatal(err)
	}

	const reply = "Yes, it ships tomorrow."
	if err := chromedp.Run(ctx,
		chromedp.SendKeys("#reply", reply),
		waitText("#reply-count", "1 SMS segment"),
		chromedp.Click("#send"),
		waitText("#transcript", "not delivered (30003"),
		chromedp.WaitVisible("#transcript button.resend"),
	); err != nil {
		t.Fatalf("undelivered reply: %v", err)
	}
	if err := chromedp.Run(ctx,
		chromedp.Click("#transcript button.resend"),
		waitText("#transcript", "Resent below."),
		waitText("#transcript", "resend · delivered"),
	); err != nil {
		t.Fatalf("resend: %v", err)
	}
	n := 0
	inbox, err := sim.Inbox(ctx, customer)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range inbox {
		if m.Body == reply {
			n++
		}
	}
	if n != 2 {
		t.Errorf("the customer's phone saw the reply %d times, want 2 (undelivered, then the resend)", n)
	}

	// The segment counter follows the server: an emoji switches to UCS-2.
	if err := chromedp.Run(ctx,
		clearReply(),
		chromedp.SendKeys("#reply", strings.Repeat("a", 69)+"😀"),
		waitText("#reply-count", "2 SMS segments · UCS-2"),
		clearReply(),
	); err != nil {
		t.Fatalf("segment counter: %v", err)
	}

	// STOP blocks the reply box before the agent types; START lifts it.
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "STOP"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx,
		waitText("#compliance", "opted out"),
		waitDisabled("#send", true),
	); err != nil {
		t.Fatalf("opt-out banner: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "START"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx, waitDisabled("#send", false)); err != nil {
		t.Fatalf("opt-in: %v", err)
	}
}

func clearReply() chromedp.Action {
	return chromedp.Evaluate(`document.getElementById("reply").value = ""; document.getElementById("reply").dispatchEvent(new Event("input"))`, nil)
}

// waitDisabled waits until the element's disabled property is want.
func waitDisabled(sel string, want bool) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var disabled bool
			if err := chromedp.Run(ctx, chromedp.JavascriptAttribute(sel, "disabled", &disabled, chromedp.ByQuery)); err != nil {
				return err
			}
			if disabled == want {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}
