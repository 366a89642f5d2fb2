// Package configcache keeps the answers of the config service's
// LookupService in memory for the hot paths of other services
// (chat-handler routing a webhook, outbound-sender fetching credentials).
//
// Answers are cached after the first call and dropped when the config
// service announces a change: Run follows the CONFIG stream with an ordered
// consumer (new events only) and forgets every cached answer of a tenant
// when any of its records changes, so a change is visible within the
// event's delivery time (milliseconds; well under a second). NotFound
// answers are cached briefly, so a flood of webhooks for an unknown number
// does not reach the config service. Entries also expire after a TTL, a
// safety net for events missed while the process was cut off from NATS.
//
// Until Run has subscribed, lookups go straight to the config service.
//
//	cache := configcache.New(configv1.NewLookupServiceClient(conn), bus, log, configcache.Options{})
//	go cache.Run(ctx)
//	res, err := cache.ResolveWebhook(ctx, tenant, chatServiceSID, "")
package configcache

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Options tune the cache; zero values take the defaults.
type Options struct {
	// TTL bounds how long an answer is kept without any event; 5 minutes.
	TTL time.Duration
	// NegativeTTL is how long a NotFound answer is kept; 5 seconds.
	NegativeTTL time.Duration
	// CallTimeout bounds one call to the config service; 5 seconds.
	CallTimeout time.Duration
	// Tenants, if set, serves Tenant (TenantService.GetTenant, with the
	// caller's service token).
	Tenants configv1.TenantServiceClient
	// Services, if set, serves Service (ServiceService.GetService, with
	// the caller's service token).
	Services configv1.ServiceServiceClient
}

func (o *Options) defaults() {
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 5 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
}

// Cache serves LookupService answers from memory.
type Cache struct {
	client configv1.LookupServiceClient
	bus    *bus.Bus
	log    *slog.Logger
	opts   Options
	now    func() time.Time

	ready  atomic.Bool
	flight singleflight.Group

	mu      sync.Mutex
	tenants map[string]*tenantEntries
}

// tenantEntries are one tenant's cached answers. gen counts invalidations,
// so a call that started before one does not store its now stale answer.
type tenantEntries struct {
	gen     uint64
	answers map[string]answer
}

type answer struct {
	msg     proto.Message
	err     error
	expires time.Time
}

// New returns a cache over client that follows changes on b.
func New(client configv1.LookupServiceClient, b *bus.Bus, log *slog.Logger, opts Options) *Cache {
	opts.defaults()
	return &Cache{client: client, bus: b, log: log, opts: opts, now: time.Now, tenants: map[string]*tenantEntries{}}
}

