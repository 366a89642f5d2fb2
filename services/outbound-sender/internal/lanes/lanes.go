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
// The consume contract is pkg/bus's, used through its exported pieces
// (bus.ConsumerSpec.Config, bus.Received, bus.KeepAlive, bus.Guard,
// bus.Bus.Settle): a stage returning an error ends the message's passage;
// nil from the last stage acks, an error marked bus.Permanent dead-letters
// and terminates, any other error redelivers after a jittered backoff, and
// the last delivery that fails is dead-lettered. The last delivery is one
// past MaxDeliver of a message at least TransientFor old: before it, any
// failure but a permanent one is redelivered, so a Twilio incident or a
// broker restart of a few minutes delays a message instead of failing it,
// and the stages always learn which delivery is the last (they record a
// definitive failure then) before the message is given up. A panic in a stage
// is an error. Messages held in a lane are kept alive with in-progress
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
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-cc/switchboard/pkg/bus"
)

// Spec describes the durable consumer. MaxAckPending bounds messages held
// (in lanes and in flight), 10000 when zero: a sender's backlog waiting for
// its rate limit counts against it. The other defaults are pkg/bus's.
type Spec = bus.ConsumerSpec

// defaultMaxAckPending is higher than pkg/bus's: queued lanes hold many.
const defaultMaxAckPending = 10000

// Stages process one message whose job has type J.
//
// Prepare returns the job for the next stages, or a nil job when it has
// settled the message itself and no call is needed (answered from a
// ledger, refused by a rule, unusable): then the message is acked (or, with
// an error, handled by the contract) without Ordered and Finish. last is
// true on the final delivery (see the package comment), so a stage can
// record a definitive failure instead of returning an error; an error
// returned on an earlier delivery is always retried.
//
// The job is a concrete pointer type, never an interface: "no job" is
// exactly nil and cannot be mistaken for a job.
type Stages[J any] struct {
	Prepare func(ctx context.Context, m *bus.Message, last bool) (*J, error)
	Ordered func(ctx context.Context, job *J) error
	Finish  func(ctx context.Context, job *J) error
}

// maxConcurrent bounds Prepare and Finish stages running at once.
const maxConcurrent = 512

// Key names a message's lane; an error is permanent (the message cannot be
// decoded) and dead-letters it.
type Key func(m *bus.Message) (string, error)

type item[J any] struct {
	msg jetstream.Msg
	m   *bus.Message
	// prepared closes when Prepare has returned job and err.
	prepared chan struct{}
	job      *J
	err      error
	// last: this is the final delivery (set before Prepare, by
	// lastDelivery); only then may a failure end the message.
	last bool
	// ctx carries the message's trace span through the stages.
	ctx  context.Context
	span trace.Span
	// stopKeepAlive ends the message's in-progress acks.
	stopKeepAlive func()
}

type lane[J any] struct {
	queue []*item[J]
}

type runner[J any] struct {
	b     *bus.Bus
	spec  Spec
	key   Key
	h     Stages[J]
	log   *slog.Logger
	slots chan struct{}
	ctx   context.Context

	mu       sync.Mutex
	lanes    map[string]*lane[J]
	stopping bool
	wg       sync.WaitGroup
}

