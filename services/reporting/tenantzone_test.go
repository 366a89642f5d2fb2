package reporting_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// until polls cond (a guard against hanging, not a time requirement).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s", what)
		}
	}
}

func dial(t *testing.T, addr string, keys *authn.Keys, c authn.Claims) *grpc.ClientConn {
	t.Helper()
	tok, err := keys.Mint(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Reporting learns a tenant's zone from config: Summarize answers in it
// when asked for no zone, its days are the tenant's local days, and a
// change of zone in config is followed.
func TestTenantTimeZoneFromConfig(t *testing.T) {
	ctx := context.Background()
	b, c, tenants := withConfig(t, &configv1.Tenant{Id: "acme", DisplayName: "Acme", TimeZone: "Europe/Zurich"})

	seq := 0
	publish := func(at time.Time) {
		t.Helper()
		seq++
		id := "ss_" + string(rune('a'+seq))
		for _, m := range []struct {
			subject string
			msg     proto.Message
		}{
			{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: id, ServiceId: "sales", StartedAt: timestamppb.New(at)}},
			{subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: id, Outcome: sessionv1.Outcome_OUTCOME_HANDLED, EndedAt: timestamppb.New(at.Add(time.Minute))}},
		} {
			if _, err := b.Publish(ctx, m.subject, m.msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	byDay := func(zone string, from, to time.Time) (*reportingv1.SummarizeResponse, map[string]int64) {
		t.Helper()
		res, err := c.Summarize(ctx, &reportingv1.SummarizeRequest{TenantId: "acme", From: timestamppb.New(from), To: timestamppb.New(to), TimeZone: zone, GroupBy: []string{"bucket"}})
		if err != nil {
			t.Fatalf("summarize in %q: %v", zone, err)
		}
		loc, err := time.LoadLocation(res.GetTimeZone())
		if err != nil {
			t.Fatalf("the answer's zone %q: %v", res.GetTimeZone(), err)
		}
		out := map[string]int64{}
		for _, r := range res.GetRows() {
			out[r.GetBucketStart().AsTime().In(loc).Format("2006-01-02 15:04")] += r.GetSessions()
		}
		return res, out
	}

	// Sessions either side of Zurich's next midnight, from which the
	// tenant's days have their own documents (and before New York's next
	// midnight, where the move below starts the New York days).
	zurich, _ := time.LoadLocation("Europe/Zurich")
	y, m, d := time.Now().In(zurich).Date()
	day := time.Date(y, m, d+1, 0, 0, 0, 0, zurich) // tomorrow
	dayKey, beforeKey := day.Format("2006-01-02")+" 00:00", day.AddDate(0, 0, -1).Format("2006-01-02")+" 00:00"
	publish(day.Add(-30 * time.Minute)) // today, late evening
	publish(day.Add(30 * time.Minute))  // tomorrow, just after midnight (still today in UTC)
	publish(day.Add(4*time.Hour + 30*time.Minute))
	var res *reportingv1.SummarizeResponse
	var got map[string]int64
	total := func(zone, bucket string, from, to time.Time) int64 {
		res, err := c.Summarize(ctx, &reportingv1.SummarizeRequest{TenantId: "acme", From: timestamppb.New(from), To: timestamppb.New(to), TimeZone: zone, GroupBy: []string{"bucket"}, Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range res.GetRows() {
			n += r.GetSessions()
		}
		return n
	}
	// Every document of the three written (a batch's are written at once).
	until(t, "the sessions rolled up", func() bool {
		res, got = byDay("", day.AddDate(0, 0, -1), day.AddDate(0, 0, 1))
		return got[beforeKey]+got[dayKey] == 3 && total("UTC", "day", day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)) == 3 &&
			total("UTC", "hour", day.Add(-2*time.Hour), day.Add(6*time.Hour)) == 3
	})
	if res.GetTimeZone() != "Europe/Zurich" {
		t.Errorf("with no zone asked for, the answer is in %q, want the tenant's Europe/Zurich", res.GetTimeZone())
	}
	if len(got) != 2 || got[beforeKey] != 1 || got[dayKey] != 2 {
		t.Errorf("Zurich days: got %v, want %s: 1, %s: 2", got, beforeKey, dayKey)
	}
	// The tenant's day is one document of its own.
	if res, _ := byDay("", day, day.AddDate(0, 0, 1)); res.GetDocumentsRead() != 1 {
		t.Errorf("a Zurich day read %d documents, want 1", res.GetDocumentsRead())
	}
	// UTC on request: the first two on one UTC day.
	if res, got := byDay("UTC", day.Add(-24*time.Hour), day.Add(24*time.Hour)); res.GetTimeZone() != "UTC" || got[day.Add(-30*time.Minute).UTC().Format("2006-01-02")+" 00:00"] != 2 {
		t.Errorf("UTC days: %v in %q (%v)", got, res.GetTimeZone(), res)
	}

	// The tenant moves to New York.
	cur, err := tenants.GetTenant(ctx, &configv1.GetTenantRequest{Id: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	cur.GetTenant().TimeZone = "America/New_York"
	if _, err := tenants.UpdateTenant(ctx, &configv1.UpdateTenantRequest{Tenant: cur.GetTenant()}); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	until(t, "Summarize follows the new zone", func() bool {
		res, _ := byDay("", day, day.AddDate(0, 0, 1))
		return res.GetTimeZone() == "America/New_York"
	})
	ny, _ := time.LoadLocation("America/New_York")
	y, m, d = time.Now().In(ny).Date()
	nyDay := time.Date(y, m, d+3, 0, 0, 0, 0, ny)
	nyKey := nyDay.Format("2006-01-02") + " 00:00"
	publish(nyDay.Add(30 * time.Minute))
	publish(nyDay.Add(23*time.Hour + 30*time.Minute))
	publish(nyDay.Add(24*time.Hour + 30*time.Minute)) // the next day
	until(t, "the New York sessions rolled up", func() bool {
		_, got := byDay("", nyDay, nyDay.AddDate(0, 0, 2))
		return len(got) == 2 && got[nyKey] == 2
	})
	if res, got := byDay("", nyDay, nyDay.AddDate(0, 0, 1)); got[nyKey] != 2 || res.GetDocumentsRead() != 1 {
		t.Errorf("a New York day after the move: %v from %d documents, want %s: 2 from its own document", got, res.GetDocumentsRead(), nyKey)
	}
	// The Zurich days from before the move are still right in Zurich.
	if _, got := byDay("Europe/Zurich", day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)); got[beforeKey] != 1 || got[dayKey] != 2 {
		t.Errorf("Zurich days after the move: %v", got)
	}
	// In New York, the day of those sessions came before its period: it is
	// made of UTC hours, and right.
	nyBefore := day.Add(30 * time.Minute).In(ny)
	nyBefore = time.Date(nyBefore.Year(), nyBefore.Month(), nyBefore.Day(), 0, 0, 0, 0, ny)
	// (The sessions are dated tomorrow in Zurich: between Zurich's midnight
	// and New York's, 23:00 to 05:00 UTC, their New York day begins after
	// the move, inside New York's period, and has nothing of theirs.)
	if nyBefore.Before(moved) {
		if res, got := byDay("", nyBefore, nyBefore.AddDate(0, 0, 1)); got[nyBefore.Format("2006-01-02")+" 00:00"] != 3 || res.GetDocumentsRead() < 23 {
			t.Errorf("New York's day of the Zurich sessions: %v from %d documents, want 3 from hours", got, res.GetDocumentsRead())
		}
	}
}
