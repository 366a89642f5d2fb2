package distribution

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"net/http"
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
				in.handle(q.msg)
				q.stop()
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

func (in *input) handle(msg jetstream.Msg) {
	m, err := bus.Received(msg)
	if err != nil {
		in.log.Error("message metadata", "err", err)
		_ = msg.Nak()
		return
	}
	// The group's copy carries headers of its own (the source it came
	// from, the pin) that a dead letter may not.
	m.Header = nats.Header(http.Header(m.Header).Clone())
	m.Header.Del("Nats-Stream-Source")
	m.Header.Del("Nats-Pin-Id")
	var h bus.Handler
	spec := bus.ConsumerSpec{Stream: subjects.StreamDistributionGroup, AckWait: in.ackWait}
	switch m.Kind() {
	case subjects.KindWorkflowTaskRequested:
		h, spec.Durable = in.h.taskRequested, subjects.ConsumerDistributionTasks
	case subjects.KindSessionEnded:
		h, spec.Durable = in.h.sessionEnded, subjects.ConsumerDistributionSessions
	case subjects.KindOutboundRequested:
		h, spec.Durable = in.h.outboundRequested, subjects.ConsumerDistributionReplies
	default:
		_ = msg.Term() // not an input (the stream gathers these three only)
		return
	}
	ctx, span := in.b.StartSpan(context.Background(), spec.Durable, m)
	defer span.End()
	herr := bus.Guard(func() error { return h(ctx, m) }) // kept alive since its delivery
	if errors.Is(herr, engine.ErrNotOwner) {
		// A hand-over: the partition's new holder gets it once the group
		// has moved (the consumer of a partition is its holder's).
		_ = msg.NakWithDelay(500 * time.Millisecond)
		return
	}
	in.b.Settle(ctx, spec, msg, m, herr)
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
