package core

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// A chat on Twilio Conversations takes attachments with its channel's
// limits (SMS: the MMS types, 5 MB; WhatsApp: WhatsApp's), one per reply
// (a Conversations message names one uploaded media), sent as the same
// public URL as on Programmable Messaging; the console is told it may
// attach.
func TestConversationsChatTakesAnAttachment(t *testing.T) {
	c, st := newStoreCore(t)
	ctx := context.Background()
	for _, ch := range []struct{ session, channel, customer string }{
		{"sms", "sms", "+41790000011"},
		{"wa", "whatsapp", "whatsapp:+41790000012"},
	} {
		if err := st.CreateSession(ctx, &store.Session{Tenant: "acme", ID: ch.session, State: store.StateActive, AgentID: "alice", StartedAt: time.Now(),
			Conversation: store.Conversation{Channel: ch.channel, Path: "conversations", Customer: ch.customer,
				ChatServiceSID: "IS00000000000000000000000000000001", ConversationSID: "CH0000000000000000000000000000000" + ch.session[:1]},
			ConversationKey: "c:" + ch.customer}); err != nil {
			t.Fatal(err)
		}
	}
	alice := Agent{Tenant: "acme", ID: "alice", IsAgent: true}
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	at, err := c.Attach(ctx, alice, "sms", "image/png", "label.png", png)
	if err != nil {
		t.Fatalf("attach a PNG to a Conversations SMS chat: %v", err)
	}
	for _, tc := range []struct {
		name, session, ct string
		data              []byte
		words             string
	}{
		{"a type MMS does not take", "sms", "audio/ogg", []byte("OggS"), "cannot be sent on sms"},
		{"more than 5 MB", "sms", "application/pdf", append([]byte("%PDF-"), make([]byte, MaxAttachmentBytes)...), "5 MB"},
		{"a type WhatsApp does not take", "wa", "image/gif", []byte("GIF89a"), "cannot be sent on whatsapp"},
	} {
		if _, err := c.Attach(ctx, alice, tc.session, tc.ct, "f", tc.data); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: %v, want invalid naming %q", tc.name, err, tc.words)
		}
	}
	if _, err := c.Attach(ctx, alice, "wa", "audio/ogg", "note.ogg", []byte("OggS voice")); err != nil {
		t.Errorf("attach a voice note to a Conversations WhatsApp chat: %v", err)
	}

	sess, err := c.ownSession(ctx, alice, "sms")
	if err != nil {
		t.Fatal(err)
	}
	urls, err := c.attachmentURLs(ctx, alice, sess, []string{at.ID})
	if err != nil || len(urls) != 1 || urls[0] != "https://console.example/media/"+at.ID {
		t.Errorf("the reply's media = %v, %v; want the attachment's public URL", urls, err)
	}
	second, err := c.Attach(ctx, alice, "sms", "application/pdf", "terms.pdf", []byte("%PDF-1.4 terms"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.attachmentURLs(ctx, alice, sess, []string{at.ID, second.ID}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at most 1") {
		t.Errorf("two attachments in one Conversations reply: %v, want invalid (at most 1)", err)
	}
	if v := sessionView(sess, nil); !v.Attachments {
		t.Error("the console is not told the Conversations chat takes attachments")
	}
}
