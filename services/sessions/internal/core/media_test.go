package core

import (
	"encoding/json"
	"errors"
	"testing"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

func TestSafeMediaURL(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want bool
	}{
		{"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", true},
		{"http://127.0.0.1:8089/media/ME1", true},
		{"HTTPS://example.com/a.jpg", true},
		{"javascript:alert(document.cookie)", false},
		{"JavaScript:alert(1)", false},
		{"data:text/html,<script>alert(1)</script>", false},
		{"vbscript:msgbox", false},
		{"//evil.example/a.jpg", false},
		{"/relative.jpg", false},
		{"https://user:pw@evil.example/a.jpg", false},
		{"https:///nohost", false},
		{" https://example.com/a.jpg", false},
		{"https://example.com/\u00e9.jpg", false},
		{"", false},
	} {
		if got := SafeMediaURL(tt.url); got != tt.want {
			t.Errorf("SafeMediaURL(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

// A transcript entry stored before media URLs were checked is shown
// without its unsafe link.
func TestMessageViewDropsUnsafeMedia(t *testing.T) {
	m := &store.Message{ID: "SM1", Body: "see attached", Media: []store.Media{
		{URL: "https://example.com/a.jpg", ContentType: "image/jpeg"},
		{URL: "javascript:alert(1)", ContentType: "image/png"},
		{URL: "data:image/svg+xml,<svg onload=alert(1)>", ContentType: "image/svg+xml"},
		{ContentType: "image/gif"}, // a Conversations media SID: no link
	}}
	v := messageView(m)
	if len(v.Media) != 2 || v.Media[0].URL != "https://example.com/a.jpg" || v.Media[1].URL != "" || v.Media[1].ContentType != "image/gif" {
		t.Errorf("media shown = %+v, want the https one and the one without a URL", v.Media)
	}
}

// A customer's attachment on the Conversations path is kept by its media
// SID and Chat Service, and fetched from the Media Content Service; a
// Programmable Messaging one by its URL. An entry stored before the SID
// was kept still reads, and is not found rather than fetched from nowhere.
func TestMediaFetchURL(t *testing.T) {
	sess := &store.Session{Conversation: store.Conversation{Path: "conversations", ChatServiceSID: "IS0000000000000000000000000000000a"}}
	conv := storedMedia(&messagingv1.Media{Sid: "ME0000000000000000000000000000000b", Filename: "dent.png", ContentType: "image/png", SizeBytes: 70},
		"IS0000000000000000000000000000000c")
	if conv != (store.Media{SID: "ME0000000000000000000000000000000b", ServiceSID: "IS0000000000000000000000000000000c", Filename: "dent.png", ContentType: "image/png", Size: 70}) {
		t.Errorf("stored %+v", conv)
	}
	pm := storedMedia(&messagingv1.Media{Url: "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", ContentType: "image/jpeg"}, "")
	var old store.Message // a transcript entry written before media SIDs were kept
	if err := json.Unmarshal([]byte(`{"ID":"IM1","Media":[{"url":"","content_type":"image/gif"}]}`), &old); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		md   store.Media
		want string
		err  error
	}{
		{"conversations", conv, "https://mcs.us1.twilio.com/v1/Services/IS0000000000000000000000000000000c/Media/ME0000000000000000000000000000000b", nil},
		{"conversations, the session's service", store.Media{SID: "ME1"}, "https://mcs.us1.twilio.com/v1/Services/IS0000000000000000000000000000000a/Media/ME1", nil},
		{"programmable messaging", pm, pm.URL, nil},
		{"stored before SIDs were kept", old.Media[0], "", ErrNotFound},
		{"a SID that adds a path", store.Media{SID: "ME1/../../x"}, "", ErrConflict},
	} {
		got, err := mediaFetchURL(sess, tt.md)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s: %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}
