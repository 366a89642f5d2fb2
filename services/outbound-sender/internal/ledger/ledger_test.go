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

// Reports applied concurrently, repeated and out of order never lose one
// and never move the status back.
func TestReportsCommute(t *testing.T) {
	s := New(mongotest.Database(t))
	t.Cleanup(s.Close)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, _, err := s.Decide(ctx, &Outcome{Tenant: "t", RequestID: "r1", State: StateSent, TwilioSID: "SM1", DecidedAt: now},
		&Message{Tenant: "t", SID: "SM1", RequestID: "r1", Status: "queued"}); err != nil {
		t.Fatal(err)
	}
	reports := []Change{
		{Status: "read", At: now.Add(3 * time.Second)},
		{Status: "sent", At: now.Add(time.Second)},
		{Status: "delivered", At: now.Add(2 * time.Second)},
		{Status: "sent", At: now.Add(time.Second)},     // a redelivery
		{Status: "sent", At: now.Add(5 * time.Second)}, // Twilio repeating itself
	}
	var wg sync.WaitGroup
	for _, c := range reports {
		wg.Go(func() {
			if _, err := s.Report(ctx, "t", "SM1", c, now); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	m, err := s.Message(ctx, "t", "SM1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != "read" || len(m.Timeline) != 3 {
		t.Errorf("message = %+v, want read with three reports", m)
	}
	before, err := s.Report(ctx, "t", "SM1", Change{Status: "delivered", At: now.Add(2 * time.Second)}, now)
	if err != nil || before.Status != "read" || len(before.Timeline) != 3 {
		t.Errorf("Report of a known report = %+v, %v; want the message as it was", before, err)
	}
	if _, err := s.Report(ctx, "t", "SM404", Change{Status: "sent", At: now}, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("Report of an unknown SID = %v, want ErrNotFound", err)
	}
}

func TestSettle(t *testing.T) {
	for _, tc := range []struct {
		name     string
		created  string
		reports  []Change
		wantStat string
		wantCode int32
		wantLen  int
	}{
		{"nothing reported", "queued", nil, "queued", 0, 0},
		{"forward only", "queued", []Change{{Status: "delivered"}, {Status: "sent"}}, "delivered", 0, 2},
		{"failure keeps its code", "accepted", []Change{{Status: "failed", ErrorCode: 30003}, {Status: "undelivered", ErrorCode: 30005}}, "failed", 30003, 2},
		{"read after a failure", "queued", []Change{{Status: "undelivered", ErrorCode: 30005}, {Status: "read"}}, "read", 30005, 2},
		{"repeats shown once", "queued", []Change{{Status: "sent"}, {Status: "sent", At: time.Unix(5, 0)}}, "sent", 0, 1},
	} {
		m := &Message{Status: tc.created, Timeline: tc.reports}
		m.Settle()
		if m.Status != tc.wantStat || m.ErrorCode != tc.wantCode || len(m.Timeline) != tc.wantLen {
			t.Errorf("%s: got %s/%d with %d reports, want %s/%d with %d", tc.name, m.Status, m.ErrorCode, len(m.Timeline), tc.wantStat, tc.wantCode, tc.wantLen)
		}
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
