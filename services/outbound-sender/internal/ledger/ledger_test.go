package ledger

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

func TestOneOutcomePerRequest(t *testing.T) {
	s := New(mongotest.Database(t))
	t.Cleanup(s.Close)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	r := &Request{Tenant: "t", RequestID: "r1", Body: "hi", Attempts: 1, FirstCallAt: now, LeaseUntil: now.Add(time.Minute), CreatedAt: now}
	if _, fresh, err := s.Begin(ctx, r); err != nil || !fresh {
		t.Fatalf("Begin = fresh %v, %v", fresh, err)
	}
	got, fresh, err := s.Begin(ctx, &Request{Tenant: "t", RequestID: "r1", Body: "other"})
	if err != nil || fresh || got.Body != "hi" || got.Attempts != 1 {
		t.Fatalf("second Begin = %+v fresh %v, %v; want the stored request", got, fresh, err)
	}
	if _, err := s.Outcome(ctx, "t", "r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Outcome before any = %v, want ErrNotFound", err)
	}
	out := &Outcome{Tenant: "t", RequestID: "r1", State: StateSent, TwilioSID: "SM1", Status: "queued", Attempts: 1, DecidedAt: now}
	msg := &Message{Tenant: "t", SID: "SM1", RequestID: "r1", Status: "queued", UpdatedAt: now}
	if o, mine, err := s.Decide(ctx, out, msg); err != nil || !mine || o.TwilioSID != "SM1" {
		t.Fatalf("Decide = %+v mine %v, %v", o, mine, err)
	}
	// A second decision (say, a failure recorded by a slower process) loses.
	o, mine, err := s.Decide(ctx, &Outcome{Tenant: "t", RequestID: "r1", State: StateFailed, DecidedAt: now}, nil)
	if err != nil || mine || o.State != StateSent {
		t.Fatalf("second Decide = %+v mine %v, %v; want the sent outcome", o, mine, err)
	}
	// Another request cannot claim the same SID.
	if _, _, err := s.Decide(ctx, &Outcome{Tenant: "t", RequestID: "r2", State: StateSent, TwilioSID: "SM1", DecidedAt: now},
		&Message{Tenant: "t", SID: "SM1", RequestID: "r2", Status: "queued"}); err == nil {
		t.Fatal("a second request took SM1")
	}
	if err := s.AddResend(ctx, "t", "r1", "r3"); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.Outcome(ctx, "t", "r1"); len(o.ResentAs) != 1 || o.ResentAs[0] != "r3" {
		t.Errorf("resent_as = %v", o.ResentAs)
	}
	if err := s.StartAttempt(ctx, "t", "r1", 2, now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Request(ctx, "t", "r1"); got.Attempts != 2 || !got.LeaseUntil.Equal(now.Add(time.Hour)) {
		t.Errorf("request after StartAttempt = %+v", got)
	}
}

// Concurrent status writers never lose a report (optimistic versions).
func TestUpdateMessageConcurrently(t *testing.T) {
	s := New(mongotest.Database(t))
	t.Cleanup(s.Close)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, _, err := s.Decide(ctx, &Outcome{Tenant: "t", RequestID: "r1", State: StateSent, TwilioSID: "SM1", DecidedAt: now},
		&Message{Tenant: "t", SID: "SM1", RequestID: "r1", Status: "queued"}); err != nil {
		t.Fatal(err)
	}
	statuses := []string{"sent", "delivered", "read"}
	var wg sync.WaitGroup
	for _, st := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.UpdateMessage(ctx, "t", "SM1", func(m *Message) bool {
				m.Timeline = append(m.Timeline, Change{Status: st, At: now})
				if Rank(st) > Rank(m.Status) {
					m.Status = st
				}
				return true
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	m, err := s.Message(ctx, "t", "SM1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != "read" || len(m.Timeline) != 3 || m.Version != 3 {
		t.Errorf("message = %+v, want read with three reports", m)
	}
}

func TestRankNeverGoesBack(t *testing.T) {
	order := []string{"queued", "sending", "sent", "delivered", "read"}
	for i := 1; i < len(order); i++ {
		if Rank(order[i]) <= Rank(order[i-1]) {
			t.Errorf("%s does not rank above %s", order[i], order[i-1])
		}
	}
	if Rank("accepted") != Rank("queued") || Rank("failed") <= Rank("delivered") || Rank("read") <= Rank("failed") {
		t.Error("accepted, failed or read rank wrongly")
	}
}
