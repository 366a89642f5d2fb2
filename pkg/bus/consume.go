package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Message is one delivery handed to a Handler.
type Message struct {
	Subject string
	Data    []byte
	Header  nats.Header
	// Delivered counts deliveries of this message, starting at 1.
	Delivered uint64
	// Sequence is the message's stream sequence; Stored when the stream
	// stored it.
	Sequence uint64
	Stored   time.Time
}

// Kind is the subject's kind ("chat.message.received"), or "" if the subject
// does not follow the naming scheme.
func (m *Message) Kind() string {
	s, err := subjects.Parse(m.Subject)
	if err != nil {
		return ""
	}
	return s.Kind()
}

// Tenant is the subject's tenant token.
func (m *Message) Tenant() string {
	s, err := subjects.Parse(m.Subject)
	if err != nil {
		return ""
	}
	return s.Tenant
}

// Decode unmarshals the payload; a payload that does not decode is permanent.
func (m *Message) Decode(dst proto.Message) error {
	if err := proto.Unmarshal(m.Data, dst); err != nil {
		return Permanentf("decode %s as %s: %w", m.Subject, dst.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

// Handler processes one message. See the package comment for the contract.
type Handler func(ctx context.Context, m *Message) error

// ConsumerSpec describes a durable consumer.
type ConsumerSpec struct {
	Stream  string
	Durable string
	// FilterSubjects; empty means the whole stream.
	FilterSubjects []string
	// MaxDeliver attempts before dead-lettering; zero means 8. A message
	// failing only transiently (IsTransient: a dependency is down) is
	// retried past it until it is TransientFor old: an outage longer than
	// the backoff's few minutes must not turn every message into a dead
	// letter.
	MaxDeliver int
	// TransientFor: zero means DefaultTransientFor.
	TransientFor time.Duration
	// AckWait before JetStream redelivers an unacknowledged message; zero
	// means 30s. Long handlers are kept alive with in-progress acks.
	AckWait time.Duration
	// MaxAckPending bounds messages delivered and not yet settled; zero
	// means 1000.
	MaxAckPending int
	// Backoff returns the redelivery delay after the n-th failed delivery;
	// nil means jittered exponential from 250ms up to 30s.
	Backoff func(delivered uint64) time.Duration
	// DeliverNew starts a new consumer at the end of the stream instead of
	// its beginning.
	DeliverNew bool
}

// WithDefaults returns the spec with every zero field set to its default.
func (s ConsumerSpec) WithDefaults() ConsumerSpec {
	if s.MaxDeliver <= 0 {
		s.MaxDeliver = 8
	}
	if s.AckWait <= 0 {
		s.AckWait = 30 * time.Second
	}
	if s.MaxAckPending <= 0 {
		s.MaxAckPending = 1000
	}
	if s.Backoff == nil {
		s.Backoff = DefaultBackoff
	}
	if s.TransientFor <= 0 {
		s.TransientFor = DefaultTransientFor
	}
	return s
}

// GivesUp reports whether a delivery that failed with herr is the last:
// herr is Permanent, or MaxDeliver deliveries are used up and herr is not
// a transient failure of a message younger than TransientFor.
func (s ConsumerSpec) GivesUp(m *Message, herr error) bool {
	s = s.WithDefaults()
	if IsPermanent(herr) {
		return true
	}
	if int(m.Delivered) < s.MaxDeliver {
		return false
	}
	return !IsTransient(herr) || m.Stored.IsZero() || time.Since(m.Stored) >= s.TransientFor
}

// Config is the JetStream configuration of the durable consumer the spec
// describes (defaults applied): explicit acks, the spec's ack wait and
// pending limit, from the start of the stream unless DeliverNew. The
// server redelivers without limit: Settle decides when a message has had
// its deliveries (GivesUp), so a transient failure may go past MaxDeliver.
func (s ConsumerSpec) Config() jetstream.ConsumerConfig {
	s = s.WithDefaults()
	cfg := jetstream.ConsumerConfig{
		Durable:       s.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: s.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if s.DeliverNew {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	switch len(s.FilterSubjects) {
	case 0:
	case 1:
		cfg.FilterSubject = s.FilterSubjects[0]
	default:
		cfg.FilterSubjects = s.FilterSubjects
	}
	return cfg
}

// DefaultBackoff is full-jitter exponential backoff: a random delay up to
// 250ms·2^(n-1), capped at 30s.
func DefaultBackoff(delivered uint64) time.Duration {
	n := min(delivered, 8)
	ceiling := min(250*time.Millisecond<<(n-1), 30*time.Second)
	return ceiling/2 + rand.N(ceiling/2+1)
}

// Consume runs a durable consumer until ctx is done, then drains it: the
// message in hand finishes, nothing more is fetched.
func (b *Bus) Consume(ctx context.Context, spec ConsumerSpec, h Handler) error {
	spec = spec.WithDefaults()
	return b.consumeUntilDone(ctx, spec, func(msg jetstream.Msg) { b.handle(ctx, spec, h, msg) })
}

// consumeUntilDone creates the durable consumer, feeds each delivery to
// deliver until ctx is done, then drains: nothing more is fetched and the
// delivery in hand finishes (for up to 10 s).
func (b *Bus) consumeUntilDone(ctx context.Context, spec ConsumerSpec, deliver jetstream.MessageHandler) error {
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config())
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("consumer %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	cc, err := cons.Consume(deliver,
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
				b.log.Debug("consume", "consumer", spec.Durable, "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", spec.Durable, err)
	}
	WatchConsumer(ctx, cons, spec.Durable)
	<-ctx.Done()
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(10 * time.Second):
		cc.Stop()
	}
	return nil
}

// Received turns a JetStream delivery into the Message handlers see. A
// delivery without metadata (not from a JetStream consumer) is an error;
// the caller naks it.
func Received(msg jetstream.Msg) (*Message, error) {
	md, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("message metadata: %w", err)
	}
	m := &Message{Subject: msg.Subject(), Data: msg.Data(), Header: msg.Headers(), Delivered: md.NumDelivered, Sequence: md.Sequence.Stream, Stored: md.Timestamp}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	return m, nil
}

// StartSpan starts the consumer span of one delivery, continuing the trace
// the publisher put in the headers. The context does not end with ctx:
// shutdown's cancel lets the message in hand finish.
func (b *Bus) StartSpan(ctx context.Context, durable string, m *Message) (context.Context, trace.Span) {
	hctx := b.propagator.Extract(context.WithoutCancel(ctx), HeaderCarrier(m.Header))
	return b.tracer.Start(hctx, "consume "+m.Kind(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", m.Subject),
			attribute.String("messaging.consumer.group.name", durable),
			attribute.Int64("messaging.message.delivery_count", int64(m.Delivered)),
		))
}

func (b *Bus) handle(ctx context.Context, spec ConsumerSpec, h Handler, msg jetstream.Msg) {
	m, err := Received(msg)
	if err != nil {
		b.log.ErrorContext(ctx, "message metadata", "consumer", spec.Durable, "err", err)
		_ = msg.Nak()
		return
	}
	hctx, span := b.StartSpan(ctx, spec.Durable, m)
	defer span.End()

	stopKeepAlive := KeepAlive(msg, spec.AckWait)
	herr := Guard(func() error { return h(hctx, m) })
	stopKeepAlive()
	b.Settle(hctx, spec, msg, m, herr)
}

// Settle applies the handler contract to one delivery once its handler
// has returned herr: nil acks; an error marked Permanent, or an error on
// the last delivery MaxDeliver allows (GivesUp: a transient one goes on
// for TransientFor), publishes the message to the
// consumer's dead-letter subject and terminates it (if that publish fails
// the message is redelivered instead); any other error redelivers after
// spec.Backoff. An error is recorded on the span in ctx.
func (b *Bus) Settle(ctx context.Context, spec ConsumerSpec, msg jetstream.Msg, m *Message, herr error) {
	spec = spec.WithDefaults()
	if herr != nil {
		trace.SpanFromContext(ctx).SetStatus(codes.Error, herr.Error())
	}
	switch {
	case herr == nil:
		if err := msg.Ack(); err != nil {
			b.log.WarnContext(ctx, "ack", "consumer", spec.Durable, "subject", m.Subject, "err", err)
		}
		recordSettled(spec.Durable, m, "ack")
	case spec.GivesUp(m, herr):
		if err := b.DeadLetter(ctx, spec.Durable, m, herr); err != nil {
			b.log.ErrorContext(ctx, "dead-letter publish; will redeliver", "consumer", spec.Durable, "subject", m.Subject, "err", err)
			_ = msg.NakWithDelay(spec.Backoff(m.Delivered))
			recordSettled(spec.Durable, m, "retry")
			return
		}
		recordSettled(spec.Durable, m, "dead_letter")
		b.log.ErrorContext(ctx, "message dead-lettered", "consumer", spec.Durable, "subject", m.Subject, "seq", m.Sequence, "deliveries", m.Delivered, "err", herr)
		_ = msg.Term()
	default:
		delay := spec.Backoff(m.Delivered)
		b.log.WarnContext(ctx, "handler failed; redelivering", "consumer", spec.Durable, "subject", m.Subject, "deliveries", m.Delivered, "delay", delay, "err", herr)
		_ = msg.NakWithDelay(delay)
		recordSettled(spec.Durable, m, "retry")
	}
}

// Guard calls f and turns a panic into an error (not Permanent: the
// message is redelivered, and dead-lettered after MaxDeliver).
func Guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return f()
}

// KeepAlive sends in-progress acks for msg every half ack wait until stop
// is called, so JetStream does not redeliver a message still being worked
// on (or waiting its turn). Most handlers finish long before: a timer costs
// nothing until it fires.
func KeepAlive(msg jetstream.Msg, ackWait time.Duration) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	var tick func()
	tick = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t = time.AfterFunc(ackWait/2, tick)
	}
	mu.Lock()
	t = time.AfterFunc(ackWait/2, tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// DeadLetter publishes m to the dead-letter subject of consumer durable,
// with the reason, its original subject and sequence, the consumer and the
// delivery count in headers (and without its dedupe id).
func (b *Bus) DeadLetter(ctx context.Context, durable string, m *Message, reason error) error {
	dl := nats.NewMsg(subjects.DeadLetter(durable))
	dl.Data = m.Data
	for k, v := range m.Header {
		dl.Header[k] = v
	}
	dl.Header.Set(HeaderOriginalSubject, m.Subject)
	dl.Header.Set(HeaderOriginalSequence, strconv.FormatUint(m.Sequence, 10))
	dl.Header.Set(HeaderDeadLetterReason, reason.Error())
	dl.Header.Set(HeaderConsumer, durable)
	dl.Header.Set(HeaderDeliveries, strconv.FormatUint(m.Delivered, 10))
	dl.Header.Del(jetstream.MsgIDHeader)
	_, err := b.JS.PublishMsg(ctx, dl)
	return err
}
