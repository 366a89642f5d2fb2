package rollup

import (
	"context"

	"github.com/switchboard-cc/switchboard/pkg/pricing"
)

// TenantPrices says a tenant's Twilio price table (config's
// Tenant.message_prices); nil or an empty table prices nothing.
type TenantPrices interface {
	Prices(ctx context.Context, tenant string) (*pricing.Table, error)
}

// SetTenantPrices makes the writer price each session's segments with its
// tenant's table as p says it when the session is rolled up. Call it
// before Run or Apply.
func (s *Store) SetTenantPrices(p TenantPrices) { s.tenantPrices = p }

// prices is the tenant's table now; when it cannot be read, the last one
// read (a warning is logged), else none.
func (s *Store) prices(ctx context.Context, tenant string) *pricing.Table {
	if s.tenantPrices == nil {
		return nil
	}
	t, err := s.tenantPrices.Prices(ctx, tenant)
	if err == nil {
		s.lastPrices.Store(tenant, t)
		return t
	}
	last, _ := s.lastPrices.Load(tenant)
	if s.log != nil {
		s.log.WarnContext(ctx, "rollups: the tenant's prices cannot be read; using the last ones read", "tenant", tenant, "err", err)
	}
	t, _ = last.(*pricing.Table)
	return t
}
