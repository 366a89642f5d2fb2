package core

import (
	"context"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// PurgeBefore removes what tenant stored before cutoff, for its retention
// (pkg/retention): transcript entries, outbound message documents,
// agents' attachments, sessions that ended, and customer histories' older
// sessions.
func (c *Core) PurgeBefore(ctx context.Context, tenant string, cutoff time.Time) (map[string]int64, error) {
	counts := map[string]int64{}
	for _, step := range []struct {
		kind string
		run  func(context.Context, string, time.Time) (int64, error)
	}{
		{"transcript_entries", c.store.PurgeTranscriptsBefore},
		{"messages", c.store.PurgeMessagesBefore},
		{"attachments", c.store.PurgeAttachmentsBefore},
		{"sessions", c.store.PurgeSessionsBefore},
		{"history_entries", c.store.PurgeHistoryBefore},
	} {
		n, err := step.run(ctx, tenant, cutoff)
		counts[step.kind] = n
		if err != nil {
			return counts, err
		}
	}
	return counts, nil
}

// EraseCustomer forgets one customer of a tenant: their sessions'
// transcripts, outbound message documents and agents' attachments are
// deleted, the sessions keep their figures with the customer masked, and
// their history is dropped. Running it again finds nothing left to do.
func (c *Core) EraseCustomer(ctx context.Context, req *configv1.CustomerErasureRequested) (map[string]int64, error) {
	tenant, customer := req.GetTenantId(), req.GetAddress()
	sessions, err := c.store.CustomerSessions(ctx, tenant, customer)
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{"sessions_masked": 0, "transcript_entries": 0, "messages": 0, "attachments": 0, "history": 0}
	ids := make([]string, 0, len(sessions))
	for _, sess := range sessions {
		ids = append(ids, sess.ID)
		n, err := c.store.PurgeTranscript(ctx, tenant, sess.ID)
		if err != nil {
			return counts, err
		}
		counts["transcript_entries"] += n
		changed, err := c.store.MaskCustomer(ctx, sess)
		if err != nil {
			return counts, err
		}
		if changed {
			counts["sessions_masked"]++
		}
	}
	if len(ids) > 0 {
		n, err := c.store.DeleteSessionMessages(ctx, tenant, ids)
		if err != nil {
			return counts, err
		}
		counts["messages"] = n
		if n, err = c.store.DeleteSessionAttachments(ctx, tenant, ids); err != nil {
			return counts, err
		}
		counts["attachments"] = n
	}
	if forgot, err := c.store.ForgetHistory(ctx, tenant, customer); err != nil {
		return counts, err
	} else if forgot {
		counts["history"] = 1
	}
	return counts, nil
}

var _ erasure.Handler = (*Core)(nil).EraseCustomer
