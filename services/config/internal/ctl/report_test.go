package ctl_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/config/internal/configtest"
	"github.com/switchboard-cc/switchboard/services/config/internal/ctl"
	"github.com/switchboard-cc/switchboard/services/reporting"
)

// The report commands against a running reporting service that consumed
// two sessions' events and rolled them up, for a tenant in Europe/Zurich.
func TestReportCommands(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	conf := configtest.Start(t)
	if _, err := configv1.NewTenantServiceClient(conf.Platform(t)).CreateTenant(ctx, &configv1.CreateTenantRequest{
		Tenant: &configv1.Tenant{Id: "acme", DisplayName: "Acme", TimeZone: "Europe/Zurich", MessagePrices: []*configv1.MessagePrice{
			{Channel: messagingv1.Channel_CHANNEL_SMS, Direction: configv1.PriceDirection_PRICE_DIRECTION_INBOUND, Country: "*", Price: "0.0079", Currency: "USD"},
			{Channel: messagingv1.Channel_CHANNEL_SMS, Direction: configv1.PriceDirection_PRICE_DIRECTION_OUTBOUND, Country: "CH", Price: "0.0654", Currency: "USD"},
		}}}); err != nil {
		t.Fatal(err)
	}
	keys, b := conf.AuthKeys, conf.Bus
	mc, err := mongodb.Connect(ctx, mongotest.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := reporting.Defaults()
	cfg.Database, cfg.AuthKeys, cfg.RollupDelay = mongotest.DatabaseName(t), conf.AuthHex, 0
	t.Cleanup(func() {
		_ = mc.Database(cfg.Database).Drop(context.Background())
		_ = mc.Disconnect(context.Background())
	})
	// Streams first, so the events can be published before Run starts.
	if err := b.EnsureStreams(ctx, subjects.StreamOptions{}, subjects.StreamSession, subjects.StreamDistribution, subjects.StreamOutbound,
		subjects.StreamWorkflow, subjects.StreamDeadLetter, subjects.StreamTranscript); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(day.Add(d)) }
	for _, e := range []struct {
		subject string
		msg     proto.Message
	}{
		{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: "ss_1", ServiceId: "sales",
			Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS, CustomerAddress: "+41791234567"}, StartedAt: ts(9 * time.Hour)}},
		{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: "ss_1", MessageId: "SM1", Direction: sessionv1.Direction_DIRECTION_INBOUND, NumSegments: 2}},
		{subjects.OutboundSent("acme"), &outboundv1.OutboundMessageSent{TenantId: "acme", SessionId: "ss_1", RequestId: "rq1", NumSegments: 1}},
		{subjects.WorkflowStepCompleted("acme"), &workflowv1.StepCompleted{TenantId: "acme", SessionId: "ss_1", Step: 1, Activity: "hello", ActivityType: "message", ActivityLabel: "Greeting", Branch: "next", OccurredAt: ts(9*time.Hour + time.Second)}},
		{subjects.WorkflowStepCompleted("acme"), &workflowv1.StepCompleted{TenantId: "acme", SessionId: "ss_1", Step: 2, Activity: "queue", ActivityType: "queue_task", Branch: "queued", OccurredAt: ts(9*time.Hour + 10*time.Second)}},
		{subjects.TaskQueued("acme"), &distributionv1.TaskQueued{TenantId: "acme", SessionId: "ss_1", ServiceId: "sales", QueuedAt: ts(9*time.Hour + 10*time.Second)}},
		{subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", SessionId: "ss_1", AgentId: "ann", AcceptedAt: ts(9*time.Hour + 22*time.Second)}},
		{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: "ss_2", ServiceId: "sales",
			Conversation: &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_SMS}, StartedAt: ts(10 * time.Hour)}},
		{subjects.TaskQueued("acme"), &distributionv1.TaskQueued{TenantId: "acme", SessionId: "ss_2", QueuedAt: ts(10 * time.Hour)}},
		{subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_1", AgentId: "ann", Outcome: sessionv1.Outcome_OUTCOME_HANDLED, EndedAt: ts(9*time.Hour + 5*time.Minute)}},
		{subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: "ss_2", Outcome: sessionv1.Outcome_OUTCOME_ABANDONED, EndedAt: ts(10*time.Hour + time.Minute)}},
	} {
		if _, err := b.Publish(ctx, e.subject, e.msg); err != nil {
			t.Fatal(err)
		}
	}
	msg := nats.NewMsg(subjects.Transcript("acme", "ss_1"))
	msg.Data = []byte(`{"k":"m","m":{"ID":"m1","Direction":"inbound","Sender":"customer","Body":"is my order late?","At":"2026-03-02T09:00:00Z"}}`)
	if _, err := b.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- reporting.Run(rctx, cfg, reporting.Deps{GRPCListener: lis, Bus: b, Mongo: mc, AuthKeys: keys, ConfigConn: conf.Service(t)}, log)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	env := map[string]string{ctl.EnvReportingAddr: lis.Addr().String(), ctl.EnvAuthKeys: conf.AuthHex}

	// Rolled up once both ends are applied.
	var out, errOut string
	var code int
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, errOut, code = run(t, env, "", "report", "summarize", "--tenant", "acme", "--from", "2026-03-02", "--to", "2026-03-03", "--csv")
		if code == 0 && strings.Contains(out, "\n2,1,1,2,1,") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("summary: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// By agent, as a table: ann answered after 12 s; the dates are
	// midnights in the tenant's zone, which the summary says.
	out, errOut, code = run(t, env, "", "report", "summarize", "--tenant", "acme", "--from", "2026-03-02", "--to", "2026-03-03", "--by", "agent")
	if code != 0 || !strings.Contains(out, "ann") || !strings.Contains(out, "12s") || !strings.Contains(errOut, "2 rows") ||
		!strings.Contains(errOut, "2026-03-02T00:00:00+01:00 to 2026-03-03T00:00:00+01:00 (Europe/Zurich)") {
		t.Errorf("summary by agent in the tenant's zone: exit %d\n%s%s", code, out, errOut)
	}
	// Another zone on request.
	out, errOut, code = run(t, env, "", "report", "summarize", "--tenant", "acme", "--from", "2026-03-02T09:30:00Z", "--to", "2026-03-03", "--tz", "UTC", "--by", "bucket", "--bucket", "hour")
	if code != 0 || !strings.Contains(out, "2026-03-02 10:00") || strings.Contains(out, "09:00") || !strings.Contains(errOut, "(UTC)") {
		t.Errorf("summary by hour in UTC: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = run(t, env, "", "report", "summarize", "--tenant", "acme", "--from", "2026-03-02", "--by", "colour")
	if code == 0 || !strings.Contains(errOut, `unknown dimension "colour"`) {
		t.Errorf("bad dimension: exit %d\n%s", code, errOut)
	}

	file := filepath.Join(t.TempDir(), "sessions.csv")
	_, errOut, code = run(t, env, "", "report", "export", "--tenant", "acme", "--from", "2026-03-02", "--to", "2026-03-03", "-o", file)
	data, _ := os.ReadFile(file)
	if code != 0 || !strings.Contains(errOut, "2 sessions written") || strings.Count(string(data), "\n") != 3 || !strings.Contains(string(data), "ss_2,sales") {
		t.Errorf("export: exit %d\n%s\n%s", code, errOut, data)
	}

	// Today's running totals: the sessions above are of another day, so
	// today's one row counts none; the day is the tenant's.
	out, errOut, code = run(t, env, "", "report", "today", "--tenant", "acme", "--once", "--every", "1s")
	if code != 0 || !strings.Contains(out, "today since") || !strings.Contains(out, "(Europe/Zurich)") || !strings.Contains(out, "sessions") {
		t.Errorf("today: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = run(t, env, "", "report", "today", "--tenant", "acme", "--once", "--every", "1ms")
	if code == 0 || !strings.Contains(errOut, "interval") {
		t.Errorf("today with a bad interval: exit %d\n%s", code, errOut)
	}

	// One session with its segments, estimated cost (2 in at 0.0079, 1 out
	// at the Swiss 0.0654) and workflow path.
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, errOut, code = run(t, env, "", "report", "session", "ss_1", "--tenant", "acme", "--tz", "Europe/Zurich")
		if code == 0 && strings.Contains(out, "2 in, 1 out") && strings.Contains(out, "queued") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"+41791234567 (CH)", "0.0812 USD (an estimate", "2026-03-02 10:00:00", "STEP", "hello (Greeting)", "Queue Task", "queued"} {
		if !strings.Contains(out, want) {
			t.Errorf("session: no %q in\n%s", want, out)
		}
	}
	// The services it was queued in and the agents who accepted it.
	for _, want := range [][]string{{"queued", "in", "sales"}, {"accepted", "by", "ann"}} {
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool { return slices.Equal(strings.Fields(l), want) }) {
			t.Errorf("session: no line %q in\n%s", want, out)
		}
	}
	if _, errOut, code = run(t, env, "", "report", "session", "ss_404", "--tenant", "acme"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("unknown session: exit %d\n%s", code, errOut)
	}

	out, errOut, code = run(t, env, "", "report", "transcript", "ss_1", "--tenant", "acme")
	if code != 0 || !strings.Contains(out, "is my order late?") || !strings.Contains(out, "customer") {
		t.Errorf("transcript: exit %d\n%s%s", code, out, errOut)
	}
}
