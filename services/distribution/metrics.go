package distribution

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/pkg/telemetry"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

var (
	meter   = telemetry.NewMeter("github.com/switchboard-cc/switchboard/services/distribution")
	offers  = meter.Counter("switchboard.distribution.offers", "Tasks offered to an agent.")
	accepts = meter.Counter("switchboard.distribution.accepts", "Offers accepted by their agent.")
	ronas   = meter.Counter("switchboard.distribution.ronas", "Offers that timed out unanswered (redirection on no answer).")
	events  = meter.Counter("switchboard.distribution.events",
		"Task events distribution published, by kind (distribution.task.queued, …).")
	waiting = meter.Gauge("switchboard.distribution.queue.waiting",
		"Tasks waiting in a service's queue (tenant and service ids: one series per configured service), sampled every 5 s by the replica holding the tenant.")
	longestWait = meter.FloatGauge("switchboard.distribution.queue.longest_wait",
		"How long the oldest task of a service's queue has waited, sampled with waiting.", "s")
)

// countingPublisher counts the engine's offers, accepts and RONAs as it
// publishes them.
type countingPublisher struct{ engine.Publisher }

func (p countingPublisher) Emit(ctx context.Context, subject string, event proto.Message, msgID string) error {
	if err := p.Publisher.Emit(ctx, subject, event, msgID); err != nil {
		return err
	}
	count(ctx, subject)
	return nil
}

// EmitAsync counts once the event is acknowledged.
func (p countingPublisher) EmitAsync(ctx context.Context, subject string, event proto.Message, msgID string) (func(context.Context) error, error) {
	ap, ok := p.Publisher.(engine.AsyncPublisher)
	if !ok {
		err := p.Emit(ctx, subject, event, msgID)
		return func(context.Context) error { return err }, nil
	}
	wait, err := ap.EmitAsync(ctx, subject, event, msgID)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		if err := wait(ctx); err != nil {
			return err
		}
		count(ctx, subject)
		return nil
	}, nil
}

func count(ctx context.Context, subject string) {
	s, perr := subjects.Parse(subject)
	if perr != nil {
		return
	}
	switch s.Kind() {
	case subjects.KindTaskOffered:
		offers.Add(ctx, 1)
	case subjects.KindTaskAccepted:
		accepts.Add(ctx, 1)
	case subjects.KindTaskOfferTimedOut:
		ronas.Add(ctx, 1)
	}
	events.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", s.Kind())))
}

// sampleQueues records every owned queue's depth and longest wait.
func sampleQueues(eng *engine.Engine) {
	if !telemetry.MetricsEnabled() {
		return
	}
	ctx := context.Background()
	for _, q := range eng.QueueSamples() {
		attrs := metric.WithAttributes(attribute.String("tenant", q.Tenant), attribute.String("service", q.Service))
		waiting.Record(ctx, int64(q.Waiting), attrs)
		longestWait.Record(ctx, q.LongestWait.Seconds(), attrs)
	}
}
