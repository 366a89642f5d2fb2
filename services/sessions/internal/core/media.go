package core

import (
	"fmt"
	"regexp"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/mediaurl"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
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

// storedMedia is a customer's attachment as the transcript keeps it: a
// Programmable Messaging one by its URL; a Conversations one (no URL) by
// its media SID, with the Chat Service it was uploaded to (chatService,
// the message's conversation's), its file name and size.
func storedMedia(md *messagingv1.Media, chatService string) store.Media {
	m := store.Media{URL: md.GetUrl(), ContentType: md.GetContentType()}
	if m.URL == "" {
		m.SID, m.ServiceSID, m.Filename, m.Size = md.GetSid(), chatService, md.GetFilename(), md.GetSizeBytes()
	}
	return m
}

// MCSOrigin is where Twilio's Media Content Service serves a Chat
// Service's media (the host Twilio documents; outbound-sender sends it to
// the emulator in development and tests, as every Twilio host).
const MCSOrigin = "https://mcs.us1.twilio.com"

// Media and Chat Service SIDs: a prefix and letters or digits, so a SID
// from a webhook can never add a path segment to the URL built from it.
var (
	mediaSIDRe   = regexp.MustCompile(`^ME[0-9A-Za-z]{1,64}$`)
	serviceSIDRe = regexp.MustCompile(`^IS[0-9A-Za-z]{1,64}$`)
)

// mediaFetchURL is the URL outbound-sender downloads a transcript's
// attachment from: the URL a Programmable Messaging webhook gave, or for a
// Conversations media item its Media Content Service resource,
// MCSOrigin/v1/Services/<IS…>/Media/<ME…> (the item's Chat Service, or the
// session's conversation's for an item stored without it). An item with
// neither (stored before the SID was kept) cannot be fetched: ErrNotFound.
func mediaFetchURL(sess *store.Session, md store.Media) (string, error) {
	if md.URL != "" {
		return md.URL, nil
	}
	svc := md.ServiceSID
	if svc == "" {
		svc = sess.Conversation.ChatServiceSID
	}
	switch {
	case md.SID == "":
		return "", fmt.Errorf("%w: the attachment was recorded without its Twilio media SID and cannot be fetched", ErrNotFound)
	case !mediaSIDRe.MatchString(md.SID):
		return "", fmt.Errorf("%w: %q is not a Twilio media SID", ErrConflict, md.SID)
	case !serviceSIDRe.MatchString(svc):
		return "", fmt.Errorf("%w: the chat has no Twilio Conversations service (%q) to fetch media %s from", ErrConflict, svc, md.SID)
	}
	return MCSOrigin + "/v1/Services/" + svc + "/Media/" + md.SID, nil
}
