package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-cc/switchboard/services/devstack"
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

// whatsappChat has a WhatsApp customer write (with media, if any) and
// alice accept the offer; it returns the offer and the assignment frame.
func whatsappChat(t *testing.T, ctx context.Context, info devstack.Info, alice *agentclient.Conn, customer, body string, media ...simclient.Media) (offer, agentclient.Frame) {
	t.Helper()
	sim := simclient.New(info.TwilioSimURL, nil)
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: "whatsapp:+12025550101", Body: body, Media: media}); err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, alice, customer)
	return o, acceptOffer(t, ctx, alice, o)
}

// fetchBytes GETs url as Twilio would fetch a MediaUrl.
func fetchBytes(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r, b
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
	alice := agent(t, ctx, info, "alice@demo.example")
	o, f := whatsappChat(t, ctx, info, alice, "whatsapp:+15551239901", "This arrived broken",
		simclient.Media{ContentType: "image/png", Data: redPixel, Filename: "parcel.png"})
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

// upload attaches a file to a chat as the console does.
func upload(t *testing.T, ctx context.Context, consoleURL, tok, session, contentType string, data []byte) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(consoleURL, "/")+"/api/agent/v1/media/"+session, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res, out
}

// An agent attaches a picture to a reply on WhatsApp: the file is uploaded
// to sessions, the reply names it, and Twilio is asked to send it with a
// MediaUrl on the console's public address that serves exactly the file.
// Files of a type the channel does not take, too large, not what they
// claim to be, in another agent's chat, or named in a reply of another
// chat are refused, saying why. (A chat on Twilio Conversations:
// TestAgentAttachesOnConversations.)
func TestAgentSendsAnAttachment(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	const customer = "whatsapp:+15551239903"
	o, _ := whatsappChat(t, ctx, info, alice, customer, "Can you send the label?")
	tok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo")
	if err != nil {
		t.Fatal(err)
	}
	res, up := upload(t, ctx, info.ConsoleURL, tok, o.SessionID, "image/png", redPixel)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %s %v", res.Status, up)
	}
	id, _ := up["media_id"].(string)
	if _, err := alice.Request(ctx, "message.send", map[string]any{"session_id": o.SessionID, "body": "Here it is", "client_msg_id": "att-1", "media_ids": []string{id}}); err != nil {
		t.Fatalf("send with the attachment: %v", err)
	}
	sent, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == "Here it is" })
	if err != nil {
		t.Fatal(err)
	}
	if len(sent.Media) != 1 {
		t.Fatalf("Twilio was asked to send %d media, want 1: %+v", len(sent.Media), sent)
	}
	r, got := fetchBytes(t, sent.Media[0].URL)
	if r.StatusCode != http.StatusOK || !bytes.Equal(got, redPixel) || r.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("Twilio's fetch of %s: %s %q, %d bytes", sent.Media[0].URL, r.Status, r.Header.Get("Content-Type"), len(got))
	}

	bobTok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "bob@demo.example", "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok, ct string
		data          []byte
		want          int
		words         string
	}{
		{"a type WhatsApp does not take", tok, "image/gif", []byte("GIF89a....."), http.StatusUnsupportedMediaType, "cannot be sent on whatsapp"},
		{"not what it claims", tok, "image/png", []byte("<html><script>alert(1)</script>"), http.StatusBadRequest, "not image/png"},
		{"too large", tok, "application/pdf", make([]byte, 5<<20+1), http.StatusRequestEntityTooLarge, "5 MB"},
		{"empty", tok, "image/png", nil, http.StatusBadRequest, "empty"},
		{"another agent's chat", bobTok, "image/png", redPixel, http.StatusForbidden, "not assigned to you"},
		{"no token", "", "image/png", redPixel, http.StatusUnauthorized, "Bearer"},
	} {
		res, out := upload(t, ctx, info.ConsoleURL, tc.tok, o.SessionID, tc.ct, tc.data)
		msg, _ := out["error"].(string)
		if res.StatusCode != tc.want || !strings.Contains(msg, tc.words) {
			t.Errorf("%s: %s %q, want %d naming %q", tc.name, res.Status, msg, tc.want, tc.words)
		}
	}
	if _, err := alice.Request(ctx, "message.send", map[string]any{"session_id": o.SessionID, "body": "x", "client_msg_id": "att-2", "media_ids": []string{"at_00000000000000000000000000000000"}}); !agentclient.IsCode(err, "invalid") {
		t.Errorf("send naming an attachment never uploaded: %v, want invalid", err)
	}
	if r, _ := http.Get(strings.TrimSuffix(info.ConsoleURL, "/") + "/media/at_00000000000000000000000000000000"); r.StatusCode != http.StatusNotFound {
		t.Errorf("a guessed attachment id: %s, want 404", r.Status)
	}
}

// In a real browser: the agent attaches a picture to a WhatsApp reply and
// the customer gets it.
func TestConsoleAttachesAFile(t *testing.T) {
	ctx := browser(t)
	info := stack(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	const customer = "whatsapp:+15551239905"
	dir := t.TempDir()
	file := filepath.Join(dir, "label.png")
	if err := os.WriteFile(file, redPixel, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx, signIn("alice@demo.example", info)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: "whatsapp:+12025550101", Body: "Send me the label please"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible("li.offer"),
		clickRedrawn("li.offer button.accept"),
		waitText("#transcript", "Send me the label please"),
		chromedp.WaitVisible("#attach"),
		chromedp.SetUploadFiles("#attach-file", []string{file}, chromedp.ByQuery),
		waitText("#attached", "label.png"),
		chromedp.SendKeys("#reply", "Your label"),
		chromedp.Click("#send"),
		waitText("#transcript", "Your label"),
	); err != nil {
		t.Fatalf("attach and send: %v", err)
	}
	m, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == "Your label" })
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Media) != 1 {
		t.Fatalf("the customer got %d attachments, want the label", len(m.Media))
	}
	if _, got := fetchBytes(t, m.Media[0].URL); !bytes.Equal(got, redPixel) {
		t.Errorf("the attachment at %s is %d bytes, not the file attached", m.Media[0].URL, len(got))
	}
}
