package distribution

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// lanes: a replica handles its tenants' messages on this many workers,
// each tenant's on one of them, in order.
const lanes = 8

// input handles the messages the consumer group delivers: each by its
// kind, on its tenant's lane, settled by the contract of bus.Consume
// under the durable consumer name the kind had (its dead-letter subject).
type input struct {
	b       *bus.Bus
	h       handlers
	log     *slog.Logger
	ackWait time.Duration
	seed    maphash.Seed
	lanes   []chan queued
	wg      sync.WaitGroup
	mu      sync.Mutex
	closed  bool
}

func newInput(b *bus.Bus, h handlers, log *slog.Logger, ackWait time.Duration) *input {
	in := &input{b: b, h: h, log: log, ackWait: ackWait, seed: maphash.MakeSeed()}
	for range lanes {
		// Deeper than the group's MaxAckPending: a send never blocks.
		ch := make(chan queued, 1024)
		in.lanes = append(in.lanes, ch)
		in.wg.Go(func() {
			for q := range ch {
				in.handleAll(gather(ch, q))
			}
		})
	}
	return in
}

// queued is a message waiting on its lane, kept alive from its delivery:
// a lane that falls behind must not let JetStream redeliver what it
// holds, which would queue every such message a second time behind the
// first and make the lane fall further behind.
type queued struct {
	msg  jetstream.Msg
	stop func()
}

// deliver is the group's callback: it queues the message on its lane.
func (in *input) deliver(msg jetstream.Msg) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		_ = msg.Nak()
		return
	}
	tenant := ""
	if s, err := subjects.Parse(msg.Subject()); err == nil {
		tenant = s.Tenant
	}
	q := queued{msg: msg, stop: bus.KeepAlive(msg, in.ackWait)}
	select {
	case in.lanes[maphash.String(in.seed, tenant)%lanes] <- q:
	default:
		q.stop()
		_ = msg.NakWithDelay(time.Second)
	}
}

// close waits for the messages in hand.
func (in *input) close() {
	in.mu.Lock()
	in.closed = true
	for _, ch := range in.lanes {
		close(ch)
	}
	in.mu.Unlock()
	in.wg.Wait()
}

// maxBatch bounds the messages a lane takes in one go.
const maxBatch = 64

