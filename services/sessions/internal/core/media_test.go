package core

import (
	"testing"

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
