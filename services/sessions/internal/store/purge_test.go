package store_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/natsembed/natstest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

func newStoreBus(t *testing.T) (*store.Store, *bus.Bus, *mongo.Database) {
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
	db := mongotest.Database(t)
	st, err := store.New(ctx, db, b.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, b, db
}

// seed stores, for tenant and session, an ended session, an inbound and an
// outbound message at at, the outbound message's document as versions
// before the transcript was its only record stored it, and the session in
// customer's history.
func seed(t *testing.T, st *store.Store, db *mongo.Database, tenant, session, customer string, at time.Time, ended bool) {
	t.Helper()
	ctx := context.Background()
	sess := &store.Session{Tenant: tenant, ID: session, State: store.StateActive, StartedAt: at, CustomerName: "Ann",
		Conversation: store.Conversation{Channel: "sms", Customer: customer, Business: "+41440000000"}, ConversationKey: "sms:" + customer,
		Parameters: map[string]string{"order": "42"}}
	if err := st.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if ended {
		if _, err := st.End(ctx, tenant, session, "completed", "", at); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []*store.Message{
		{Tenant: tenant, ID: session + "-in", Direction: "inbound", Sender: "customer", Body: "hello", At: at},
		{Tenant: tenant, ID: session + "-out", Direction: "outbound", Sender: "agent", Body: "hi", Status: "pending", At: at},
	} {
		if _, err := st.AddMessage(ctx, session, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Collection("messages").InsertOne(ctx, bson.M{
		"_id": tenant + "/" + session + "/" + session + "-out", "tenant": tenant, "session_key": tenant + "/" + session,
		"message_id": session + "-out", "direction": "outbound", "sender": "agent", "body": "hi", "at": at, "status": "delivered",
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordHistory(ctx, tenant, customer, store.HistoryEntry{SessionID: session, StartedAt: at, Channel: "sms"}); err != nil {
		t.Fatal(err)
	}
}

func transcriptLen(t *testing.T, st *store.Store, tenant, session string) int {
	t.Helper()
	msgs, err := st.Transcript(context.Background(), tenant, session)
	if err != nil {
		t.Fatal(err)
	}
	return len(msgs)
}

func TestRetentionPurgesOnlyWhatIsOlderOfTheTenant(t *testing.T) {
	st, b, db := newStoreBus(t)
	ctx := context.Background()
	now := time.Now().UTC()
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Hour)
	seed(t, st, db, "acme", "old", "+41790000001", old, true)
	seed(t, st, db, "acme", "old-active", "+41790000001", old, false)
	seed(t, st, db, "acme", "gone", "+41790000002", old, true)
	seed(t, st, db, "other", "old", "+41790000001", old, true)
	// Transcript entries are dated by the stream: everything so far is
	// older than the cutoff, what follows newer.
	info, err := b.JS.Stream(ctx, subjects.StreamTranscript)
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	streamCutoff := si.State.LastTime.Add(time.Nanosecond)
	seed(t, st, db, "acme", "new", "+41790000001", recent, true)

	n, err := st.PurgeTranscriptsBefore(ctx, "acme", streamCutoff)
	if err != nil || n != 6 {
		t.Errorf("PurgeTranscriptsBefore = %d, %v; want the 6 entries of acme's 3 older sessions", n, err)
	}
	for _, c := range []struct {
		tenant, session string
		want            int
	}{{"acme", "old", 0}, {"acme", "old-active", 0}, {"acme", "gone", 0}, {"acme", "new", 2}, {"other", "old", 2}} {
		if got := transcriptLen(t, st, c.tenant, c.session); got != c.want {
			t.Errorf("transcript %s/%s after the purge: %d messages, want %d", c.tenant, c.session, got, c.want)
		}
	}
	if n, err := st.PurgeTranscriptsBefore(ctx, "acme", streamCutoff); err != nil || n != 0 {
		t.Errorf("PurgeTranscriptsBefore again = %d, %v; want 0", n, err)
	}

	cutoff := now.Add(-24 * time.Hour)
	if n, err := st.PurgeMessagesBefore(ctx, "acme", cutoff); err != nil || n != 3 {
		t.Errorf("PurgeMessagesBefore = %d, %v; want acme's 3 older outbound messages", n, err)
	}
	if m, err := st.Message(ctx, "acme", "new", "new-out"); err != nil || m == nil {
		t.Errorf("acme's recent message after the purge: %v, %v", m, err)
	}
	if m, err := st.Message(ctx, "other", "old", "old-out"); err != nil || m == nil {
		t.Errorf("the other tenant's old message after the purge: %v, %v", m, err)
	}
	if n, err := st.PurgeSessionsBefore(ctx, "acme", cutoff); err != nil || n != 2 {
		t.Errorf("PurgeSessionsBefore = %d, %v; want acme's 2 older ended sessions (not the active one)", n, err)
	}
	for _, c := range []struct {
		tenant, session string
		kept            bool
	}{{"acme", "old", false}, {"acme", "gone", false}, {"acme", "old-active", true}, {"acme", "new", true}, {"other", "old", true}} {
		_, err := st.Session(ctx, c.tenant, c.session)
		if kept := err == nil; kept != c.kept {
			t.Errorf("session %s/%s kept = %v (%v), want %v", c.tenant, c.session, kept, err, c.kept)
		}
	}
	if n, err := st.PurgeHistoryBefore(ctx, "acme", cutoff); err != nil || n != 3 {
		t.Errorf("PurgeHistoryBefore = %d, %v; want acme's 3 older history entries", n, err)
	}
	if h, _ := st.History(ctx, "acme", "+41790000001"); len(h) != 1 || h[0].SessionID != "new" {
		t.Errorf("acme's customer's history after the purge: %+v, want only the new session", h)
	}
	if h, _ := st.History(ctx, "acme", "+41790000002"); len(h) != 0 {
		t.Errorf("a history with only older sessions after the purge: %+v, want none", h)
	}
	if h, _ := st.History(ctx, "other", "+41790000001"); len(h) != 1 {
		t.Errorf("the other tenant's history after the purge: %+v, want its session", h)
	}
}

func TestEraseCustomerStore(t *testing.T) {
	st, _, db := newStoreBus(t)
	ctx := context.Background()
	at := time.Now().Add(-time.Hour)
	seed(t, st, db, "acme", "s1", "+41790000001", at, true)
	seed(t, st, db, "acme", "s2", "whatsapp:+41790000001", at, true)
	seed(t, st, db, "acme", "s3", "+41790000002", at, true)
	seed(t, st, db, "other", "s1", "+41790000001", at, true)

	sessions, err := st.CustomerSessions(ctx, "acme", "+41790000001")
	if err != nil || len(sessions) != 2 {
		t.Fatalf("CustomerSessions = %d, %v; want s1 and s2 (SMS and WhatsApp)", len(sessions), err)
	}
	for _, sess := range sessions {
		if n, err := st.PurgeTranscript(ctx, "acme", sess.ID); err != nil || n != 2 {
			t.Errorf("PurgeTranscript(%s) = %d, %v; want 2", sess.ID, n, err)
		}
		if changed, err := st.MaskCustomer(ctx, sess); err != nil || !changed {
			t.Errorf("MaskCustomer(%s) = %v, %v", sess.ID, changed, err)
		}
	}
	if n, err := st.DeleteSessionMessages(ctx, "acme", []string{"s1", "s2"}); err != nil || n != 2 {
		t.Errorf("DeleteSessionMessages = %d, %v; want 2", n, err)
	}
	if forgot, err := st.ForgetHistory(ctx, "acme", "+41790000001"); err != nil || !forgot {
		t.Errorf("ForgetHistory = %v, %v", forgot, err)
	}
	s1, err := st.Session(ctx, "acme", "s1")
	if err != nil || s1.Conversation.Customer != erasure.Masked || s1.CustomerName != "" || len(s1.Parameters) != 0 || s1.ConversationKey != erasure.Masked {
		t.Errorf("s1 after the erasure: %+v, %v; want the customer masked, name and parameters gone", s1, err)
	}
	if transcriptLen(t, st, "acme", "s3") != 2 || transcriptLen(t, st, "other", "s1") != 2 {
		t.Error("another customer's or tenant's transcript was touched")
	}
	if s3, _ := st.Session(ctx, "acme", "s3"); s3 == nil || s3.Conversation.Customer != "+41790000002" {
		t.Errorf("another customer's session: %+v", s3)
	}
	if o, _ := st.Session(ctx, "other", "s1"); o == nil || o.Conversation.Customer != "+41790000001" {
		t.Errorf("the other tenant's session: %+v", o)
	}
	if h, _ := st.History(ctx, "other", "+41790000001"); len(h) != 1 {
		t.Errorf("the other tenant's history: %+v", h)
	}
	// Again: nothing left.
	sessions, err = st.CustomerSessions(ctx, "acme", "+41790000001")
	if err != nil || len(sessions) != 0 {
		t.Errorf("CustomerSessions after the erasure = %d, %v; want none", len(sessions), err)
	}
	if forgot, err := st.ForgetHistory(ctx, "acme", "+41790000001"); err != nil || forgot {
		t.Errorf("ForgetHistory again = %v, %v; want nothing", forgot, err)
	}
}
