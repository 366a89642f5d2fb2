package core

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// newStoreCore is the domain on a real store: embedded NATS (the
// TRANSCRIPT stream and the store's buckets) and FerretDB, with
// attachments on.
func newStoreCore(t *testing.T) (*Core, *store.Store) {
	t.Helper()
	srv := natstest.Start(t)
	b, err := bus.Connect(srv.ClientURL(), t.Name(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx := context.Background()
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamTranscript); err != nil {
		t.Fatal(err)
	}
	st, err := store.New(ctx, mongotest.Database(t), b.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	c := New(st, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	c.SetPublicURL("https://console.example/")
	return c, st
}

// openChat stores an active Programmable Messaging chat of customer
// (whatsapp:+… on WhatsApp, +… on SMS) assigned to alice.
func openChat(t *testing.T, st *store.Store, tenant, session, customer string) {
	t.Helper()
	channel := "sms"
	if strings.HasPrefix(customer, "whatsapp:") {
		channel = "whatsapp"
	}
	err := st.CreateSession(context.Background(), &store.Session{Tenant: tenant, ID: session, State: store.StateActive, AgentID: "alice",
		StartedAt: time.Now().Add(-72 * time.Hour), Conversation: store.Conversation{Channel: channel, Path: "messaging", Customer: customer, Business: "+41440000000"},
		ConversationKey: "m:+41440000000|" + customer})
	if err != nil {
		t.Fatal(err)
	}
}

// attach uploads a PDF as alice in the chat, at the domain's clock, and
// returns its id.
func attach(t *testing.T, c *Core, tenant, session string) string {
	t.Helper()
	at, err := c.Attach(context.Background(), Agent{Tenant: tenant, ID: "alice", IsAgent: true}, session, "application/pdf", "offer.pdf", []byte("%PDF-1.4 offer"))
	if err != nil {
		t.Fatal(err)
	}
	return at.ID
}

// served reports whether GET /media/<id> still finds the attachment
// (PublicAttachment; the gateway answers core.ErrNotFound with 404).
func served(t *testing.T, c *Core, id string) bool {
	t.Helper()
	_, err := c.PublicAttachment(context.Background(), id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// Retention deletes the tenant's attachments uploaded before the cutoff,
// those of a chat still open too, and keeps newer ones and other
// tenants'.
func TestRetentionPurgesAgentsAttachments(t *testing.T) {
	c, st := newStoreCore(t)
	openChat(t, st, "acme", "s1", "+41790000001")
	openChat(t, st, "other", "s1", "+41790000001")
	now := time.Now()
	c.now = func() time.Time { return now.Add(-48 * time.Hour) }
	oldAcme, oldOther := attach(t, c, "acme", "s1"), attach(t, c, "other", "s1")
	c.now = func() time.Time { return now.Add(-time.Hour) }
	recentAcme := attach(t, c, "acme", "s1")

	counts, err := c.PurgeBefore(context.Background(), "acme", now.Add(-24*time.Hour))
	if err != nil || counts["attachments"] != 1 {
		t.Errorf("PurgeBefore = %v, %v; want acme's older attachment purged", counts, err)
	}
	for _, a := range []struct {
		name, id string
		kept     bool
	}{{"acme's older attachment", oldAcme, false}, {"acme's recent attachment", recentAcme, true}, {"the other tenant's older attachment", oldOther, true}} {
		if kept := served(t, c, a.id); kept != a.kept {
			t.Errorf("%s (%s) served after the purge = %v, want %v", a.name, a.id, kept, a.kept)
		}
	}
}

// Erasing a customer deletes the attachments of their sessions, SMS and
// WhatsApp, and no other customer's or tenant's.
func TestEraseCustomerDeletesTheirAttachments(t *testing.T) {
	c, st := newStoreCore(t)
	openChat(t, st, "acme", "s1", "+41790000001")
	openChat(t, st, "acme", "s2", "whatsapp:+41790000001")
	openChat(t, st, "acme", "s3", "+41790000002")
	openChat(t, st, "other", "s1", "+41790000001")
	erased := []string{attach(t, c, "acme", "s1"), attach(t, c, "acme", "s1"), attach(t, c, "acme", "s2")}
	anotherCustomer, anotherTenant := attach(t, c, "acme", "s3"), attach(t, c, "other", "s1")

	req := &configv1.CustomerErasureRequested{TenantId: "acme", Address: "+41790000001", ErasureId: "er_1"}
	counts, err := c.EraseCustomer(context.Background(), req)
	if err != nil || counts["attachments"] != 3 || counts["sessions_masked"] != 2 {
		t.Errorf("EraseCustomer = %v, %v; want the 3 attachments of the customer's 2 sessions", counts, err)
	}
	for _, id := range erased {
		if served(t, c, id) {
			t.Errorf("the erased customer's attachment %s is still served", id)
		}
	}
	if !served(t, c, anotherCustomer) {
		t.Error("another customer's attachment was deleted")
	}
	if !served(t, c, anotherTenant) {
		t.Error("the same customer's attachment in another tenant was deleted")
	}
	counts, err = c.EraseCustomer(context.Background(), req)
	if err != nil || counts["attachments"] != 0 {
		t.Errorf("EraseCustomer again = %v, %v; want nothing left", counts, err)
	}
}