// Run follows ConfigChanged events until ctx is done. It retries
// subscribing until the CONFIG stream exists (the config service creates
// it); until then the cache is bypassed.
func (c *Cache) Run(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for {
		cons, err := c.bus.JS.OrderedConsumer(ctx, subjects.StreamConfig, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{subjects.ConfigChangedAll},
			DeliverPolicy:  jetstream.DeliverNewPolicy,
		})
		if err == nil {
			cc, err := cons.Consume(c.onEvent)
			if err == nil {
				c.flushAll()
				c.ready.Store(true)
				c.log.DebugContext(ctx, "config cache following changes")
				<-ctx.Done()
				c.ready.Store(false)
				cc.Stop()
				return nil
			}
			c.log.DebugContext(ctx, "config cache subscribe", "err", err)
		} else if ctx.Err() == nil {
			c.log.DebugContext(ctx, "config cache waiting for the CONFIG stream", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// Ready reports whether the cache follows changes (and so serves from
// memory).
func (c *Cache) Ready() bool { return c.ready.Load() }

func (c *Cache) onEvent(m jetstream.Msg) {
	s, err := subjects.Parse(m.Subject())
	if err != nil {
		return
	}
	c.Invalidate(s.Tenant)
}

// Invalidate forgets every cached answer of tenant.
func (c *Cache) Invalidate(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[tenant]
	if t == nil {
		t = &tenantEntries{}
		c.tenants[tenant] = t
	}
	t.gen++
	t.answers = nil
}

func (c *Cache) flushAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tenants {
		t.gen++
		t.answers = nil
	}
}

// lookup serves key of tenant from memory or calls fetch.
func (c *Cache) lookup(ctx context.Context, tenant, key string, fetch func(context.Context) (proto.Message, error)) (proto.Message, error) {
	if !c.ready.Load() {
		return fetch(ctx)
	}
	now := c.now()
	c.mu.Lock()
	t := c.tenants[tenant]
	if t == nil {
		t = &tenantEntries{}
		c.tenants[tenant] = t
	}
	if a, ok := t.answers[key]; ok && now.Before(a.expires) {
		c.mu.Unlock()
		if a.err != nil {
			return nil, a.err
		}
		return proto.Clone(a.msg), nil
	}
	gen := t.gen
	c.mu.Unlock()

	v, err, _ := c.flight.Do(fmt.Sprintf("%s\x00%d\x00%s", tenant, gen, key), func() (any, error) {
		// Detached from one caller's cancellation: others may wait on it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CallTimeout)
		defer cancel()
		msg, err := fetch(fctx)
		ttl := c.opts.TTL
		switch {
		case err == nil:
		case status.Code(err) == codes.NotFound:
			ttl = c.opts.NegativeTTL
		default:
			return nil, err // not cached
		}
		c.mu.Lock()
		if t := c.tenants[tenant]; t != nil && t.gen == gen {
			if t.answers == nil {
				t.answers = map[string]answer{}
			}
			t.answers[key] = answer{msg: msg, err: err, expires: c.now().Add(ttl)}
		}
		c.mu.Unlock()
		return msg, err
	})
	if err != nil {
		return nil, err
	}
	return proto.Clone(v.(proto.Message)), nil
}

// cached is lookup for one answer type.
func cached[T proto.Message](ctx context.Context, c *Cache, tenant, key string, fetch func(context.Context) (T, error)) (T, error) {
	m, err := c.lookup(ctx, tenant, key, func(ctx context.Context) (proto.Message, error) { return fetch(ctx) })
	if err != nil {
		var none T
		return none, err
	}
	return m.(T), nil
}

// ResolveWebhook is LookupService.ResolveWebhook through the cache. The
// answer carries the Auth Tokens; callers must not log it.
func (c *Cache) ResolveWebhook(ctx context.Context, tenant, chatServiceSID, businessAddress string) (*configv1.ResolveWebhookResponse, error) {
	return cached(ctx, c, tenant, "resolve\x00"+chatServiceSID+"\x00"+businessAddress, func(ctx context.Context) (*configv1.ResolveWebhookResponse, error) {
		return c.client.ResolveWebhook(ctx, &configv1.ResolveWebhookRequest{TenantId: tenant, ChatServiceSid: chatServiceSID, BusinessAddress: businessAddress})
	})
}

// SendingCredentials is LookupService.GetSendingCredentials through the
// cache. The answer carries the API key secret; callers must not log it.
func (c *Cache) SendingCredentials(ctx context.Context, tenant, entryID string) (*configv1.GetSendingCredentialsResponse, error) {
	return cached(ctx, c, tenant, "send\x00"+entryID, func(ctx context.Context) (*configv1.GetSendingCredentialsResponse, error) {
		return c.client.GetSendingCredentials(ctx, &configv1.GetSendingCredentialsRequest{TenantId: tenant, EntryId: entryID})
	})
}

// Tenant is TenantService.GetTenant through the cache (Options.Tenants).
// The tenant carries no secrets (hints only).
func (c *Cache) Tenant(ctx context.Context, id string) (*configv1.Tenant, error) {
	if c.opts.Tenants == nil {
		return nil, status.Error(codes.FailedPrecondition, "configcache: no TenantService client")
	}
	return cached(ctx, c, id, "tenant", func(ctx context.Context) (*configv1.Tenant, error) {
		r, err := c.opts.Tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: id})
		return r.GetTenant(), err
	})
}

// Service is ServiceService.GetService through the cache (Options.Services):
// a workflow entering a service reads it once per change of the tenant's
// configuration rather than once per session. The service carries no
// secrets.
func (c *Cache) Service(ctx context.Context, tenant, id string) (*configv1.Service, error) {
	if c.opts.Services == nil {
		return nil, status.Error(codes.FailedPrecondition, "configcache: no ServiceService client")
	}
	return cached(ctx, c, tenant, "service\x00"+id, func(ctx context.Context) (*configv1.Service, error) {
		r, err := c.opts.Services.GetService(ctx, &configv1.GetServiceRequest{TenantId: tenant, Id: id})
		return r.GetService(), err
	})
}
