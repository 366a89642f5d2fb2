// Package bus is Switchboard's JetStream layer: connecting, creating streams,
// publishing protobuf events with a dedupe id and trace context, and one
// consume helper with the handler contract every service uses:
//
//   - the handler returns nil: the message is acked;
//   - it returns an error wrapped by Permanent: the message goes to the
//     dead-letter subject with the reason and is terminated;
//   - any other error: the message is redelivered after a jittered
//     exponential backoff, and dead-lettered after MaxDeliver attempts,
//     unless the error is an outage (IsTransient), which is retried
//     until the message is TransientFor old.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Header names Switchboard sets on every event.
const (
	HeaderType             = "Sb-Type"
	HeaderOriginalSubject  = "Sb-Original-Subject"
	HeaderOriginalSequence = "Sb-Original-Sequence"
	HeaderDeadLetterReason = "Sb-Dead-Letter-Reason"
	HeaderConsumer         = "Sb-Consumer"
	HeaderDeliveries       = "Sb-Deliveries"
)

// Bus wraps a NATS connection and its JetStream context.
type Bus struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	log *slog.Logger

	tp         trace.TracerProvider
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

// Option configures a Bus.
type Option func(*Bus)

// WithTracerProvider sets where spans go; the default is the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(b *Bus) { b.tp, b.tracer = tp, tp.Tracer(tracerName) }
}

const tracerName = "github.com/switchboard-cc/switchboard/pkg/bus"

// TracerProvider is where the bus's spans go. A service starts its own
// spans (HTTP handlers, websocket frames, workflow steps, calls to Twilio)
// from it too, so that one provider given to the bus collects all of a
// service's spans (devstack gives each service its own).
func (b *Bus) TracerProvider() trace.TracerProvider { return b.tp }

// Propagator is the trace context format of event headers (W3C
// traceparent), for services that carry trace context elsewhere (core
// NATS frames, a session's record, a callback URL).
func (b *Bus) Propagator() propagation.TextMapPropagator { return b.propagator }

// New wraps an existing connection.
func New(nc *nats.Conn, log *slog.Logger, opts ...Option) (*Bus, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b := &Bus{
		NC:         nc,
		JS:         js,
		log:        log,
		tp:         otel.GetTracerProvider(),
		tracer:     otel.GetTracerProvider().Tracer(tracerName),
		propagator: propagation.TraceContext{},
	}
	for _, o := range opts {
		o(b)
	}
	return b, nil
}

// Connect dials NATS anonymously (tests, benchmarks and unsecured
// development servers) and keeps reconnecting for as long as the process runs.
func Connect(url, name string, log *slog.Logger, opts ...Option) (*Bus, error) {
	return ConnectAuth(url, name, Auth{}, log, opts...)
}

