package core

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// Twilio's limits on one attachment: WhatsApp 16 MB, MMS 5 MB.
const (
	maxMediaWhatsApp = 16 << 20
	maxMediaMMS      = 5 << 20
)

// Media is one of a message's attachments, as the agent's browser gets it.
type Media struct {
	ContentType string
	Data        []byte
}

// MessageMedia returns attachment n of a customer's message in a chat: to
// the agent the chat is assigned to, or a supervisor of its tenant.
// outbound-sender downloads it from Twilio with the connector's
// credentials; the browser sees neither.
func (c *Core) MessageMedia(ctx context.Context, a Agent, sessionID, messageID string, n int) (*Media, error) {
	var sess *store.Session
	var err error
	if a.Supervisor {
		sess, err = c.tenantSession(ctx, a, sessionID)
	} else {
		sess, err = c.ownSession(ctx, a, sessionID)
	}
	if err != nil {
		return nil, err
	}
	msg, err := c.store.Message(ctx, a.Tenant, sess.ID, messageID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: message %s in session %s", ErrNotFound, messageID, sess.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if n < 0 || n >= len(msg.Media) {
		return nil, fmt.Errorf("%w: message %s has %d attachments", ErrNotFound, messageID, len(msg.Media))
	}
	if c.outbound == nil {
		return nil, fmt.Errorf("%w: outbound-sender is not configured", ErrUnavailable)
	}
	src, err := mediaFetchURL(sess, msg.Media[n])
	if err != nil {
		return nil, err
	}
	max := int64(maxMediaMMS)
	if sess.Conversation.Channel == "whatsapp" {
		max = maxMediaWhatsApp
	}
	res, err := c.outbound.FetchMedia(ctx, &outboundv1.FetchMediaRequest{
		TenantId: sess.Tenant, EntryId: sess.EntryID, Url: src, MaxBytes: max,
	}, grpc.MaxCallRecvMsgSize(maxMediaWhatsApp+(1<<20)))
	switch status.Code(err) {
	case codes.OK:
		return &Media{ContentType: res.GetContentType(), Data: res.GetData()}, nil
	case codes.NotFound:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, status.Convert(err).Message())
	case codes.InvalidArgument, codes.FailedPrecondition:
		// Not a Twilio media URL, too large, or a type agents may not open.
		return nil, fmt.Errorf("%w: %s", ErrConflict, status.Convert(err).Message())
	default:
		return nil, fmt.Errorf("%w: media: %s", ErrUnavailable, status.Convert(err).Message())
	}
}

// MaxAttachmentBytes bounds a file an agent attaches: 5 MB, what Twilio
// takes for a picture on both MMS and WhatsApp (and all of an MMS).
const MaxAttachmentBytes = 5 << 20

// attachmentTypes are the files an agent may send, per channel, on either
// Twilio path: what Twilio delivers on MMS (pictures it shows on every
// phone, PDF and contact cards) and on WhatsApp (JPEG and PNG, PDF, voice
// and video).
var attachmentTypes = map[string][]string{
	"sms":      {"image/jpeg", "image/png", "image/gif", "application/pdf", "text/vcard"},
	"whatsapp": {"image/jpeg", "image/png", "application/pdf", "audio/ogg", "audio/mpeg", "audio/amr", "audio/mp4", "video/mp4"},
}

// sniffed are the types whose content is checked against the declared
// type (http.DetectContentType knows them): a file is what it says.
var sniffed = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "application/pdf": true}

// SetPublicURL sets the address Twilio fetches agents' attachments from
// (PUBLIC_URL, ending in "/"); empty: attachments are refused.
func (c *Core) SetPublicURL(u string) {
	if u != "" && !strings.HasSuffix(u, "/") {
		u += "/"
	}
	c.publicURL = u
}

// AttachmentURL is where Twilio fetches an attachment.
func (c *Core) AttachmentURL(id string) string { return c.publicURL + "media/" + id }

