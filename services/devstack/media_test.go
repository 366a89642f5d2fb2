package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// A tiny PNG (1×1, red).
var redPixel = []byte{0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00,
	0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d,
	0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82}

// getMedia fetches attachment n of a message through the console's media
// endpoint with tok (none when empty).
func getMedia(t *testing.T, ctx context.Context, consoleURL, tok, session, message string, n int) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(consoleURL, "/")+"/api/agent/v1/media/"+session+"/"+message+"/"+strconv.Itoa(n), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// A customer's picture reaches the agent: Twilio's webhook names it by a
// Twilio media URL; the console asks sessions for it with the agent's
// token, and sessions has outbound-sender download it with the
// connector's credentials. The agent gets exactly the bytes, inline and
// unable to run script; another agent, a request without a token, and an
// attachment that does not exist are refused.
func TestCustomerPictureReachesTheAgent(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	const customer = "whatsapp:+15551239901"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: "whatsapp:+12025550101", Body: "This arrived broken",
		Media: []simclient.Media{{ContentType: "image/png", Data: redPixel, Filename: "parcel.png"}}}); err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, alice, customer)
	f := acceptOffer(t, ctx, alice, o)
	var view struct {
		Messages []struct {
			ID    string `json:"id"`
			Body  string `json:"body"`
			Media []struct {
				URL         string `json:"url"`
				ContentType string `json:"content_type"`
			} `json:"media"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(f.Data, &view); err != nil {
		t.Fatal(err)
	}
	var msgID string
	for _, m := range view.Messages {
		if m.Body == "This arrived broken" && len(m.Media) == 1 {
			msgID = m.ID
			if !strings.HasPrefix(m.Media[0].URL, "https://api.twilio.com/2010-04-01/Accounts/") {
				t.Errorf("media URL %q: want Twilio's", m.Media[0].URL)
			}
		}
	}
	if msgID == "" {
		t.Fatalf("no message with one attachment in %s", f.Data)
	}
	tok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo")
	if err != nil {
		t.Fatal(err)
	}
	res, body := getMedia(t, ctx, info.ConsoleURL, tok, o.SessionID, msgID, 0)
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, redPixel) {
		t.Fatalf("alice's picture: %s, %d bytes (%.200s)", res.Status, len(body), body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type %q", ct)
	}
	if d := res.Header.Get("Content-Disposition"); !strings.HasPrefix(d, "inline") {
		t.Errorf("Content-Disposition %q, want inline", d)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("Content-Security-Policy %q, want a sandbox", csp)
	}

	bobTok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "bob@demo.example", "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok, msg string
		n, want        int
	}{
		{"another agent", bobTok, msgID, 0, http.StatusForbidden},
		{"no token", "", msgID, 0, http.StatusUnauthorized},
		{"a forged token", "x.y.z", msgID, 0, http.StatusUnauthorized},
		{"no such attachment", tok, msgID, 1, http.StatusNotFound},
		{"no such message", tok, "SMnope", 0, http.StatusNotFound},
	} {
		if res, body := getMedia(t, ctx, info.ConsoleURL, tc.tok, o.SessionID, tc.msg, tc.n); res.StatusCode != tc.want {
			t.Errorf("%s: %s (%s), want %d", tc.name, res.Status, body, tc.want)
		}
	}
}

// In a real browser: the customer's picture shows in the chat, loaded with
// the console's token (the page never holds a Twilio URL it could open).
func TestConsoleShowsCustomerPicture(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "whatsapp:+15551239902"
	if err := chromedp.Run(ctx, signIn("alice@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: "whatsapp:+12025550101", Body: "See the dent",
		Media: []simclient.Media{{ContentType: "image/png", Data: redPixel}}}); err != nil {
		t.Fatal(err)
	}
	var width int
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "See the dent"),
		chromedp.WaitVisible("#transcript .attachment img"),
		chromedp.Poll(`(() => { const i = document.querySelector("#transcript .attachment img"); return i && i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0; })()`, &width),
	); err != nil {
		t.Fatalf("picture in the chat: %v", err)
	}
	if width != 1 {
		t.Errorf("picture %d px wide, want the customer's 1×1", width)
	}
}
