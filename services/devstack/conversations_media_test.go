package devstack_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// An agent attaches a picture to a reply in an SMS chat on Twilio
// Conversations (the demo SMS number is bound to a Conversations service):
// the file is uploaded to sessions as on any chat, the reply names it, and
// outbound-sender fetches it from the console's public address, uploads it
// to Twilio's Media Content Service and adds one conversation message
// carrying it. The customer's phone gets exactly the file; the reply shows
// in the transcript with its attachment and is followed to delivered; a
// reply with two files is refused (a Conversations message carries one).
func TestAgentAttachesOnConversations(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	const customer = "+15551239907"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Can you text me the label?"}); err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, alice, customer)
	var view struct {
		Channel     string `json:"channel"`
		Attachments bool   `json:"attachments"`
	}
	if err := json.Unmarshal(acceptOffer(t, ctx, alice, o).Data, &view); err != nil {
		t.Fatal(err)
	}
	if view.Channel != "sms" || !view.Attachments {
		t.Errorf("the accepted chat is %q with attachments %v, want an SMS chat that takes them", view.Channel, view.Attachments)
	}
	tok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo")
	if err != nil {
		t.Fatal(err)
	}
	res, up := upload(t, ctx, info.ConsoleURL, tok, o.SessionID, "image/png", redPixel)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("upload to a Conversations chat: %s %v", res.Status, up)
	}
	id, _ := up["media_id"].(string)
	const reply = "Here is your label"
	ack, err := alice.Request(ctx, "message.send", map[string]any{"session_id": o.SessionID, "body": reply, "client_msg_id": "conv-att-1", "media_ids": []string{id}})
	if err != nil {
		t.Fatalf("send with the attachment: %v", err)
	}
	replyID := ack.Field("message_id")
	sent, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == reply })
	if err != nil {
		t.Fatal(err)
	}
	if sent.Path != "conversations" || sent.ConversationSID == "" || len(sent.Media) != 1 {
		t.Fatalf("the customer got %+v, want one conversation message with one attachment", sent)
	}
	if sent.Media[0].ContentType != "image/png" || sent.Media[0].Size != len(redPixel) {
		t.Errorf("the attachment Twilio holds is %q, %d bytes; want image/png, %d bytes", sent.Media[0].ContentType, sent.Media[0].Size, len(redPixel))
	}
	r, got := fetchBytes(t, sent.Media[0].URL)
	if r.StatusCode != http.StatusOK || !bytes.Equal(got, redPixel) || r.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("the customer's attachment at %s: %s %q, %d bytes", sent.Media[0].URL, r.Status, r.Header.Get("Content-Type"), len(got))
	}
	msgs, err := sim.Inbox(ctx, customer)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Body == reply {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the customer got the reply %d times, want once", n)
	}

	// The transcript has the reply with its attachment, and its statuses
	// follow as for any reply.
	added, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), `"id":"`+replyID+`"`) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(added.Data), "/media/"+id) {
		t.Errorf("the reply in the transcript does not carry its attachment: %s", added.Data)
	}
	if _, err := alice.WaitFor(ctx, "message.status", func(f agentclient.Frame) bool {
		return f.Field("message_id") == replyID && f.Field("status") == "delivered"
	}); err != nil {
		t.Fatalf("no delivered status for the reply: %v", err)
	}

	_, up2 := upload(t, ctx, info.ConsoleURL, tok, o.SessionID, "image/png", redPixel)
	id2, _ := up2["media_id"].(string)
	if _, err := alice.Request(ctx, "message.send", map[string]any{"session_id": o.SessionID, "body": "two", "client_msg_id": "conv-att-2", "media_ids": []string{id, id2}}); !agentclient.IsCode(err, "invalid") {
		t.Errorf("a reply with two attachments: %v, want invalid", err)
	}
}

// A customer's picture sent to the demo SMS number, which is bound to a
// Conversations service, reaches the agent: the webhook names it by its
// media SID (ME…), and the console's media endpoint serves it through
// outbound-sender, which reads it from Twilio's Media Content Service with
// the connector's key. The agent gets exactly the bytes; another agent and
// an attachment that does not exist are refused.
func TestConversationsPictureReachesAgent(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	const customer = "+15551239908"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "The box was crushed",
		Media: []simclient.Media{{ContentType: "image/png", Data: redPixel, Filename: "box.png"}}}); err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, alice, customer)
	var view struct {
		Messages []struct {
			ID    string            `json:"id"`
			Body  string            `json:"body"`
			Media []json.RawMessage `json:"media"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(acceptOffer(t, ctx, alice, o).Data, &view); err != nil {
		t.Fatal(err)
	}
	var msgID string
	for _, m := range view.Messages {
		if m.Body == "The box was crushed" && len(m.Media) == 1 {
			msgID = m.ID
		}
	}
	if msgID == "" {
		t.Fatalf("no message with one attachment in %+v", view)
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
	bobTok, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "bob@demo.example", "demo")
	if err != nil {
		t.Fatal(err)
	}
	if res, body := getMedia(t, ctx, info.ConsoleURL, bobTok, o.SessionID, msgID, 0); res.StatusCode != http.StatusForbidden {
		t.Errorf("another agent: %s (%s), want 403", res.Status, body)
	}
	if res, body := getMedia(t, ctx, info.ConsoleURL, tok, o.SessionID, msgID, 1); res.StatusCode != http.StatusNotFound {
		t.Errorf("no such attachment: %s (%s), want 404", res.Status, body)
	}
}
