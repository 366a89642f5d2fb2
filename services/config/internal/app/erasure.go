package app

import (
	"context"
	"slices"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/ids"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Erasures records customer erasure requests (the audit trail the services
// act on) and reads back what happened to them.
type Erasures interface {
	// RequestErasure stores the request durably or fails.
	RequestErasure(ctx context.Context, ev *configv1.CustomerErasureRequested) error
	// Erasure reads an erasure's request (nil when unknown) and the
	// services' answers to it.
	Erasure(ctx context.Context, tenant, erasureID string) (*configv1.CustomerErasureRequested, []*configv1.CustomerErasureCompleted, error)
}

// WithErasures records and follows customer erasures.
func WithErasures(e Erasures) Option { return func(a *App) { a.erasures = e } }

// EraseCustomer asks every service holding customer data to forget the
// customer at address in tenant; by names the admin. The request is the
// audit entry; it is stored before the call answers.
func (a *App) EraseCustomer(ctx context.Context, tenant, address, by string) (string, []string, error) {
	addr, err := erasure.Normalize(address)
	if err != nil {
		return "", nil, invalid("address", "%s", err.Error())
	}
	if _, err := a.tenantOf(ctx, tenant); err != nil {
		return "", nil, err
	}
	if a.erasures == nil {
		return "", nil, precondition("tenant_id", "customer erasure is not available on this config service")
	}
	ev := &configv1.CustomerErasureRequested{
		TenantId: tenant, ErasureId: ids.New("er_"), Address: addr, RequestedBy: by, OccurredAt: ts(a.now()),
	}
	if err := a.erasures.RequestErasure(ctx, ev); err != nil {
		return "", nil, internal("record erasure request", err)
	}
	// The address stays out of the log: the request on CONFIG is the record.
	a.log.InfoContext(ctx, "customer erasure requested", "tenant", tenant, "erasure", ev.ErasureId, "by", by)
	return ev.ErasureId, slices.Clone(erasure.Services), nil
}

// CustomerErasure reports the services that completed an erasure, and
// those that have not.
func (a *App) CustomerErasure(ctx context.Context, tenant, erasureID string) ([]*configv1.CustomerErasureCompleted, []string, error) {
	if erasureID == "" {
		return nil, nil, invalid("erasure_id", "is required")
	}
	if a.erasures == nil {
		return nil, nil, precondition("tenant_id", "customer erasure is not available on this config service")
	}
	req, done, err := a.erasures.Erasure(ctx, tenant, erasureID)
	if err != nil {
		return nil, nil, internal("read erasure", err)
	}
	if req == nil {
		return nil, nil, notFound("erasure", tenant, erasureID)
	}
	var pending []string
	for _, s := range erasure.Services {
		if !slices.ContainsFunc(done, func(c *configv1.CustomerErasureCompleted) bool { return c.GetService() == s }) {
			pending = append(pending, s)
		}
	}
	return done, pending, nil
}
