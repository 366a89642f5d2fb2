// Package lanes consumes a JetStream durable consumer in parallel lanes:
// messages with the same key (one Twilio sender) go through their ordered
// step one at a time in stream order, different keys concurrently. A sender
// that must wait for its rate limit holds up only its own lane.
//
// Each message passes three stages. Prepare runs as soon as the message
// arrives, concurrently with everything else (database writes and checks);
// Ordered runs one message of the lane at a time, in stream order (the
// rate wait and the call that must keep its order); Finish runs
// concurrently again (recording the result, publishing). So a lane is busy
// only for its ordered step, not for every database round trip around it.
//
// The handler contract is pkg/bus's: a stage returning an error ends the
// message's passage; nil from the last stage acks, an error marked
// bus.Permanent dead-letters and terminates, any other error redelivers
// after a jittered backoff, and the last allowed delivery that fails is
// dead-lettered. Messages held in a lane are kept alive with in-progress
// acks, so JetStream does not redeliver them while they queue. On shutdown
// the ordered step in hand finishes and queued messages are handed back
// (nak) for another process.
//
// A message that is redelivered lets later messages of its lane go first:
// order holds for everything that passes in one delivery.
package lanes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Spec describes the durable consumer.
type Spec struct {
	Stream         string
	Durable        string
	FilterSubjects []string
	// AckWait before JetStream redelivers an unacknowledged message; 30s.
	AckWait time.Duration
	// MaxDeliver attempts before dead-lettering; 8.
	MaxDeliver int
	// MaxAckPending bounds messages held (in lanes and in flight); 10000.
	// A sender's backlog waiting for its rate limit counts against it.
	MaxAckPending int
	// Backoff is the redelivery delay after the n-th failed delivery;
	// bus.DefaultBackoff when nil.
	Backoff func(delivered uint64) time.Duration
}

func (s *Spec) defaults() {
	if s.AckWait <= 0 {
		s.AckWait = 30 * time.Second
	}
	if s.MaxDeliver <= 0 {
		s.MaxDeliver = 8
	}
	if s.MaxAckPending <= 0 {
		s.MaxAckPending = 10000
	}
	if s.Backoff == nil {
		s.Backoff = bus.DefaultBackoff
	}
}

// Stages process one message. Prepare returns a job for the next stages
// (nil, nil means done: acked without the other stages); last is true on
// the final delivery JetStream will make, so a stage can record a
// definitive failure instead of returning an error.
type Stages struct {
	Prepare func(ctx context.Context, m *bus.Message, last bool) (any, error)
	Ordered func(ctx context.Context, job any) error
	Finish  func(ctx context.Context, job any) error
}

// maxConcurrent bounds Prepare and Finish stages running at once.
const maxConcurrent = 512

// Key names a message's lane; an error is permanent (the message cannot be
// decoded) and dead-letters it.
type Key func(m *bus.Message) (string, error)

type item struct {
	msg jetstream.Msg
	m   *bus.Message
	// prepared closes when Prepare has returned job and err.
	prepared chan struct{}
	job      any
	err      error
	// ctx carries the message's trace span through the stages.
	ctx  context.Context
	span trace.Span
}

type lane struct {
	queue []*item
}

type runner struct {
	b     *bus.Bus
	spec  Spec
	key   Key
	h     Stages
	log   *slog.Logger
	slots chan struct{}
	ctx   context.Context
	trace trace.Tracer
	prop  propagation.TextMapPropagator

	mu       sync.Mutex
	lanes    map[string]*lane
	held     map[jetstream.Msg]struct{}
	stopping bool
	wg       sync.WaitGroup
}

// Run consumes until ctx is done, then hands back what is queued and waits
// for the messages in hand.
func Run(ctx context.Context, b *bus.Bus, spec Spec, key Key, h Stages, log *slog.Logger) error {
	spec.defaults()
	cfg := jetstream.ConsumerConfig{
		Durable:       spec.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		MaxAckPending: spec.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	switch len(spec.FilterSubjects) {
	case 0:
	case 1:
		cfg.FilterSubject = spec.FilterSubjects[0]
	default:
		cfg.FilterSubjects = spec.FilterSubjects
	}
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consumer %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	r := &runner{
		b: b, spec: spec, key: key, h: h, log: log, ctx: context.WithoutCancel(ctx),
		trace: otel.GetTracerProvider().Tracer("github.com/switchboard-cc/switchboard/services/outbound-sender/internal/lanes"),
		prop:  propagation.TraceContext{},
		lanes: map[string]*lane{}, held: map[jetstream.Msg]struct{}{}, slots: make(chan struct{}, maxConcurrent),
	}
	cc, err := cons.Consume(r.receive, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
			log.Debug("consume", "consumer", spec.Durable, "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", spec.Durable, err)
	}
	stopKeepAlive := r.keepAlive()
	<-ctx.Done()

	r.mu.Lock()
	r.stopping = true
	for k, l := range r.lanes {
		// The lane's goroutine holds its first item; hand back the rest.
		for _, it := range l.queue[1:] {
			it := it
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				<-it.prepared // let a Prepare in flight end before handing back
				_ = it.msg.Nak()
			}()
			delete(r.held, it.msg)
		}
		l.queue = l.queue[:1]
		r.lanes[k] = l
	}
	r.mu.Unlock()
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(10 * time.Second):
		cc.Stop()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		log.Warn("lanes still busy at shutdown", "consumer", spec.Durable)
	}
	stopKeepAlive()
	return nil
}

