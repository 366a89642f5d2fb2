package records_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
)

func TestPurgeAndMaskTouchOnlyTheirRecords(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	s, err := records.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cutoff := t0
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Hour)
	docs := []bson.M{
		{"_id": "acme/ended-old", "tenant": "acme", "session_id": "ended-old", "customer": "+41790000001", "started_at": old, "ended_at": old},
		{"_id": "acme/ended-across", "tenant": "acme", "session_id": "ended-across", "customer": "whatsapp:+41790000001", "started_at": old, "ended_at": recent},
		{"_id": "acme/open-old", "tenant": "acme", "session_id": "open-old", "customer": "+41790000002", "started_at": old},
		{"_id": "acme/open-new", "tenant": "acme", "session_id": "open-new", "customer": "+41790000001", "started_at": recent},
		{"_id": "other/ended-old", "tenant": "other", "session_id": "ended-old", "customer": "+41790000001", "started_at": old, "ended_at": old},
	}
	for _, d := range docs {
		if _, err := db.Collection("sessions").InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PurgeBefore(ctx, "acme", cutoff); err != nil || n != 2 {
		t.Errorf("PurgeBefore = %d, %v; want acme's record that ended and the one that started before the cutoff", n, err)
	}
	for _, c := range []struct {
		tenant, session string
		kept            bool
	}{{"acme", "ended-old", false}, {"acme", "open-old", false}, {"acme", "ended-across", true}, {"acme", "open-new", true}, {"other", "ended-old", true}} {
		_, err := s.Raw(ctx, c.tenant, c.session)
		if kept := err == nil; kept != c.kept {
			t.Errorf("record %s/%s kept = %v (%v), want %v", c.tenant, c.session, kept, err, c.kept)
		}
	}

	if n, err := s.MaskCustomer(ctx, "acme", "+41790000001"); err != nil || n != 2 {
		t.Errorf("MaskCustomer = %d, %v; want the customer's SMS and WhatsApp records", n, err)
	}
	for _, c := range []struct{ tenant, session, customer string }{
		{"acme", "ended-across", erasure.Masked}, {"acme", "open-new", erasure.Masked}, {"other", "ended-old", "+41790000001"},
	} {
		if d, err := s.Raw(ctx, c.tenant, c.session); err != nil || d.Customer != c.customer {
			t.Errorf("record %s/%s customer %q (%v), want %q", c.tenant, c.session, d.Customer, err, c.customer)
		}
	}
	if n, err := s.MaskCustomer(ctx, "acme", "+41790000001"); err != nil || n != 0 {
		t.Errorf("MaskCustomer again = %d, %v; want 0", n, err)
	}
}
