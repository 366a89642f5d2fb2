package bus

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/switchboard-cc/switchboard/pkg/telemetry"
)

// The bus's metrics (docs/operate.md, "What to alert on"). Labels are
// bounded: a consumer's durable name, a subject's domain (its first
// token), an outcome.
var (
	meter          = telemetry.NewMeter("github.com/switchboard-cc/switchboard/pkg/bus")
	publishLatency = meter.Seconds("switchboard.bus.publish.duration",
		"Time from a JetStream publish to its PubAck, by the subject's domain and result (ok, error).")
	handled = meter.Counter("switchboard.bus.consumer.messages",
		"Deliveries settled by a consumer, by outcome: ack, retry (redelivered after a backoff), dead_letter.")
	redelivered = meter.Counter("switchboard.bus.consumer.redeliveries",
		"Deliveries that were not a message's first, by consumer.")
	deadLettered = meter.Counter("switchboard.bus.consumer.dead_letters",
		"Messages a consumer gave up on and published to its dead-letter subject.")
	pending = meter.Gauge("switchboard.bus.consumer.pending",
		"Messages of the stream the consumer has yet to deliver (its lag), sampled every LagSampleInterval.")
	ackPending = meter.Gauge("switchboard.bus.consumer.ack_pending",
		"Messages delivered to the consumer and not yet settled, sampled with pending.")
)

// LagSampleInterval is how often a running consumer samples its pending
// counts while metrics are on.
var LagSampleInterval = 15 * time.Second

func domainOf(subject string) string {
	d, _, _ := strings.Cut(subject, ".")
	switch d {
	case "chat", "config", "session", "workflow", "distribution", "outbound", "deadletter", "transcript":
		return d
	}
	return "other"
}

func recordPublish(subject string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	publishLatency.Record(context.Background(), telemetry.Since(start),
		metric.WithAttributes(attribute.String("domain", domainOf(subject)), attribute.String("result", result)))
}

func recordSettled(durable string, m *Message, outcome string) {
	ctx := context.Background()
	c := attribute.String("consumer", durable)
	handled.Add(ctx, 1, metric.WithAttributes(c, attribute.String("outcome", outcome)))
	if m.Delivered > 1 {
		redelivered.Add(ctx, 1, metric.WithAttributes(c))
	}
	if outcome == "dead_letter" {
		deadLettered.Add(ctx, 1, metric.WithAttributes(c))
	}
}

// sampleLag records the consumer's pending counts now and every
// LagSampleInterval until ctx is done, while metrics are on.
func sampleLag(ctx context.Context, cons jetstream.Consumer, durable string) {
	if !telemetry.MetricsEnabled() {
		return
	}
	attrs := metric.WithAttributes(attribute.String("consumer", durable))
	t := time.NewTicker(LagSampleInterval)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			pending.Record(ctx, int64(info.NumPending), attrs)
			ackPending.Record(ctx, int64(info.NumAckPending), attrs)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startCounts shows a consumer's redeliveries and dead letters from zero,
// so rate() and increase() see the first one.
func startCounts(durable string) {
	c := metric.WithAttributes(attribute.String("consumer", durable))
	redelivered.Add(context.Background(), 0, c)
	deadLettered.Add(context.Background(), 0, c)
}

// WatchConsumer gives a consumer that a service runs itself (not through
// Consume) the same metrics: its redeliveries and dead letters from zero,
// and its pending counts sampled until ctx is done.
func WatchConsumer(ctx context.Context, cons jetstream.Consumer, durable string) {
	startCounts(durable)
	go sampleLag(ctx, cons, durable)
}
