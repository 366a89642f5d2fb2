package sender

import (
	"context"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/outbound-sender/internal/twilioapi"
)

var (
	meter    = telemetry.NewMeter("github.com/switchboard-cc/switchboard/services/outbound-sender/internal/sender")
	outcomes = meter.Counter("switchboard.outbound.messages",
		"Outbound messages decided, by outcome (sent, failed), reason (none, twilio, opted_out, whatsapp_window_closed, no_credentials, retries_exhausted, invalid_request, …) and Twilio error code (0 when none).")
	twilioCalls = meter.Counter("switchboard.outbound.twilio.calls",
		"Calls to Twilio's send API, by result (accepted, final, retry, ambiguous) and Twilio error code (0 when none).")
	twilioLatency = meter.Seconds("switchboard.outbound.twilio.duration",
		"Time of a call to Twilio's send API, by result.")
)

func recordCall(start time.Time, err error) {
	result, code := "accepted", 0
	if err != nil {
		te, ok := twilioapi.IsError(err)
		if !ok {
			te = &twilioapi.Error{Class: twilioapi.Ambiguous}
		}
		code = te.Code
		switch te.Class {
		case twilioapi.Final:
			result = "final"
		case twilioapi.Ambiguous:
			result = "ambiguous"
		default:
			result = "retry"
		}
	}
	ctx := context.Background()
	r := attribute.String("result", result)
	twilioCalls.Add(ctx, 1, metric.WithAttributes(r, attribute.String("code", strconv.Itoa(code))))
	twilioLatency.Record(ctx, telemetry.Since(start), metric.WithAttributes(r))
}

func recordOutcome(sent bool, code int32, reason outboundv1.FailureReason) {
	outcome, why := "sent", "none"
	if !sent {
		outcome = "failed"
		why = strings.ToLower(strings.TrimPrefix(reason.String(), "FAILURE_REASON_"))
	}
	outcomes.Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", outcome),
		attribute.String("reason", why), attribute.String("code", strconv.Itoa(int(code)))))
}