// ConnectAuth dials NATS with auth's credentials and TLS settings and keeps
// reconnecting for as long as the process runs.
func ConnectAuth(url, name string, auth Auth, log *slog.Logger, opts ...Option) (*Bus, error) {
	authOpts, err := auth.options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		// Asynchronous errors, such as a permission the server refused.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("nats error", "subject", subject, "err", err)
		}),
	}, authOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s (auth %s): %w", redact(url), auth.Method(), err)
	}
	b, err := New(nc, log, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// Close drains the connection.
func (b *Bus) Close() {
	if b.NC != nil && !b.NC.IsClosed() {
		_ = b.NC.Drain()
	}
}

// EnsureStreams creates or updates the named streams (all when none named).
// While JetStream cannot answer yet (a cluster electing its meta leader, a
// server still starting), each try gives up after 5 s and it tries again
// (Await), so a service started beside its broker waits for it instead of
// exiting. Any other refusal (a stream's configuration the server will not
// take) fails at once.
func (b *Bus) EnsureStreams(ctx context.Context, o subjects.StreamOptions, names ...string) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for _, sc := range subjects.Streams(o) {
		if len(want) > 0 && !want[sc.Name] {
			continue
		}
		err := b.Await(ctx, "ensure stream "+sc.Name, func(ctx context.Context) error {
			actx, cancel := context.WithTimeout(ctx, ensureTryFor)
			defer cancel()
			_, err := b.JS.CreateOrUpdateStream(actx, sc)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Await runs a start-up step (creating a stream, a bucket, a consumer
// group: anything safe to do twice) until it succeeds. While JetStream
// cannot answer yet it logs "JetStream not ready, trying again" with the
// step and the server's answer and tries again, waiting 100 ms, then
// twice as long each time up to EnsureRetryMax, until ctx ends. Any other
// error fails at once. Errors name the step.
func (b *Bus) Await(ctx context.Context, step string, fn func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if !jetStreamNotReady(err) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		b.log.Warn("JetStream not ready, trying again", "step", step, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (JetStream was not ready: %w)", step, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, EnsureRetryMax)
	}
}

// EnsureRetryMax is the longest Await waits between two tries.
const EnsureRetryMax = 5 * time.Second

// ensureTryFor bounds one try (JetStream's own default for a request
// without a deadline), so a caller's long deadline does not become one
// silent wait for a server that cannot answer.
const ensureTryFor = 5 * time.Second

// jetStreamNotReady reports whether err says JetStream cannot answer yet
// rather than refusing the request: no answer in time, nobody listening,
// JetStream not (yet) enabled, or the cluster unavailable (503).
func jetStreamNotReady(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code == 503 {
		return true
	}
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || IsTransient(err)
}

// PublishOption tunes one publish.
type PublishOption func(*nats.Msg, *[]jetstream.PublishOpt)

// MsgID sets Nats-Msg-Id so JetStream drops a second publish of the same
// event within the stream's dedupe window.
func MsgID(id string) PublishOption {
	return func(_ *nats.Msg, o *[]jetstream.PublishOpt) { *o = append(*o, jetstream.WithMsgID(id)) }
}

// Header adds a header.
func Header(key, value string) PublishOption {
	return func(m *nats.Msg, _ *[]jetstream.PublishOpt) { m.Header.Set(key, value) }
}

// Publish marshals an event, adds trace context, and waits for the PubAck.
func (b *Bus) Publish(ctx context.Context, subject string, event proto.Message, opts ...PublishOption) (*jetstream.PubAck, error) {
	data, err := proto.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", event.ProtoReflect().Descriptor().FullName(), err)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HeaderType, string(event.ProtoReflect().Descriptor().FullName()))
	var popts []jetstream.PublishOpt
	for _, o := range opts {
		o(m, &popts)
	}
	b.propagator.Inject(ctx, HeaderCarrier(m.Header))
	start := time.Now()
	ack, err := b.JS.PublishMsg(ctx, m, popts...)
	recordPublish(subject, start, err)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return ack, nil
}

// HeaderCarrier adapts NATS headers to OpenTelemetry propagation without
// changing the case of keys (NATS headers are case-sensitive).
type HeaderCarrier nats.Header

func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// permanentError marks an error that redelivery cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the message is dead-lettered, not retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Permanentf is Permanent(fmt.Errorf(...)).
func Permanentf(format string, args ...any) error { return Permanent(fmt.Errorf(format, args...)) }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

var errAckTimeout = errors.New("no acknowledgement")

// asyncAckTimeout bounds the wait for an asynchronous publish's PubAck.
const asyncAckTimeout = 10 * time.Second

// EmitAsync publishes like Emit without waiting for the PubAck, so several
// publishes are stored together; the returned wait blocks until this one
// is acknowledged (or fails, or ctx ends). Publishes from one goroutine
// reach the server in call order. A caller must wait before it treats
// the event as durable.
func (b *Bus) EmitAsync(ctx context.Context, subject string, event proto.Message, msgID string) (wait func(context.Context) error, _ error) {
	data, err := proto.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", event.ProtoReflect().Descriptor().FullName(), err)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HeaderType, string(event.ProtoReflect().Descriptor().FullName()))
	b.propagator.Inject(ctx, HeaderCarrier(m.Header))
	start := time.Now()
	f, err := b.JS.PublishMsgAsync(m, jetstream.WithMsgID(msgID))
	if err != nil {
		recordPublish(subject, start, err)
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return func(ctx context.Context) error {
		t := time.NewTimer(asyncAckTimeout)
		defer t.Stop()
		select {
		case <-f.Ok():
			recordPublish(subject, start, nil)
			return nil
		case err := <-f.Err():
			recordPublish(subject, start, err)
			return fmt.Errorf("publish %s: %w", subject, err)
		case <-t.C:
			recordPublish(subject, start, errAckTimeout)
			return fmt.Errorf("publish %s: no acknowledgement within %s", subject, asyncAckTimeout)
		case <-ctx.Done():
			return fmt.Errorf("publish %s: %w", subject, ctx.Err())
		}
	}, nil
}

// Emit publishes event with msgID as its dedupe id and reports only the
// error: the shape domain packages declare as their publisher interface.
func (b *Bus) Emit(ctx context.Context, subject string, event proto.Message, msgID string) error {
	_, err := b.Publish(ctx, subject, event, MsgID(msgID))
	return err
}
