package reporting

import (
	"context"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/retention"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

// purger deletes a tenant's records and summaries older than the cutoff.
func purger(st *records.Store, rollups *rollup.Store) retention.Purge {
	return func(ctx context.Context, tenant string, cutoff time.Time) (map[string]int64, error) {
		counts := map[string]int64{}
		n, err := st.PurgeBefore(ctx, tenant, cutoff)
		counts["records"] = n
		if err != nil {
			return counts, err
		}
		n, err = rollups.PurgeBefore(ctx, tenant, cutoff)
		counts["rollups"] = n
		return counts, err
	}
}

// eraser masks the customer in the tenant's records (summaries hold no
// customer; transcripts are sessions').
func eraser(st *records.Store) erasure.Handler {
	return func(ctx context.Context, req *configv1.CustomerErasureRequested) (map[string]int64, error) {
		n, err := st.MaskCustomer(ctx, req.GetTenantId(), req.GetAddress())
		return map[string]int64{"records_masked": n}, err
	}
}
