package webhook

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/switchboard-cc/switchboard/pkg/telemetry"
)

var (
	meter    = telemetry.NewMeter("github.com/switchboard-cc/switchboard/services/chat-handler/internal/webhook")
	webhooks = meter.Counter("switchboard.webhook.requests",
		"Twilio webhooks answered, by endpoint (conversations, inbound, fallback, status), result (accepted, rejected) and reason "+
			"(none, malformed, too_large, unsupported_media_type, unauthenticated, account_mismatch, channel_disabled, routing_unavailable, publish_failed).")
	webhookLatency = meter.Seconds("switchboard.webhook.duration",
		"Time to answer a Twilio webhook (for an accepted one, until its event is stored in JetStream), by endpoint and result.")
)

func (e endpoint) String() string {
	switch e {
	case epConversations:
		return "conversations"
	case epInbound:
		return "inbound"
	case epFallback:
		return "fallback"
	case epStatus:
		return "status"
	}
	return "other"
}

// reasonLabel is the rejection's bounded reason.
func (rj *rejection) reasonLabel() string {
	if rj.metric != "" {
		return rj.metric
	}
	switch rj.status {
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusBadRequest:
		return "malformed"
	case http.StatusServiceUnavailable:
		return "publish_failed"
	case http.StatusForbidden:
		return "unauthenticated"
	}
	return "other"
}

func recordWebhook(ep endpoint, start time.Time, rj *rejection) {
	result, reason := "accepted", "none"
	if rj != nil {
		result, reason = "rejected", rj.reasonLabel()
	}
	epA, resA := attribute.String("endpoint", ep.String()), attribute.String("result", result)
	ctx := context.Background()
	webhooks.Add(ctx, 1, metric.WithAttributes(epA, resA, attribute.String("reason", reason)))
	webhookLatency.Record(ctx, telemetry.Since(start), metric.WithAttributes(epA, resA))
}