func (r *runner) receive(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		r.log.Error("message metadata", "consumer", r.spec.Durable, "err", err)
		_ = msg.Nak()
		return
	}
	m := &bus.Message{Subject: msg.Subject(), Data: msg.Data(), Header: msg.Headers(), Delivered: md.NumDelivered, Sequence: md.Sequence.Stream}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	k, err := r.key(m)
	if err != nil {
		r.finish(r.ctx, msg, m, bus.Permanent(err))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		_ = msg.Nak()
		return
	}
	r.held[msg] = struct{}{}
	it := &item{msg: msg, m: m, prepared: make(chan struct{})}
	it.ctx, it.span = r.span(m)
	r.wg.Add(1)
	go r.prepare(it)
	l := r.lanes[k]
	if l != nil {
		l.queue = append(l.queue, it)
		return
	}
	l = &lane{queue: []*item{it}}
	r.lanes[k] = l
	r.wg.Add(1)
	go r.run(k, l)
}

func (r *runner) prepare(it *item) {
	defer r.wg.Done()
	defer close(it.prepared)
	r.slots <- struct{}{}
	defer func() { <-r.slots }()
	it.job, it.err = safePrepare(it.ctx, r.h.Prepare, it.m, int(it.m.Delivered) >= r.spec.MaxDeliver)
}

// run takes one lane's messages through their ordered step, in order,
// until the lane is empty.
func (r *runner) run(k string, l *lane) {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		if len(l.queue) == 0 {
			delete(r.lanes, k)
			r.mu.Unlock()
			return
		}
		it := l.queue[0]
		r.mu.Unlock()

		<-it.prepared
		err := it.err
		if err == nil && it.job != nil {
			err = safeStage(it.ctx, r.h.Ordered, it.job)
		}
		r.mu.Lock()
		l.queue = l.queue[1:]
		r.mu.Unlock()
		if err != nil || it.job == nil {
			r.done(it, err)
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.slots <- struct{}{}
			defer func() { <-r.slots }()
			r.done(it, safeStage(it.ctx, r.h.Finish, it.job))
		}()
	}
}

// span starts the message's consumer span, which covers all its stages.
func (r *runner) span(m *bus.Message) (context.Context, trace.Span) {
	ctx := r.prop.Extract(r.ctx, bus.HeaderCarrier(m.Header))
	return r.trace.Start(ctx, "consume "+m.Kind(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", m.Subject),
			attribute.String("messaging.consumer.group.name", r.spec.Durable),
			attribute.Int64("messaging.message.delivery_count", int64(m.Delivered)),
		))
}

// done settles a message and stops keeping it alive.
func (r *runner) done(it *item, err error) {
	if err != nil {
		it.span.SetStatus(codes.Error, err.Error())
	}
	it.span.End()
	r.finish(it.ctx, it.msg, it.m, err)
	r.mu.Lock()
	delete(r.held, it.msg)
	r.mu.Unlock()
}

func (r *runner) finish(ctx context.Context, msg jetstream.Msg, m *bus.Message, herr error) {
	switch {
	case herr == nil:
		if err := msg.Ack(); err != nil {
			r.log.Warn("ack", "consumer", r.spec.Durable, "subject", m.Subject, "err", err)
		}
	case bus.IsPermanent(herr) || int(m.Delivered) >= r.spec.MaxDeliver:
		if err := r.deadLetter(ctx, m, herr); err != nil {
			r.log.Error("dead-letter publish; will redeliver", "consumer", r.spec.Durable, "subject", m.Subject, "err", err)
			_ = msg.NakWithDelay(r.spec.Backoff(m.Delivered))
			return
		}
		r.log.Error("message dead-lettered", "consumer", r.spec.Durable, "subject", m.Subject, "seq", m.Sequence, "deliveries", m.Delivered, "err", herr)
		_ = msg.Term()
	default:
		delay := r.spec.Backoff(m.Delivered)
		r.log.Warn("handler failed; redelivering", "consumer", r.spec.Durable, "subject", m.Subject, "deliveries", m.Delivered, "delay", delay, "err", herr)
		_ = msg.NakWithDelay(delay)
	}
}

func safePrepare(ctx context.Context, f func(context.Context, *bus.Message, bool) (any, error), m *bus.Message, last bool) (job any, err error) {
	defer func() {
		if p := recover(); p != nil {
			job, err = nil, fmt.Errorf("prepare panic: %v", p)
		}
	}()
	return f(ctx, m, last)
}

func safeStage(ctx context.Context, f func(context.Context, any) error, job any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("stage panic: %v", p)
		}
	}()
	return f(ctx, job)
}

// keepAlive sends in-progress acks for every held message twice per ack
// wait.
func (r *runner) keepAlive() (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(r.spec.AckWait / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.mu.Lock()
				msgs := make([]jetstream.Msg, 0, len(r.held))
				for m := range r.held {
					msgs = append(msgs, m)
				}
				r.mu.Unlock()
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

// deadLetter publishes the message to the consumer's dead-letter subject
// with the reason, as pkg/bus does.
func (r *runner) deadLetter(ctx context.Context, m *bus.Message, reason error) error {
	dl := nats.NewMsg(subjects.DeadLetter(r.spec.Durable))
	dl.Data = m.Data
	for k, v := range m.Header {
		dl.Header[k] = v
	}
	dl.Header.Set(bus.HeaderOriginalSubject, m.Subject)
	dl.Header.Set(bus.HeaderOriginalSequence, strconv.FormatUint(m.Sequence, 10))
	dl.Header.Set(bus.HeaderDeadLetterReason, reason.Error())
	dl.Header.Set(bus.HeaderConsumer, r.spec.Durable)
	dl.Header.Set(bus.HeaderDeliveries, strconv.FormatUint(m.Delivered, 10))
	dl.Header.Del(jetstream.MsgIDHeader)
	_, err := r.b.JS.PublishMsg(ctx, dl)
	return err
}
