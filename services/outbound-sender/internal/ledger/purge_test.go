package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
)

func TestBlankAndEraseKeepEntries(t *testing.T) {
	s := New(mongotest.Database(t))
	t.Cleanup(s.Close)
	ctx := context.Background()
	cutoff := time.Now().UTC().Truncate(time.Millisecond)
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Hour)
	req := func(tenant, id, customer string, at time.Time) *Request {
		return &Request{Tenant: tenant, RequestID: id, Body: "secret " + id, MediaURLs: []string{"https://x.example/" + id},
			ContentVariables: `{"1":"Ann"}`, Conversation: Conversation{Customer: customer}, RequestedAt: at, CreatedAt: at}
	}
	for _, r := range []*Request{
		req("acme", "old", "+41790000001", old), req("acme", "new", "+41790000001", recent),
		req("acme", "wa-new", "whatsapp:+41790000001", recent), req("acme", "other-customer", "+41790000002", recent),
		req("acme-eu", "old", "+41790000001", old), req("other", "old", "+41790000001", old),
	} {
		if _, fresh, err := s.Begin(ctx, r); err != nil || !fresh {
			t.Fatalf("Begin(%s/%s) = %v, %v", r.Tenant, r.RequestID, fresh, err)
		}
	}
	check := func(tenant, id string, blanked bool, customer string) {
		t.Helper()
		r, err := s.Request(ctx, tenant, id)
		if err != nil {
			t.Fatalf("request %s/%s: %v; the entry must stay", tenant, id, err)
		}
		if got := r.Body == "" && len(r.MediaURLs) == 0 && r.ContentVariables == ""; got != blanked {
			t.Errorf("request %s/%s blanked = %v (%+v), want %v", tenant, id, got, r, blanked)
		}
		if r.Conversation.Customer != customer {
			t.Errorf("request %s/%s recipient %q, want %q", tenant, id, r.Conversation.Customer, customer)
		}
	}
	if n, err := s.BlankBefore(ctx, "acme", cutoff); err != nil || n != 1 {
		t.Errorf("BlankBefore = %d, %v; want acme's one older request (not acme-eu's)", n, err)
	}
	if n, err := s.BlankBefore(ctx, "acme", cutoff); err != nil || n != 0 {
		t.Errorf("BlankBefore again = %d, %v; want 0", n, err)
	}
	check("acme", "old", true, "+41790000001")
	check("acme", "new", false, "+41790000001")
	check("acme-eu", "old", false, "+41790000001")
	check("other", "old", false, "+41790000001")

	if n, err := s.EraseCustomer(ctx, "acme", "+41790000001"); err != nil || n != 3 {
		t.Errorf("EraseCustomer = %d, %v; want the customer's 3 acme requests (SMS and WhatsApp)", n, err)
	}
	check("acme", "old", true, erasure.Masked)
	check("acme", "new", true, erasure.Masked)
	check("acme", "wa-new", true, erasure.Masked)
	check("acme", "other-customer", false, "+41790000002")
	check("other", "old", false, "+41790000001")
	if n, err := s.EraseCustomer(ctx, "acme", "+41790000001"); err != nil || n != 0 {
		t.Errorf("EraseCustomer again = %d, %v; want 0", n, err)
	}
}
