package sender

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/attachment"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
)

// withMedia readies a prepared job's media and returns the job for the
// call. On the Conversations path, which takes uploaded media and not
// URLs, each file the request names by URL is downloaded (the sessions
// service's PUBLIC_URL/media/<id>, at most the channel's limit) and
// uploaded to the Media Content Service of the conversation's service; the
// message then names it by MediaSid.
//
// This runs after the ledger holds the attempt and, on a redelivery, after
// the lookup found no message at Twilio: the upload creates no message, so
// a retry that uploads again leaves at most an unused copy at Twilio, and
// the message itself is created only by the call, which is looked up
// before it is ever made again. It runs in the concurrent stage, so a
// large file holds up no other message of the lane.
//
// A file that is gone (404), too large or not fetchable at all fails the
// request (invalid_request), as does Twilio refusing the upload (its
// code); a server or network failure is retried (the request is
// redelivered). A nil job means the request was settled.
func (s *Sender) withMedia(ctx context.Context, j *job) (*job, error) {
	urls := j.req.GetMediaUrls()
	if !j.msg.Conversations || len(urls) == 0 {
		return j, nil
	}
	max := int64(attachment.MaxMMS)
	if j.req.GetConversation().GetChannel() == messagingv1.Channel_CHANNEL_WHATSAPP {
		max = attachment.MaxWhatsApp
	}
	calls := j.attempts - 1 // the message calls made before this attempt
	sids := make([]string, 0, len(urls))
	for _, u := range urls {
		sid, err := s.uploadAttachment(ctx, j, u, max)
		if err == nil {
			sids = append(sids, sid)
			continue
		}
		if ae, ok := attachment.IsError(err); ok && ae.Permanent {
			return nil, s.fail(ctx, j.req, true, 0, ae.Error(), outboundv1.FailureReason_FAILURE_REASON_INVALID_REQUEST, calls)
		}
		if te, ok := twilioapi.IsError(err); ok && te.Class == twilioapi.Final {
			return nil, s.fail(ctx, j.req, true, int32(te.Code), "Twilio refused the attachment's upload: "+twilioapi.Describe(te.Code, te.Message),
				outboundv1.FailureReason_FAILURE_REASON_TWILIO, calls)
		}
		return nil, err
	}
	j.msg.MediaSIDs = sids
	return j, nil
}

// uploadAttachment fetches one file and uploads it to the Media Content
// Service, retrying 429s and 5xx of the upload in process as a send is
// retried. It returns the media's SID.
func (s *Sender) uploadAttachment(ctx context.Context, j *job, url string, max int64) (string, error) {
	select {
	case s.media <- struct{}{}:
	case <-s.stop:
		return "", errStopping
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.media }()
	ctx, span := s.tracer.Start(ctx, "twilio upload media", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("sb.request_id", j.req.GetRequestId())))
	defer span.End()
	f, err := s.d.Attachments.Fetch(ctx, url, max)
	if err != nil {
		span.SetStatus(otelcodes.Error, "the attachment could not be fetched")
		return "", err
	}
	span.SetAttributes(attribute.Int("sb.media.size", len(f.Data)), attribute.String("sb.media.content_type", f.ContentType))
	chatService := j.req.GetConversation().GetChatServiceSid()
	for try := 1; ; try++ {
		s.calls <- struct{}{}
		sid, err := s.d.Twilio.UploadMedia(j.tc, chatService, twilioapi.File{ContentType: f.ContentType, Data: f.Data})
		<-s.calls
		if err == nil {
			return sid, nil
		}
		te, ok := twilioapi.IsError(err)
		if ok {
			span.SetAttributes(attribute.Int("twilio.error_code", te.Code), attribute.String("twilio.error_class", te.Class.String()))
		}
		if (ok && te.Class == twilioapi.Final) || try > s.opts.Retries {
			span.SetStatus(otelcodes.Error, "twilio refused or failed the upload")
			return "", fmt.Errorf("upload the attachment of %q to %s: %w", j.req.GetRequestId(), chatService, err)
		}
		s.log.DebugContext(ctx, "media upload failed; retrying", "request_id", j.req.GetRequestId(), "try", try, "error", err)
		if err := s.sleepUntil(ctx, s.opts.Now().Add(s.backoff(try))); err != nil {
			return "", err
		}
	}
}