// Attach stores a file the agent will send in their chat and returns it
// (its id goes in message.send's media_ids).
func (c *Core) Attach(ctx context.Context, a Agent, sessionID, contentType, filename string, data []byte) (*store.Attachment, error) {
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return nil, err
	}
	if err := c.attachable(sess); err != nil {
		return nil, err
	}
	ct, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("%w: Content-Type %q is not a media type", ErrInvalid, contentType)
	}
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("%w: the file is empty", ErrInvalid)
	case len(data) > MaxAttachmentBytes:
		return nil, fmt.Errorf("%w: the file has %d bytes, at most %d (5 MB) can be sent", ErrInvalid, len(data), MaxAttachmentBytes)
	case !slices.Contains(attachmentTypes[sess.Conversation.Channel], ct):
		return nil, fmt.Errorf("%w: %s cannot be sent on %s; these can: %s", ErrInvalid, ct, sess.Conversation.Channel, strings.Join(attachmentTypes[sess.Conversation.Channel], ", "))
	case sniffed[ct] && !strings.HasPrefix(http.DetectContentType(data), ct):
		return nil, fmt.Errorf("%w: the file is not %s (its content reads as %s)", ErrInvalid, ct, http.DetectContentType(data))
	case len(filename) > 200 || !utf8.ValidString(filename):
		return nil, fmt.Errorf("%w: the file name must be valid UTF-8 of at most 200 bytes", ErrInvalid)
	}
	at := &store.Attachment{ID: store.NewAttachmentID(), Tenant: a.Tenant, SessionID: sess.ID, AgentID: a.ID,
		ContentType: ct, Filename: filename, Data: data, At: c.now()}
	if err := c.store.PutAttachment(ctx, at); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return at, nil
}

// attachable refuses attachments where they cannot be sent. A chat on
// Twilio Conversations takes them too: outbound-sender fetches each file
// from its URL and uploads it to Twilio's Media Content Service.
func (c *Core) attachable(sess *store.Session) error {
	switch {
	case c.publicURL == "":
		return fmt.Errorf("%w: attachments are off: sessions has no PUBLIC_URL Twilio could fetch them from", ErrConflict)
	case attachmentTypes[sess.Conversation.Channel] == nil:
		return fmt.Errorf("%w: attachments are sent on SMS and WhatsApp chats; this chat is %s", ErrConflict, sess.Conversation.Channel)
	}
	return nil
}

// maxAttachments is how many files one reply in the chat carries: one on
// WhatsApp, and on Twilio Conversations (a message names one uploaded
// media, MediaSid); ten on MMS.
func maxAttachments(sess *store.Session) int {
	if sess.Conversation.Channel == "whatsapp" || sess.Conversation.Path == "conversations" {
		return 1
	}
	return 10
}

// attachmentURLs checks the attachments a reply names (the agent's own,
// uploaded in this chat) and returns the URLs Twilio fetches them from.
func (c *Core) attachmentURLs(ctx context.Context, a Agent, sess *store.Session, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := c.attachable(sess); err != nil {
		return nil, err
	}
	if max := maxAttachments(sess); len(ids) > max {
		kind := sess.Conversation.Channel
		if sess.Conversation.Path == "conversations" {
			kind += " (Twilio Conversations)"
		}
		return nil, fmt.Errorf("%w: %d attachments; a %s message takes at most %d", ErrInvalid, len(ids), kind, max)
	}
	urls := make([]string, 0, len(ids))
	for _, id := range ids {
		at, err := c.store.Attachment(ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (at.Tenant != a.Tenant || at.SessionID != sess.ID)) {
			return nil, fmt.Errorf("%w: attachment %q was not uploaded in this chat", ErrInvalid, id)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		urls = append(urls, c.AttachmentURL(id))
	}
	return urls, nil
}

// PublicAttachment is an attachment as Twilio fetches it, by its id.
func (c *Core) PublicAttachment(ctx context.Context, id string) (*store.Attachment, error) {
	if !strings.HasPrefix(id, "at_") || len(id) != 35 {
		return nil, fmt.Errorf("%w: attachment", ErrNotFound)
	}
	at, err := c.store.Attachment(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: attachment", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return at, nil
}
