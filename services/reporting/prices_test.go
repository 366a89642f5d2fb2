package reporting_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/bus"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	configsvc "github.com/switchboard-cc/switchboard/services/config"
	"github.com/switchboard-cc/switchboard/services/reporting"
)

// Segments in and out are counted per session from session.message.added
// and outbound.message.sent, priced with the tenant's table in config
// (the customer's country's row, else "*"), shown on GetSession with the
// workflow's path, and summed by Summarize.
func TestSegmentsCostAndPathFromConfig(t *testing.T) {
	ctx := context.Background()
	const sms = messagingv1.Channel_CHANNEL_SMS
	const in, out = configv1.PriceDirection_PRICE_DIRECTION_INBOUND, configv1.PriceDirection_PRICE_DIRECTION_OUTBOUND
	prices := []*configv1.MessagePrice{
		{Channel: sms, Direction: in, Country: "*", Price: "0.0079", Currency: "USD"},
		{Channel: sms, Direction: out, Country: "*", Price: "0.0079", Currency: "USD"},
		{Channel: sms, Direction: out, Country: "CH", Price: "0.0654", Currency: "USD"},
	}
	b, c, _ := withConfig(t, &configv1.Tenant{Id: "acme", DisplayName: "Acme", MessagePrices: prices})

	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	start := day.Add(10 * time.Hour)
	type ev struct {
		subject string
		msg     proto.Message
	}
	publish := func(evs ...ev) {
		t.Helper()
		for _, e := range evs {
			// Twice: a redelivery counts nothing twice. (A message event
			// is published under its id, as sessions does, so JetStream
			// keeps one: an open session's message counts are added up
			// as they come; its end brings the transcript's.)
			var opts []bus.PublishOption
			if m, ok := e.msg.(*sessionv1.MessageAdded); ok {
				opts = append(opts, bus.MsgID(m.GetSessionId()+":"+m.GetMessageId()+":added"))
			}
			for range 2 {
				if _, err := b.Publish(ctx, e.subject, e.msg, opts...); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	life := func(id, customer string, segsIn, segsOut int32) []ev {
		return []ev{
			{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: id, ServiceId: "sales", StartedAt: timestamppb.New(start),
				Conversation: &messagingv1.ConversationRef{Channel: sms, CustomerAddress: customer, BusinessAddress: "+12025550100"}}},
			{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: id, MessageId: "SM" + id, Direction: sessionv1.Direction_DIRECTION_INBOUND, NumSegments: segsIn}},
			{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: id, MessageId: "rq" + id, Direction: sessionv1.Direction_DIRECTION_OUTBOUND}},
			{subjects.OutboundSent("acme"), &outboundv1.OutboundMessageSent{TenantId: "acme", SessionId: id, RequestId: "rq" + id, NumSegments: segsOut}},
		}
	}
	publish(life("ss_ch", "+41791234567", 2, 3)...)
	publish(life("ss_us", "+14155550100", 1, 1)...)
	publish(
		ev{subjects.WorkflowStepCompleted("acme"), &workflowv1.StepCompleted{TenantId: "acme", SessionId: "ss_ch", WorkflowId: "wf", Step: 2, Activity: "q", ActivityType: "queue_task", Branch: "queued", OccurredAt: timestamppb.New(start.Add(2 * time.Second)), Duration: durationpb.New(time.Second)}},
		ev{subjects.WorkflowStepCompleted("acme"), &workflowv1.StepCompleted{TenantId: "acme", SessionId: "ss_ch", WorkflowId: "wf", Step: 1, Activity: "hi", ActivityType: "message", ActivityLabel: "Greeting", Branch: "next", OccurredAt: timestamppb.New(start.Add(time.Second))}},
	)
	get := func(id string) *reportingv1.SessionRecord {
		t.Helper()
		r, err := c.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "acme", SessionId: id})
		if err != nil {
			return nil
		}
		return r.GetSession()
	}
	until(t, "the records have their segments and steps", func() bool {
		ch, us := get("ss_ch"), get("ss_us")
		return ch.GetSegmentsOut() == 3 && len(ch.GetSteps()) == 2 && us.GetSegmentsOut() == 1 && us.GetSegmentsIn() == 1 && ch.GetSegmentsIn() == 2
	})
	// 2 in at the "*" 0.0079, 3 out at Switzerland's 0.0654.
	ch := get("ss_ch")
	if ch.GetEstimatedCost() != "0.212" || ch.GetCurrency() != "USD" || ch.GetCustomerCountry() != "CH" {
		t.Errorf("Swiss session: cost %q %q, country %q; want 0.212 USD, CH", ch.GetEstimatedCost(), ch.GetCurrency(), ch.GetCustomerCountry())
	}
	if us := get("ss_us"); us.GetEstimatedCost() != "0.0158" || us.GetCustomerCountry() != "US" {
		t.Errorf("US session: cost %q, country %q; want 0.0158, US", us.GetEstimatedCost(), us.GetCustomerCountry())
	}
	if s := ch.GetSteps(); s[0].GetStep() != 1 || s[0].GetLabel() != "Greeting" || s[0].GetTypeName() != "Message" || s[1].GetActivityType() != "queue_task" || s[1].GetBranch() != "queued" {
		t.Errorf("steps %v", s)
	}

	// ListSessions' rows carry what GetSession says.
	list, err := c.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: "acme"})
	if err != nil || len(list.GetSessions()) != 2 {
		t.Fatalf("ListSessions = %v, %v; want the two sessions", list, err)
	}
	for _, r := range list.GetSessions() {
		want := get(r.GetSessionId())
		if r.GetSegmentsIn() != want.GetSegmentsIn() || r.GetSegmentsOut() != want.GetSegmentsOut() || r.GetEstimatedCost() != want.GetEstimatedCost() ||
			r.GetCurrency() != "USD" || r.GetCustomerCountry() != want.GetCustomerCountry() {
			t.Errorf("listed %s: segments %d/%d, cost %q %q; GetSession says %d/%d, %q %q", r.GetSessionId(), r.GetSegmentsIn(), r.GetSegmentsOut(),
				r.GetEstimatedCost(), r.GetCurrency(), want.GetSegmentsIn(), want.GetSegmentsOut(), want.GetEstimatedCost(), want.GetCurrency())
		}
	}
	// So do the exports' rows, in CSV and NDJSON.
	export := func(f reportingv1.ExportFormat) string {
		t.Helper()
		stream, err := c.ExportSessions(ctx, &reportingv1.ExportSessionsRequest{TenantId: "acme", From: timestamppb.New(day), To: timestamppb.New(day.Add(24 * time.Hour)), Format: f})
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		for {
			chunk, err := stream.Recv()
			if err != nil {
				break
			}
			data = append(data, chunk.GetData()...)
		}
		return string(data)
	}
	csvRows, err := csv.NewReader(strings.NewReader(export(reportingv1.ExportFormat_EXPORT_FORMAT_CSV))).ReadAll()
	if err != nil || len(csvRows) != 3 {
		t.Fatalf("CSV export: %v, %v", csvRows, err)
	}
	byName := func(row []string) map[string]string {
		m := map[string]string{}
		for i, col := range csvRows[0] {
			m[col] = row[i]
		}
		return m
	}
	gotCSV := map[string]map[string]string{}
	for _, row := range csvRows[1:] {
		r := byName(row)
		gotCSV[r["session_id"]] = r
	}
	if r := gotCSV["ss_ch"]; r["segments_in"] != "2" || r["segments_out"] != "3" || r["estimated_cost"] != "0.212" || r["currency"] != "USD" || r["customer_country"] != "CH" {
		t.Errorf("CSV row of ss_ch: %v", r)
	}
	if r := gotCSV["ss_us"]; r["segments_in"] != "1" || r["segments_out"] != "1" || r["estimated_cost"] != "0.0158" {
		t.Errorf("CSV row of ss_us: %v", r)
	}
	for _, line := range strings.Split(strings.TrimSpace(export(reportingv1.ExportFormat_EXPORT_FORMAT_NDJSON)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("NDJSON line %q: %v", line, err)
		}
		if r["session_id"] == "ss_ch" && (r["segments_in"] != 2.0 || r["segments_out"] != 3.0 || r["estimated_cost"] != "0.212" || r["currency"] != "USD") {
			t.Errorf("NDJSON row of ss_ch: %v", r)
		}
	}

	for _, id := range []string{"ss_ch", "ss_us"} {
		publish(ev{subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: id, Outcome: sessionv1.Outcome_OUTCOME_HANDLED, EndedAt: timestamppb.New(start.Add(time.Minute))}})
	}
	var row *reportingv1.SummaryRow
	until(t, "both sessions rolled up", func() bool {
		res, err := c.Summarize(ctx, &reportingv1.SummarizeRequest{TenantId: "acme", From: timestamppb.New(day), To: timestamppb.New(day.Add(24 * time.Hour))})
		if err != nil || len(res.GetRows()) != 1 {
			return false
		}
		row = res.GetRows()[0]
		return row.GetSessions() == 2
	})
	if row.GetSegmentsIn() != 3 || row.GetSegmentsOut() != 4 || row.GetEstimatedCost() != "0.2278" || row.GetCurrency() != "USD" {
		t.Errorf("summary: segments %d in, %d out, cost %q %q; want 3, 4, 0.2278 USD", row.GetSegmentsIn(), row.GetSegmentsOut(), row.GetEstimatedCost(), row.GetCurrency())
	}
}

