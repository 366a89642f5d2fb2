package core

import (
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/mediaurl"
)

// SafeMediaURL reports whether a media URL may be stored and handed to an
// agent's console: an absolute http or https URL with a host and no
// credentials, in printable ASCII. chat-handler already takes only https
// (http for the emulator); this is the same rule at the store and at
// rendering, so a javascript: or data: URL from any producer, or stored
// before chat-handler checked, never reaches a browser.
func SafeMediaURL(raw string) bool { return mediaurl.Valid(raw, true) }

// safeMedia keeps the media items whose URL is safe; items without a URL
// (a Conversations media SID) are kept as they are.
func safeMedia(in []*messagingv1.Media) []*messagingv1.Media {
	out := make([]*messagingv1.Media, 0, len(in))
	for _, m := range in {
		if m.GetUrl() == "" || SafeMediaURL(m.GetUrl()) {
			out = append(out, m)
		}
	}
	return out
}
