package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// RequestErasure records a customer erasure request on
// config.customer.erasure_requested.<tenant>: the audit entry, and what
// the services holding customer data consume. Unlike the other audit
// events it must be stored: the caller is told when it was not.
func (p *Publisher) RequestErasure(ctx context.Context, ev *configv1.CustomerErasureRequested) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	_, err := p.bus.Publish(ctx, subjects.CustomerErasureRequested(ev.TenantId), ev, bus.MsgID(ev.TenantId+"/erasure/"+ev.ErasureId))
	return err
}

// erasureReadLimit bounds the events one read of a tenant's erasures goes
// through (the CONFIG stream keeps a week of them).
const erasureReadLimit = 100_000

// Erasure reads an erasure's request and the services' answers from the
// CONFIG stream: an ordered consumer over the tenant's erasure subjects
// (an admin's status call, not a hot path).
func (p *Publisher) Erasure(ctx context.Context, tenant, erasureID string) (*configv1.CustomerErasureRequested, []*configv1.CustomerErasureCompleted, error) {
	cons, err := p.bus.JS.OrderedConsumer(ctx, subjects.StreamConfig, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.CustomerErasureRequested(tenant), subjects.CustomerErasureCompleted(tenant)},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read erasures: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read erasures: %w", err)
	}
	var req *configv1.CustomerErasureRequested
	done := map[string]*configv1.CustomerErasureCompleted{}
	var order []string
	pending := min(int(info.NumPending), erasureReadLimit)
	for read := 0; read < pending; {
		batch, err := cons.Fetch(min(pending-read, 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, nil, fmt.Errorf("read erasures: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			switch m.Subject() {
			case subjects.CustomerErasureRequested(tenant):
				var ev configv1.CustomerErasureRequested
				if proto.Unmarshal(m.Data(), &ev) == nil && ev.GetErasureId() == erasureID {
					req = &ev
				}
			default:
				var ev configv1.CustomerErasureCompleted
				if proto.Unmarshal(m.Data(), &ev) == nil && ev.GetErasureId() == erasureID {
					if done[ev.GetService()] == nil {
						order = append(order, ev.GetService())
					}
					done[ev.GetService()] = &ev
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, nil, fmt.Errorf("read erasures: %w", err)
		}
		if n == 0 {
			break
		}
		read += n
	}
	out := make([]*configv1.CustomerErasureCompleted, 0, len(order))
	for _, s := range order {
		out = append(out, done[s])
	}
	return req, out, nil
}
