package reporting

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchboard-cc/switchboard/pkg/configcache"
	"github.com/switchboard-cc/switchboard/pkg/pricing"
)

// tenantPrices reads tenants' price tables from config through the same
// cache as their time zones (forgotten when config announces a change).
type tenantPrices struct{ c *configcache.Cache }

func (p tenantPrices) Prices(ctx context.Context, tenant string) (*pricing.Table, error) {
	t, err := p.c.Tenant(ctx, tenant)
	if status.Code(err) == codes.NotFound {
		return nil, nil // a tenant config does not know: no prices
	}
	if err != nil {
		return nil, err
	}
	return pricing.NewTable(t.GetMessagePrices()), nil
}