// gather is first and the messages already waiting behind it on its
// lane, up to maxBatch: what a lane that fell behind handles together.
func gather(ch chan queued, first queued) []queued {
	batch := []queued{first}
	for len(batch) < maxBatch {
		select {
		case q, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// handleAll handles what a lane gathered, kind by kind: its task requests
// as one batch (one round of the stores' reads and writes for all of
// them, engine.EnqueueBatch), then its session ends as one batch
// (engine.EndSessions), then the rest one by one, each kind in its order. Only one session's inputs
// need their order, and for those the engine ends up the same either way:
// a request after its session's end is not queued (the end is recorded
// first), one before it is queued and then canceled; an agent's reply to a
// task that ended meanwhile changes nothing.
func (in *input) handleAll(batch []queued) {
	slices.SortStableFunc(batch, func(a, b queued) int { return rank(a.msg) - rank(b.msg) })
	for i := 0; i < len(batch); {
		kind := kindOf(batch[i].msg)
		j := i + 1
		for j < len(batch) && kindOf(batch[j].msg) == kind {
			j++
		}
		switch {
		case j > i+1 && kind == subjects.KindWorkflowTaskRequested:
			handleBatch(in, batch[i:j], in.h.readTask, in.h.eng.EnqueueBatch)
		case j > i+1 && kind == subjects.KindSessionEnded:
			handleBatch(in, batch[i:j], in.h.readEnd, in.h.eng.EndSessions)
		default:
			j = i + 1
			in.handle(batch[i].msg)
			batch[i].stop()
		}
		i = j
	}
}

// rank orders a batch's kinds: task requests, session ends, the rest.
func rank(msg jetstream.Msg) int {
	switch kindOf(msg) {
	case subjects.KindWorkflowTaskRequested:
		return 0
	case subjects.KindSessionEnded:
		return 1
	}
	return 2
}

func kindOf(msg jetstream.Msg) string {
	s, err := subjects.Parse(msg.Subject())
	if err != nil {
		return ""
	}
	return s.Kind()
}

// delivered is a message read for handling: its kind's handler and the
// consumer it is settled under.
type delivered struct {
	msg  jetstream.Msg
	m    *bus.Message
	h    bus.Handler
	spec bus.ConsumerSpec
}

// read reads a message's metadata and kind; false: it was settled here.
func (in *input) read(msg jetstream.Msg) (delivered, bool) {
	m, err := bus.Received(msg)
	if err != nil {
		in.log.Error("message metadata", "err", err)
		_ = msg.Nak()
		return delivered{}, false
	}
	// The group's copy carries headers of its own (the source it came
	// from, the pin) that a dead letter may not.
	m.Header = nats.Header(http.Header(m.Header).Clone())
	m.Header.Del("Nats-Stream-Source")
	m.Header.Del("Nats-Pin-Id")
	d := delivered{msg: msg, m: m, spec: bus.ConsumerSpec{Stream: subjects.StreamDistributionGroup, AckWait: in.ackWait}}
	switch m.Kind() {
	case subjects.KindWorkflowTaskRequested:
		d.h, d.spec.Durable = in.h.taskRequested, subjects.ConsumerDistributionTasks
	case subjects.KindSessionEnded:
		d.h, d.spec.Durable = in.h.sessionEnded, subjects.ConsumerDistributionSessions
	case subjects.KindOutboundRequested:
		d.h, d.spec.Durable = in.h.outboundRequested, subjects.ConsumerDistributionReplies
	default:
		_ = msg.Term() // not an input (the stream gathers these three only)
		return delivered{}, false
	}
	return d, true
}

// settle acknowledges, retries or dead-letters a handled message.
func (in *input) settle(ctx context.Context, d delivered, herr error) {
	if errors.Is(herr, engine.ErrNotOwner) {
		// A hand-over: the partition's new holder gets it once the group
		// has moved (the consumer of a partition is its holder's).
		_ = d.msg.NakWithDelay(500 * time.Millisecond)
		return
	}
	in.b.Settle(ctx, d.spec, d.msg, d.m, herr)
}

func (in *input) handle(msg jetstream.Msg) {
	d, ok := in.read(msg)
	if !ok {
		return
	}
	ctx, span := in.b.StartSpan(context.Background(), d.spec.Durable, d.m)
	defer span.End()
	herr := bus.Guard(func() error { return d.h(ctx, d.m) }) // kept alive since its delivery
	in.settle(ctx, d, herr)
}

// handleBatch handles inputs of one kind together: each is read and
// checked on its own (at once) by read, the valid ones go to apply in one
// call, and each is settled with its own outcome.
func handleBatch[T any](in *input, batch []queued, read func(context.Context, *bus.Message) (T, error), apply func(context.Context, []T) []error) {
	type one struct {
		d    delivered
		ctx  context.Context
		end  func()
		item T
		err  error
	}
	all := make([]*one, 0, len(batch))
	for _, q := range batch {
		d, ok := in.read(q.msg)
		if !ok {
			q.stop()
			continue
		}
		ctx, span := in.b.StartSpan(context.Background(), d.spec.Durable, d.m)
		all = append(all, &one{d: d, ctx: ctx, end: func() { span.End(); q.stop() }})
	}
	var wg sync.WaitGroup
	for _, o := range all {
		wg.Go(func() {
			o.err = bus.Guard(func() (err error) {
				o.item, err = read(o.ctx, o.d.m)
				return err
			})
		})
	}
	wg.Wait()
	var items []T
	var owners []*one
	for _, o := range all {
		if o.err == nil {
			items = append(items, o.item)
			owners = append(owners, o)
		}
	}
	if len(items) > 0 {
		var errs []error
		if err := bus.Guard(func() error { errs = apply(context.Background(), items); return nil }); err != nil {
			errs = make([]error, len(items))
			for i := range errs {
				errs[i] = err
			}
		}
		for i, o := range owners {
			o.err = errs[i]
		}
	}
	for _, o := range all {
		in.settle(o.ctx, o.d, o.err)
		o.end()
	}
}

// ownership applies the partitions the group gives this replica: it
// loads the tenants of new ones, answers forwarded calls for them, and
// drops the tenants of those it lost. The latest wish wins; a load that
// fails is tried again.
type ownership struct {
	// settle: how long to wait before loading a gained partition, so the
	// replica that held it has seen the change and stopped writing (a
	// slower one is caught by the revision checks of the stores).
	settle  time.Duration
	eng     *engine.Engine
	router  interface{ Hold([]int) error }
	log     *slog.Logger
	replica string
	wish    chan []int
}

func newOwnership(eng *engine.Engine, router interface{ Hold([]int) error }, log *slog.Logger, replica string, settle time.Duration) *ownership {
	return &ownership{eng: eng, router: router, log: log, replica: replica, settle: settle, wish: make(chan []int, 1)}
}

// want records the partitions this replica should hold.
func (o *ownership) want(parts []int) {
	for {
		select {
		case o.wish <- parts:
			return
		default:
			select {
			case <-o.wish: // replaced by the newer wish
			default:
			}
		}
	}
}

func (o *ownership) run(ctx context.Context) {
	held := map[int]bool{}
	defer func() {
		_ = o.router.Hold(nil)
		o.eng.Release(keys(held))
	}()
	for {
		var parts []int
		select {
		case <-ctx.Done():
			return
		case parts = <-o.wish:
		}
		want := map[int]bool{}
		for _, p := range parts {
			want[p] = true
		}
		var lost, gained []int
		for p := range held {
			if !want[p] {
				lost = append(lost, p)
			}
		}
		for p := range want {
			if !held[p] {
				gained = append(gained, p)
			}
		}
		if len(lost) > 0 {
			for _, p := range lost {
				delete(held, p)
			}
			if err := o.router.Hold(keys(held)); err != nil {
				o.log.ErrorContext(ctx, "stop answering for lost partitions", "err", err)
			}
			o.eng.Release(lost)
			o.log.InfoContext(ctx, "released partitions", "replica", o.replica, "partitions", lost)
		}
		if len(gained) == 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(o.settle):
		}
		select {
		case newer := <-o.wish: // changed again meanwhile: apply that
			o.want(newer)
			continue
		default:
		}
		tasks, agents, err := o.eng.Acquire(ctx, gained)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			o.log.ErrorContext(ctx, "load the tenants of new partitions; retrying", "partitions", gained, "err", err)
			time.Sleep(time.Second)
			select {
			case o.wish <- parts: // unless a newer wish is there
			default:
			}
			continue
		}
		for _, p := range gained {
			held[p] = true
		}
		if err := o.router.Hold(keys(held)); err != nil {
			o.log.ErrorContext(ctx, "answer forwarded calls", "err", err)
		}
		o.log.InfoContext(ctx, "acquired partitions", "replica", o.replica, "partitions", gained, "tasks", tasks, "agents", agents)
	}
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
