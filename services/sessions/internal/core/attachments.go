package core

import (
	"context"
	"errors"
	"fmt"

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
	max := int64(maxMediaMMS)
	if sess.Conversation.Channel == "whatsapp" {
		max = maxMediaWhatsApp
	}
	res, err := c.outbound.FetchMedia(ctx, &outboundv1.FetchMediaRequest{
		TenantId: sess.Tenant, EntryId: sess.EntryID, Url: msg.Media[n].URL, MaxBytes: max,
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