// Run consumes until ctx is done, then hands back what is queued and waits
// for the messages in hand.
func Run[J any](ctx context.Context, b *bus.Bus, spec Spec, key Key, h Stages[J], log *slog.Logger) error {
	if spec.MaxAckPending <= 0 {
		spec.MaxAckPending = defaultMaxAckPending
	}
	spec = spec.WithDefaults()
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, spec.Stream, spec.Config())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consumer %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	r := &runner[J]{
		b: b, spec: spec, key: key, h: h, log: log, ctx: context.WithoutCancel(ctx),
		lanes: map[string]*lane[J]{}, slots: make(chan struct{}, maxConcurrent),
	}
	cc, err := cons.Consume(r.receive, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
			log.Debug("consume", "consumer", spec.Durable, "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", spec.Durable, err)
	}
	bus.WatchConsumer(ctx, cons, spec.Durable)
	<-ctx.Done()

	r.mu.Lock()
	r.stopping = true
	for _, l := range r.lanes {
		if len(l.queue) == 0 {
			continue // its goroutine finished the last item and is leaving
		}
		// The lane's goroutine holds its first item; hand back the rest.
		for _, it := range l.queue[1:] {
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				<-it.prepared // let a Prepare in flight end before handing back
				it.stopKeepAlive()
				it.span.End()
				_ = it.msg.Nak()
			}()
		}
		l.queue = l.queue[:1]
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
		log.WarnContext(ctx, "lanes still busy at shutdown", "consumer", spec.Durable)
	}
	return nil
}

func (r *runner[J]) receive(msg jetstream.Msg) {
	m, err := bus.Received(msg)
	if err != nil {
		r.log.Error("message metadata", "consumer", r.spec.Durable, "err", err)
		_ = msg.Nak()
		return
	}
	k, err := r.key(m)
	if err != nil {
		r.b.Settle(r.ctx, r.spec, msg, m, bus.Permanent(err))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		_ = msg.Nak()
		return
	}
	it := &item[J]{msg: msg, m: m, prepared: make(chan struct{}), stopKeepAlive: bus.KeepAlive(msg, r.spec.AckWait)}
	it.ctx, it.span = r.b.StartSpan(r.ctx, r.spec.Durable, m)
	r.wg.Add(1)
	go r.prepare(it)
	l := r.lanes[k]
	if l != nil {
		l.queue = append(l.queue, it)
		return
	}
	l = &lane[J]{queue: []*item[J]{it}}
	r.lanes[k] = l
	r.wg.Add(1)
	go r.run(k, l)
}

func (r *runner[J]) prepare(it *item[J]) {
	defer r.wg.Done()
	defer close(it.prepared)
	r.slots <- struct{}{}
	defer func() { <-r.slots }()
	it.last = lastDelivery(r.spec, it.m, time.Now())
	it.err = bus.Guard(func() error {
		var err error
		it.job, err = r.h.Prepare(it.ctx, it.m, it.last)
		return err
	})
	if it.err != nil {
		it.job = nil
	}
}

// lastDelivery reports whether m's delivery is the last: its MaxDeliver
// deliveries are used up and it is TransientFor old (or its age is not
// known).
func lastDelivery(spec Spec, m *bus.Message, now time.Time) bool {
	if int(m.Delivered) < spec.MaxDeliver {
		return false
	}
	return m.Stored.IsZero() || now.Sub(m.Stored) >= spec.TransientFor
}

// run takes one lane's messages through their ordered step, in order,
// until the lane is empty.
func (r *runner[J]) run(k string, l *lane[J]) {
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
			err = bus.Guard(func() error { return r.h.Ordered(it.ctx, it.job) })
		}
		r.mu.Lock()
		l.queue = l.queue[1:]
		r.mu.Unlock()
		if err != nil || it.job == nil {
			r.done(it, err) // settled by Prepare, or failed
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.slots <- struct{}{}
			defer func() { <-r.slots }()
			r.done(it, bus.Guard(func() error { return r.h.Finish(it.ctx, it.job) }))
		}()
	}
}

// done stops keeping a message alive and settles it by the contract. A
// delivery that was not the last is never given up for a failure that is
// not permanent, however long its stages took: the stages were told it was
// not the last, so they recorded nothing final.
func (r *runner[J]) done(it *item[J], err error) {
	it.stopKeepAlive()
	spec := r.spec
	if !it.last {
		spec.MaxDeliver = max(spec.MaxDeliver, int(it.m.Delivered)+1)
	}
	r.b.Settle(it.ctx, spec, it.msg, it.m, err)
	it.span.End()
}
