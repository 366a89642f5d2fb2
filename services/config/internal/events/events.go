// Package events publishes the config service's ConfigChanged events on
// JetStream.
//
// A change is stored before its event is published, and there are no
// transactions to tie the two together, so a publish that fails is retried
// in the background until it succeeds (JetStream drops the duplicate if an
// earlier attempt did land: every event has a Nats-Msg-Id). Caches of other
// services also expire entries on their own, which bounds staleness if the
// process dies with events still queued.
package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Publisher sends ConfigChanged events.
type Publisher struct {
	bus *bus.Bus
	log *slog.Logger

	mu      sync.Mutex
	pending []*configv1.ConfigChanged
	wake    chan struct{}
}

// New returns a publisher on b; call Run to retry failed publishes.
func New(b *bus.Bus, log *slog.Logger) *Publisher {
	return &Publisher{bus: b, log: log, wake: make(chan struct{}, 1)}
}

// Entity is the subject token of a kind of record.
func Entity(k configv1.EntityKind) string {
	switch k {
	case configv1.EntityKind_ENTITY_KIND_TENANT:
		return subjects.EntityTenant
	case configv1.EntityKind_ENTITY_KIND_ORGANIZATION_UNIT:
		return subjects.EntityOrganizationUnit
	case configv1.EntityKind_ENTITY_KIND_PROVIDER_CONNECTOR:
		return subjects.EntityProviderConnector
	case configv1.EntityKind_ENTITY_KIND_MESSAGING_ENTRY:
		return subjects.EntityMessagingEntry
	case configv1.EntityKind_ENTITY_KIND_SERVICE:
		return subjects.EntityService
	case configv1.EntityKind_ENTITY_KIND_USER:
		return subjects.EntityUser
	case configv1.EntityKind_ENTITY_KIND_WORKFLOW:
		return subjects.EntityWorkflow
	}
	return "unknown"
}

func msgID(ev *configv1.ConfigChanged) string {
	return fmt.Sprintf("config/%s/%s/%s/%d/%d", ev.TenantId, Entity(ev.Kind), ev.Id, ev.Version, ev.Change)
}

const publishTimeout = 2 * time.Second

func (p *Publisher) send(ctx context.Context, ev *configv1.ConfigChanged) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	_, err := p.bus.Publish(ctx, subjects.ConfigChanged(Entity(ev.Kind), ev.TenantId), ev, bus.MsgID(msgID(ev)))
	return err
}

// Publish sends ev now, or queues it for Run to retry.
func (p *Publisher) Publish(ctx context.Context, ev *configv1.ConfigChanged) {
	if err := p.send(ctx, ev); err != nil {
		p.log.WarnContext(ctx, "publish config change; retrying in the background", "tenant", ev.TenantId, "kind", Entity(ev.Kind), "id", ev.Id, "err", err)
		p.mu.Lock()
		p.pending = append(p.pending, ev)
		p.mu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// Pending is the number of events waiting for a retry.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Run retries queued events until ctx is done, then makes a last attempt.
func (p *Publisher) Run(ctx context.Context) {
	delay := 250 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			p.flush(context.Background())
			if n := p.Pending(); n > 0 {
				p.log.ErrorContext(ctx, "config change events not published at shutdown; caches expire them", "count", n)
			}
			return
		case <-p.wake:
		case <-time.After(delay):
		}
		if p.flush(ctx) {
			delay = 250 * time.Millisecond
		} else {
			delay = min(delay*2, 10*time.Second)
		}
	}
}

// flush tries every queued event once, in order; it reports whether the
// queue is empty.
func (p *Publisher) flush(ctx context.Context) bool {
	p.mu.Lock()
	batch := p.pending
	p.pending = nil
	p.mu.Unlock()
	var failed []*configv1.ConfigChanged
	for i, ev := range batch {
		if err := p.send(ctx, ev); err != nil {
			failed = batch[i:]
			break
		}
	}
	if len(failed) == 0 {
		return true
	}
	p.mu.Lock()
	p.pending = append(failed, p.pending...)
	p.mu.Unlock()
	return false
}

// SignInFailed records a refused sign-in on config.signin.failed.<tenant>.
// The audit trail is best effort: a publish that fails is logged (the
// failure is also counted by the throttle and logged at WARN).
func (p *Publisher) SignInFailed(ctx context.Context, ev *configv1.SignInFailed) {
	p.audit(ctx, subjects.ConfigSignInFailed(ev.TenantId), ev)
}

// SignInLockoutCleared records an admin clearing a lockout on
// config.signin.cleared.<tenant>.
func (p *Publisher) SignInLockoutCleared(ctx context.Context, ev *configv1.SignInLockoutCleared) {
	p.audit(ctx, subjects.ConfigSignInCleared(ev.TenantId), ev)
}

func (p *Publisher) audit(ctx context.Context, subject string, ev proto.Message) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if _, err := p.bus.Publish(ctx, subject, ev); err != nil {
		p.log.WarnContext(ctx, "publish audit event", "subject", subject, "err", err)
	}
}
