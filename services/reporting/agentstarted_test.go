package reporting_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"
	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/reporting"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/records"
	"github.com/switchboard-cc/switchboard/services/reporting/internal/rollup"
)

// A session an agent started (SessionStarted with started_by_agent_id: a
// WhatsApp template, distribution queuing and accepting its task at once
// without an offer) is recorded with that agent and counted apart: next
// to a customer-started session, Summarize's sessions, outcomes, queued,
// answered, wait, service level, first reply and time in workflow are the
// customer's session's alone; messages and handle time count both; the
// rollups' StartedByAgent counter has the agent's session.
func TestAgentStartedSessionCountedApart(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	keyHex := strings.Repeat("a7", 32)
	keys, err := authn.ParseKeys(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	b, mc, dbName := infra(t)
	cfg := reporting.Defaults()
	cfg.Database, cfg.AuthKeys, cfg.RollupDelay, cfg.ConfigAddr = dbName, keyHex, 0, "" // every tenant in UTC
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- reporting.Run(rctx, cfg, reporting.Deps{GRPCListener: lis, Bus: b, Mongo: mc, AuthKeys: keys}, log)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	c := reportingv1.NewReportingServiceClient(dial(t, lis.Addr().String(), keys, authn.Claims{Tenant: "acme", Roles: []string{authn.RoleAnalyst}, RegisteredClaims: jwt.RegisteredClaims{Subject: "ana"}}))
	for _, s := range []string{subjects.StreamSession, subjects.StreamDistribution} {
		until(t, "reporting creates the "+s+" stream", func() bool { _, err := b.JS.Stream(ctx, s); return err == nil })
	}
	st, err := records.New(ctx, mc.Database(dbName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)

	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	cust, agent := day.Add(10*time.Hour), day.Add(11*time.Hour)
	ts := func(base time.Time, d time.Duration) *timestamppb.Timestamp { return timestamppb.New(base.Add(d)) }
	wa := func(n string) *messagingv1.ConversationRef {
		return &messagingv1.ConversationRef{Channel: messagingv1.Channel_CHANNEL_WHATSAPP, CustomerAddress: "whatsapp:+4179123456" + n, BusinessAddress: "whatsapp:+41445550100"}
	}
	const in, out = sessionv1.Direction_DIRECTION_INBOUND, sessionv1.Direction_DIRECTION_OUTBOUND
	const byCustomer, byAgent = sessionv1.SenderKind_SENDER_KIND_CUSTOMER, sessionv1.SenderKind_SENDER_KIND_AGENT
	for _, e := range []struct {
		subject string
		msg     proto.Message
	}{
		// The customer writes in, waits 20 s in the queue, alice accepts
		// the offer and answers 15 s later.
		{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: "ss_cust", ServiceId: "sales", EntryId: "wa",
			Conversation: wa("1"), FirstMessageSid: "SMc1", StartedAt: ts(cust, 0)}},
		{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: "ss_cust", MessageId: "SMc1", Direction: in, Sender: byCustomer, OccurredAt: ts(cust, 0)}},
		{subjects.TaskQueued("acme"), &distributionv1.TaskQueued{TenantId: "acme", TaskId: "tk_cust", SessionId: "ss_cust", ServiceId: "sales", QueuedAt: ts(cust, 5*time.Second)}},
		{subjects.TaskOffered("acme"), &distributionv1.TaskOffered{TenantId: "acme", TaskId: "tk_cust", SessionId: "ss_cust", ServiceId: "sales", AgentId: "alice", OfferId: "of1"}},
		{subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk_cust", SessionId: "ss_cust", ServiceId: "sales", AgentId: "alice", OfferId: "of1", AcceptedAt: ts(cust, 25*time.Second)}},
		{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: "ss_cust", MessageId: "rqc1", Direction: out, Sender: byAgent, AgentId: "alice", OccurredAt: ts(cust, 40*time.Second)}},
		// alice starts a conversation with a template: her task is queued
		// and accepted at once (no offer); the customer answers later.
		{subjects.SessionStarted("acme"), &sessionv1.SessionStarted{TenantId: "acme", SessionId: "ss_agent", ServiceId: "sales", EntryId: "wa",
			Conversation: wa("2"), StartedAt: ts(agent, 0), StartedByAgentId: "alice"}},
		{subjects.TaskQueued("acme"), &distributionv1.TaskQueued{TenantId: "acme", TaskId: "tk_agent", SessionId: "ss_agent", ServiceId: "sales", QueuedAt: ts(agent, 0)}},
		{subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk_agent", SessionId: "ss_agent", ServiceId: "sales", AgentId: "alice", AcceptedAt: ts(agent, 0)}},
		{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: "ss_agent", MessageId: "rqa1", Direction: out, Sender: byAgent, AgentId: "alice", OccurredAt: ts(agent, time.Second)}},
		{subjects.SessionMessageAdded("acme"), &sessionv1.MessageAdded{TenantId: "acme", SessionId: "ss_agent", MessageId: "SMa1", Direction: in, Sender: byCustomer, OccurredAt: ts(agent, 2*time.Minute)}},
	} {
		if _, err := b.Publish(ctx, e.subject, e.msg); err != nil {
			t.Fatal(err)
		}
	}
	raw := func(id string) *records.Doc {
		d, _ := st.Raw(ctx, "acme", id)
		return d
	}
	until(t, "both records have all their events", func() bool {
		cd, ad := raw("ss_cust"), raw("ss_agent")
		return cd != nil && ad != nil && !cd.FirstReplyAt.IsZero() && len(cd.Offers) == 1 && !cd.StartedAt.IsZero() &&
			ad.Messages().In == 1 && ad.Messages().Out == 1 && !ad.AcceptedAt.IsZero() && !ad.StartedAt.IsZero()
	})
	if cd, ad := raw("ss_cust"), raw("ss_agent"); cd.StartedByAgentID != "" || ad.StartedByAgentID != "alice" {
		t.Errorf("started by agent: customer's session %q, agent's %q; want \"\" and alice", cd.StartedByAgentID, ad.StartedByAgentID)
	}
	// GetSession shows the agent's session as it happened, and who
	// started it.
	rec, err := c.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "acme", SessionId: "ss_agent"})
	if err != nil || rec.GetSession().GetAgentId() != "alice" || rec.GetSession().GetOffers() != 0 || rec.GetSession().GetInboundMessages() != 1 ||
		rec.GetSession().GetStartedByAgentId() != "alice" {
		t.Errorf("GetSession(ss_agent) = %v, %v; want alice's, no offer, one inbound message", rec, err)
	}

	for id, end := range map[string]time.Time{"ss_cust": cust.Add(5 * time.Minute), "ss_agent": agent.Add(10 * time.Minute)} {
		if _, err := b.Publish(ctx, subjects.SessionEnded("acme"), &sessionv1.SessionEnded{TenantId: "acme", SessionId: id, Outcome: sessionv1.Outcome_OUTCOME_HANDLED,
			AgentId: "alice", ServiceId: "sales", EndedAt: timestamppb.New(end), Messages: &sessionv1.MessageCounts{Inbound: 1, Outbound: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	until(t, "both sessions rolled up", func() bool {
		cd, ad := raw("ss_cust"), raw("ss_agent")
		return cd.RolledUp != 0 && ad.RolledUp != 0
	})

	res, err := c.Summarize(ctx, &reportingv1.SummarizeRequest{TenantId: "acme", From: timestamppb.New(day), To: timestamppb.New(day.Add(24 * time.Hour))})
	if err != nil || len(res.GetRows()) != 1 {
		t.Fatalf("Summarize = %v, %v; want one row", res, err)
	}
	row := res.GetRows()[0]
	type figures struct {
		Sessions, Handled, Abandoned, Queued, Answered, AbandonedInQueue, Offers, In, Out int64
		Wait, FirstReply, Workflow, Handle                                                int64
		ServiceLevel                                                                      float64
	}
	got := figures{row.GetSessions(), row.GetHandled(), row.GetAbandoned(), row.GetQueued(), row.GetAnswered(), row.GetAbandonedInQueue(),
		row.GetOffers(), row.GetInboundMessages(), row.GetOutboundMessages(),
		row.GetWait().GetCount(), row.GetFirstReply().GetCount(), row.GetWorkflow().GetCount(), row.GetHandle().GetCount(), row.GetServiceLevel()}
	want := figures{Sessions: 1, Handled: 1, Queued: 1, Answered: 1, Offers: 1, In: 2, Out: 2, Wait: 1, FirstReply: 1, Workflow: 1, Handle: 2, ServiceLevel: 1}
	if got != want {
		t.Errorf("summary\n got  %+v\n want %+v (the agent-started session only in messages and handle time)", got, want)
	}
	if n := row.GetStartedByAgent(); n != 1 {
		t.Errorf("summary: %d sessions started by agents, want 1", n)
	}
	if w := row.GetWait().GetAverage().AsDuration(); w != 20*time.Second {
		t.Errorf("average wait %s, want the customer's 20s", w)
	}

	// And in the rollups themselves.
	groups, _, err := rollup.New(mc.Database(dbName), nil).Summarize(ctx, rollup.Query{Tenant: "acme", From: day, To: day.Add(24 * time.Hour)})
	if err != nil || len(groups) != 1 {
		t.Fatalf("rollup summary = %v, %v; want one group", groups, err)
	}
	if g := groups[0]; g.C[rollup.StartedByAgent] != 1 || g.C[rollup.Sessions] != 1 || g.Outcomes[sessionv1.Outcome_OUTCOME_HANDLED] != 1 {
		t.Errorf("rollups: %d started by agents, %d sessions, %d handled; want 1, 1, 1", g.C[rollup.StartedByAgent], g.C[rollup.Sessions], g.Outcomes[sessionv1.Outcome_OUTCOME_HANDLED])
	}
}