// withConfig runs config with the tenant, and reporting reaching it as a
// service; it returns the bus, an analyst's reporting client for the
// tenant and a platform operator's tenant client.
func withConfig(t *testing.T, tenant *configv1.Tenant) (*bus.Bus, reportingv1.ReportingServiceClient, configv1.TenantServiceClient) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	keyHex := strings.Repeat("a7", 32)
	keys, err := authn.ParseKeys(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	b, mc, dbName := infra(t)
	run := func(name string, f func(context.Context) error) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- f(rctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	clis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	run("config", func(ctx context.Context) error {
		return configsvc.Run(ctx, configsvc.Config{MongoDatabase: dbName + "_config", SecretKeys: strings.Repeat("5e", 32), BcryptCost: 4},
			configsvc.Deps{Listener: clis, Bus: b, Mongo: mc, AuthKeys: keys}, log)
	})
	tenants := configv1.NewTenantServiceClient(dial(t, clis.Addr().String(), keys, authn.Claims{Roles: []string{authn.RolePlatform}, RegisteredClaims: jwt.RegisteredClaims{Subject: "op"}}))
	until(t, "config creates the tenant", func() bool {
		_, err := tenants.CreateTenant(ctx, &configv1.CreateTenantRequest{Tenant: tenant})
		return err == nil
	})
	cc, err := grpcserver.Dial(clis.Addr().String(), keys, reporting.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cfg := reporting.Defaults()
	cfg.Database, cfg.AuthKeys, cfg.RollupDelay, cfg.ConfigAddr = dbName, keyHex, 0, ""
	rlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	run("reporting", func(ctx context.Context) error {
		return reporting.Run(ctx, cfg, reporting.Deps{GRPCListener: rlis, Bus: b, Mongo: mc, AuthKeys: keys, ConfigConn: cc}, log)
	})
	c := reportingv1.NewReportingServiceClient(dial(t, rlis.Addr().String(), keys, authn.Claims{Tenant: tenant.GetId(), Roles: []string{authn.RoleAnalyst}, RegisteredClaims: jwt.RegisteredClaims{Subject: "ana"}}))
	for _, stream := range []string{subjects.StreamSession, subjects.StreamWorkflow} {
		until(t, "reporting creates the "+stream+" stream", func() bool { _, err := b.JS.Stream(ctx, stream); return err == nil })
	}
	return b, c, tenants
}
