package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// putAttachment stores an agent's attachment of tenant's session, uploaded
// at at, and returns its id.
func putAttachment(t *testing.T, st *store.Store, tenant, session string, at time.Time) string {
	t.Helper()
	a := &store.Attachment{ID: store.NewAttachmentID(), Tenant: tenant, SessionID: session, AgentID: "alice",
		ContentType: "application/pdf", Filename: "offer.pdf", Data: []byte("%PDF-1.4 offer"), At: at}
	if err := st.PutAttachment(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// attachmentKept reports whether the attachment can still be read.
func attachmentKept(t *testing.T, st *store.Store, id string) bool {
	t.Helper()
	_, err := st.Attachment(context.Background(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestRetentionPurgesOlderAttachmentsOfTheTenant(t *testing.T) {
	st, _, _ := newStoreBus(t)
	ctx := context.Background()
	now := time.Now().UTC()
	old, recent, cutoff := now.Add(-48*time.Hour), now.Add(-time.Hour), now.Add(-24*time.Hour)
	oldA := putAttachment(t, st, "acme", "s1", old)
	oldB := putAttachment(t, st, "acme", "s2", old)
	recentA := putAttachment(t, st, "acme", "s1", recent)
	otherOld := putAttachment(t, st, "other", "s1", old)

	if n, err := st.PurgeAttachmentsBefore(ctx, "acme", cutoff); err != nil || n != 2 {
		t.Errorf("PurgeAttachmentsBefore = %d, %v; want acme's 2 older attachments", n, err)
	}
	for _, c := range []struct {
		name, id string
		kept     bool
	}{{"acme's older one", oldA, false}, {"acme's other older one", oldB, false}, {"acme's recent one", recentA, true}, {"the other tenant's older one", otherOld, true}} {
		if kept := attachmentKept(t, st, c.id); kept != c.kept {
			t.Errorf("%s (%s) kept = %v, want %v", c.name, c.id, kept, c.kept)
		}
	}
	if n, err := st.PurgeAttachmentsBefore(ctx, "acme", cutoff); err != nil || n != 0 {
		t.Errorf("PurgeAttachmentsBefore again = %d, %v; want 0", n, err)
	}
}

func TestDeleteSessionAttachments(t *testing.T) {
	st, _, _ := newStoreBus(t)
	ctx := context.Background()
	at := time.Now().Add(-time.Hour)
	erased := []string{putAttachment(t, st, "acme", "s1", at), putAttachment(t, st, "acme", "s1", at), putAttachment(t, st, "acme", "s2", at)}
	anotherSession := putAttachment(t, st, "acme", "s3", at)
	anotherTenant := putAttachment(t, st, "other", "s1", at)

	if n, err := st.DeleteSessionAttachments(ctx, "acme", []string{"s1", "s2"}); err != nil || n != 3 {
		t.Errorf("DeleteSessionAttachments = %d, %v; want the 3 of acme's s1 and s2", n, err)
	}
	for _, id := range erased {
		if attachmentKept(t, st, id) {
			t.Errorf("attachment %s of an erased session is still there", id)
		}
	}
	if !attachmentKept(t, st, anotherSession) {
		t.Error("another session's attachment was deleted")
	}
	if !attachmentKept(t, st, anotherTenant) {
		t.Error("the other tenant's attachment of a session with the same id was deleted")
	}
	if n, err := st.DeleteSessionAttachments(ctx, "acme", []string{"s1", "s2"}); err != nil || n != 0 {
		t.Errorf("DeleteSessionAttachments again = %d, %v; want 0", n, err)
	}
}
