package devstack_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/config/tenantspec"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// outcomesTenant has one service per way a session can end, each on its
// own number, and agents for the services that need one. The opening
// hours of "closed", the Web Request's URL and the numbers are filled in
// by the test.
const outcomesTenant = `
tenant:
  id: outcomes
  display_name: Outcome Paths
  modalities: {instant_messaging: true, twilio: true, sms: true, whatsapp: true}
organization_units: [{id: root, name: Outcome Paths}]
connectors:
  - {id: twilio, name: Twilio, org_unit: root, account_sid: AC0000000000000000000000000000c0de, api_key_sid: SK0000000000000000000000000000c0de,
     api_key_secret: outcomesSecret0123456789abcdefAB, auth_token: 0000000000000000000000000000c0de}
workflows:
  - id: queue
    name: Queue at once
    definition:
      start: accept
      activities:
        - {id: accept, type: accept, next: {next: queue}}
        - {id: queue, type: queue_task}
  - id: ask
    name: Ask, then queue
    definition:
      start: accept
      activities:
        - {id: accept, type: accept, next: {next: order}}
        - {id: order, type: collect_information, params: {prompt: "What is your order number?", parameter: order, timeout: 10m}, next: {next: queue, no_answer: bye}}
        - {id: queue, type: queue_task}
        - {id: bye, type: disconnect}
  - id: short-queue
    name: Queue for ten seconds
    definition:
      start: accept
      activities:
        - {id: accept, type: accept, next: {next: queue}}
        - {id: queue, type: queue_task, params: {timeout: 10s}, next: {timeout: sorry}}
        - {id: sorry, type: disconnect, params: {text: "No agent is free. Please write again later."}}
  - id: hours
    name: Opening hours
    definition:
      start: accept
      activities:
        - {id: accept, type: accept, next: {next: hours}}
        - {id: hours, type: check_opening_hours, next: {open: queue, closed: shut}}
        - {id: queue, type: queue_task}
        - {id: shut, type: disconnect, params: {text: "We are closed."}}
  - id: lookup
    name: Look the customer up
    definition:
      start: accept
      activities:
        - {id: accept, type: accept, next: {next: lookup}}
        - {id: lookup, type: web_request, params: {url: "http://filled-in-by-the-test/", timeout: 5s, error_parameter: lookup_error}, next: {success: queue, failure: fallback}}
        - {id: queue, type: queue_task}
        - {id: fallback, type: transfer, params: {service_id: bounce}}
  - id: bounce
    name: Send it back
    definition:
      start: back
      activities:
        - {id: back, type: transfer, params: {service_id: bounce}}
services:
  - {id: desk, name: Desk, org_unit: root, im: true, channels: [sms], workflow: queue}
  - {id: quiet, name: Quiet, org_unit: root, im: true, channels: [sms], workflow: ask, inactivity_timeout: 1m}
  - {id: lonely, name: Lonely, org_unit: root, im: true, channels: [sms], workflow: short-queue}
  - {id: closed, name: Closed, org_unit: root, im: true, channels: [sms], workflow: hours}
  - {id: broken, name: Broken, org_unit: root, im: true, channels: [sms], workflow: lookup}
  - {id: bounce, name: Bounce, org_unit: root, im: true, channels: [sms], workflow: bounce}
  - {id: first, name: First line, org_unit: root, im: true, channels: [sms], workflow: queue}
  - {id: second, name: Second line, org_unit: root, im: true, channels: [sms], workflow: queue}
  - {id: held, name: Held, org_unit: root, im: true, channels: [sms], workflow: queue}
users:
  - {id: ann, display_name: Ann, email: ann@outcomes.example, roles: [agent], im_license: true, services: [desk], password: outcomes-pass-2026}
  - {id: carl, display_name: Carl, email: carl@outcomes.example, roles: [agent], im_license: true, services: [first], password: outcomes-pass-2026}
  - {id: dora, display_name: Dora, email: dora@outcomes.example, roles: [agent], im_license: true, services: [second], password: outcomes-pass-2026}
  - {id: sam, display_name: Sam, email: sam@outcomes.example, roles: [supervisor], password: outcomes-pass-2026}
`

// staleTenant ends sessions after an hour without a message, the least
// stale_after config allows; the stack's sweep runs every second with a
// clock two hours ahead, so its sessions go stale at once while every
// other tenant's (24 hours) do not.
const staleTenant = `
tenant:
  id: outcomes-stale
  display_name: Outcome Paths (stale)
  modalities: {instant_messaging: true, twilio: true, sms: true, whatsapp: true}
  stale_after: 1h
organization_units: [{id: root, name: Stale}]
connectors:
  - {id: twilio, name: Twilio, org_unit: root, account_sid: AC0000000000000000000000000000dead, api_key_sid: SK0000000000000000000000000000dead,
     api_key_secret: staleSecret0123456789abcdefABCDE, auth_token: 0000000000000000000000000000dead}
workflows:
  - id: ask
    name: Ask
    definition:
      start: accept
      activities:
        - {id: accept, type: accept, next: {next: order}}
        - {id: order, type: collect_information, params: {prompt: "What is your order number?", parameter: order, timeout: 24h}, next: {next: bye, no_answer: bye}}
        - {id: bye, type: disconnect}
services:
  - {id: waiting, name: Waiting, org_unit: root, im: true, channels: [sms], workflow: ask}
`

const outcomesPassword = "outcomes-pass-2026"

// outcomeSpec parses one of the tenants above and gives each service an
// SMS entry of its own on the Programmable Messaging path, numbered from
// first.
func outcomeSpec(t *testing.T, yaml string, first int) (*tenantspec.Spec, map[string]string) {
	t.Helper()
	spec, err := tenantspec.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	numbers := map[string]string{}
	for i := range spec.Services {
		s := &spec.Services[i]
		n := fmt.Sprintf("+1202555%04d", first+i)
		spec.MessagingEntries = append(spec.MessagingEntries, tenantspec.Entry{
			ID: "sms-" + s.ID, Name: "SMS " + s.Name, OrgUnit: "root", Connector: "twilio", Channel: "sms", Path: "messaging",
			BusinessAddresses: []string{n},
		})
		s.MessagingEntries = []string{"sms-" + s.ID}
		numbers[s.ID] = n
	}
	return spec, numbers
}

// Every way a session ends, driven through the whole stack (the customer
// through the Twilio emulator, agents over the console's websocket), and
// the record reporting's GetSession then shows an analyst: its outcome
// and what that path is about (agents, durations, messages, the workflow's
// path). One stack serves every path, and every customer writes at
// once, so the waits overlap; the longest is the service's inactivity
// timeout (a minute, config's least).
func TestOutcomePaths(t *testing.T) {
	// The Web Request's endpoint, failing.
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database unavailable", http.StatusInternalServerError)
	}))
	t.Cleanup(crm.Close)
	info := devstacktest.Start(t, func(c *devstack.Config) {
		c.SeedDemo = false
		c.StaleSweepEvery = time.Second
		c.SessionsClock = func() time.Time { return time.Now().Add(2 * time.Hour) }
		c.WebAllowHosts = []string{"outcomes/127.0.0.1"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)

	spec, numbers := outcomeSpec(t, outcomesTenant, 201)
	today := time.Now().UTC()
	for i := range spec.Services {
		if s := &spec.Services[i]; s.ID == "closed" { // a holiday every day around now, no window: closed
			s.OpeningHours = &tenantspec.OpeningHours{TimeZone: "UTC", Holidays: []string{
				today.AddDate(0, 0, -1).Format(time.DateOnly), today.Format(time.DateOnly), today.AddDate(0, 0, 1).Format(time.DateOnly),
			}}
		}
	}
	for i := range spec.Workflows {
		for j := range spec.Workflows[i].Definition.Activities {
			if a := &spec.Workflows[i].Definition.Activities[j]; a.Type == "web_request" {
				a.Params["url"] = crm.URL + "/customers/${customer_address}"
			}
		}
	}
	applySpec(t, ctx, info, spec)
	stale, staleNumbers := outcomeSpec(t, staleTenant, 301)
	applySpec(t, ctx, info, stale)

	rep := analystClient(t, info, "outcomes")
	staleRep := analystClient(t, info, "outcomes-stale")
	sim := simclient.New(info.TwilioSimURL, nil)
	signIn := func(email string) *agentclient.Conn {
		return agentIn(t, ctx, info, "outcomes", email, outcomesPassword)
	}
	ann, carl, dora, sam := signIn("ann@outcomes.example"), signIn("carl@outcomes.example"), signIn("dora@outcomes.example"), signIn("sam@outcomes.example")
	// write sends the customer's message to a service's number.
	write := func(t *testing.T, customer, to, body string) {
		t.Helper()
		if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: to, Body: body}); err != nil {
			t.Fatalf("customer %s writes %q: %v", customer, body, err)
		}
	}
	// expect waits until the customer has got a message containing what.
	expect := func(t *testing.T, customer, what string) {
		t.Helper()
		if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return strings.Contains(m.Body, what) }); err != nil {
			t.Fatalf("customer %s never got %q: %v", customer, what, err)
		}
	}

	// Every customer writes first, so the paths that wait on timers (the
	// queue's ten seconds, the minute of inactivity, the stale sweep) wait
	// at once; the subtests then go on with each path and read its record.
	const (
		handledCustomer, quietCustomer, lonelyCustomer, closedCustomer = "+15557010001", "+15557010002", "+15557010003", "+15557010004"
		brokenCustomer, transferCustomer, staleCustomer, heldCustomer  = "+15557010005", "+15557010006", "+15557010007", "+15557010008"
	)
	write(t, quietCustomer, numbers["quiet"], "Hello")
	write(t, lonelyCustomer, numbers["lonely"], "Anyone there?")
	write(t, staleCustomer, staleNumbers["waiting"], "Hi")
	write(t, handledCustomer, numbers["desk"], "Where is my parcel?")
	write(t, closedCustomer, numbers["closed"], "Are you open?")
	write(t, brokenCustomer, numbers["broken"], "Status of my order?")
	write(t, transferCustomer, numbers["first"], "I need the second line")
	write(t, heldCustomer, numbers["held"], "Can someone help?")

	t.Run("handled", func(t *testing.T) {
		o := waitOffer(t, ctx, ann, handledCustomer)
		acceptOffer(t, ctx, ann, o)
		const reply = "It is on its way."
		if _, err := ann.Request(ctx, "message.send", map[string]string{"session_id": o.SessionID, "body": reply, "client_msg_id": "h1"}); err != nil {
			t.Fatalf("reply: %v", err)
		}
		expect(t, handledCustomer, reply)
		if _, err := ann.Request(ctx, "session.terminate", map[string]string{"session_id": o.SessionID}); err != nil {
			t.Fatalf("terminate: %v", err)
		}
		r := endedRecord(t, ctx, rep, "outcomes", o.SessionID)
		wantHandled(t, r, "desk", "desk", "ann", 1)
		if inWorkflow := between(r.GetStartedAt(), r.GetQueuedAt()); inWorkflow < 0 {
			t.Errorf("time in workflow (started %v → queued %v) = %v, want ≥ 0", r.GetStartedAt(), r.GetQueuedAt(), inWorkflow)
		}
		wantMessages(t, r, 1, 1, "the question, the reply")
		wantPath(t, r, "accept:next", "queue:")
	})

	t.Run("no agent in time", func(t *testing.T) {
		expect(t, lonelyCustomer, "No agent is free")
		r := endedRecord(t, ctx, rep, "outcomes", sessionOf(t, ctx, rep, "outcomes", "lonely"))
		wantOutcome(t, r, sessionv1.Outcome_OUTCOME_NO_AGENT, "no agent took the chat in time; disconnected by the workflow (sorry)")
		if r.GetQueuedAt() == nil || r.GetAcceptedAt() != nil || r.GetAgentId() != "" || r.GetOffers() != 0 {
			t.Errorf("queued %v accepted %v agent %q offers %d, want queued and never offered or accepted",
				r.GetQueuedAt(), r.GetAcceptedAt(), r.GetAgentId(), r.GetOffers())
		}
		if strings.Join(r.GetServices(), " ") != "lonely" || len(r.GetAgents()) != 0 {
			t.Errorf("services %q agents %q, want lonely and none", r.GetServices(), r.GetAgents())
		}
		if d := between(r.GetQueuedAt(), r.GetEndedAt()); d < 10*time.Second {
			t.Errorf("ended %v after it was queued, want at least the queue's timeout (10s)", d)
		}
		wantPath(t, r, "accept:next", "queue:timeout", "sorry:")
	})

	t.Run("out of hours", func(t *testing.T) {
		expect(t, closedCustomer, "We are closed.")
		r := endedRecord(t, ctx, rep, "outcomes", sessionOf(t, ctx, rep, "outcomes", "closed"))
		wantOutcome(t, r, sessionv1.Outcome_OUTCOME_OUT_OF_HOURS, "outside opening hours; disconnected by the workflow (shut)")
		wantNeverQueued(t, r)
		wantMessages(t, r, 1, 1, "the question, the goodbye")
		wantPath(t, r, "accept:next", "hours:closed", "shut:")
	})

	t.Run("failed", func(t *testing.T) {
		r := endedRecord(t, ctx, rep, "outcomes", sessionOf(t, ctx, rep, "outcomes", "broken"))
		// The Web Request's failure is a branch, never the session's:
		// the session fails where the workflow then cannot go on. Config
		// refuses a workflow naming a service that does not exist, so
		// what is left is a mistake only a run shows: a Transfer to a
		// service whose workflow transfers to itself without waiting.
		wantOutcome(t, r, sessionv1.Outcome_OUTCOME_FAILED, `workflow failed at back: the workflow ran 200 steps without waiting or ending`)
		wantNeverQueued(t, r)
		wantMessages(t, r, 1, 1, "the question; the failure message")
		wantPathStart(t, r, "accept:next", "lookup:failure", "fallback:", "back:", "back:")
	})

	t.Run("transferred", func(t *testing.T) {
		o := waitOffer(t, ctx, carl, transferCustomer)
		acceptOffer(t, ctx, carl, o)
		if _, err := carl.Request(ctx, "session.transfer", map[string]string{"session_id": o.SessionID, "to_service_id": "second"}); err != nil {
			t.Fatalf("transfer: %v", err)
		}
		o2 := waitOffer(t, ctx, dora, transferCustomer)
		if o2.SessionID != o.SessionID || o2.ServiceName != "Second line" {
			t.Fatalf("dora's offer %+v, want session %s in Second line", o2, o.SessionID)
		}
		acceptOffer(t, ctx, dora, o2)
		if _, err := dora.Request(ctx, "session.terminate", map[string]string{"session_id": o.SessionID}); err != nil {
			t.Fatalf("terminate: %v", err)
		}
		r := endedRecord(t, ctx, rep, "outcomes", o.SessionID)
		// Started in first, queued there, then in second; carl's, then
		// dora's, who ended it and is its agent.
		wantHandled(t, r, "first", "first second", "carl dora", 2)
		wantPath(t, r, "accept:next", "queue:")
	})

	t.Run("canceled", func(t *testing.T) {
		// No agent serves Held: the chat waits in its queue until a
		// supervisor ends it.
		id := sessionOf(t, ctx, rep, "outcomes", "held")
		for ctx.Err() == nil {
			res, err := rep.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "outcomes", SessionId: id})
			if err == nil && res.GetSession().GetQueuedAt() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := sam.Request(ctx, "supervisor.end", map[string]string{"session_id": id}); err != nil {
			t.Fatalf("supervisor ends the queued chat: %v", err)
		}
		r := endedRecord(t, ctx, rep, "outcomes", id)
		wantOutcome(t, r, sessionv1.Outcome_OUTCOME_CANCELED, "canceled by supervisor Sam")
		if r.GetQueuedAt() == nil || r.GetAcceptedAt() != nil || r.GetAgentId() != "" {
			t.Errorf("queued %v accepted %v agent %q, want queued and never accepted", r.GetQueuedAt(), r.GetAcceptedAt(), r.GetAgentId())
		}
		wantPath(t, r, "accept:next", "queue:")
	})

	t.Run("stale", func(t *testing.T) {
		expect(t, staleCustomer, "What is your order number?")
		r := endedRecord(t, ctx, staleRep, "outcomes-stale", sessionOf(t, ctx, staleRep, "outcomes-stale", "waiting"))
		wantOutcome(t, r, sessionv1.Outcome_OUTCOME_EXPIRED, "stale: no message for 1h0m0s")
		wantNeverQueued(t, r)
		wantPath(t, r, "accept:next", "order:")
	})

	t.Run("abandoned in workflow", func(t *testing.T) {
		expect(t, quietCustomer, "What is your order number?")
		// The customer never answers: a minute later (the service's
		// inactivity timeout) the workflow gives up on them.
		r := endedRecord(t, ctx, rep, "outcomes", sessionOf(t, ctx, rep, "outcomes", "quiet"))
		wantOutcome(t, r, sessionv1.Outcome_OUTCOME_ABANDONED, "the customer did not answer in time (waiting at order)")
		wantNeverQueued(t, r)
		if d := between(r.GetStartedAt(), r.GetEndedAt()); d < time.Minute {
			t.Errorf("ended %v after it started, want at least the inactivity timeout (1m)", d)
		}
		wantMessages(t, r, 1, 2, "hello; the question, the goodbye")
		wantPath(t, r, "accept:next", "order:")
	})

	// An analyst's summary by outcome tells every path apart.
	t.Run("summary by outcome", func(t *testing.T) {
		want := map[sessionv1.Outcome]int64{
			sessionv1.Outcome_OUTCOME_HANDLED: 2, sessionv1.Outcome_OUTCOME_NO_AGENT: 1, sessionv1.Outcome_OUTCOME_OUT_OF_HOURS: 1,
			sessionv1.Outcome_OUTCOME_FAILED: 1, sessionv1.Outcome_OUTCOME_CANCELED: 1, sessionv1.Outcome_OUTCOME_ABANDONED: 1,
		}
		var got map[sessionv1.Outcome]int64
		for ctx.Err() == nil {
			res, err := rep.Summarize(ctx, &reportingv1.SummarizeRequest{TenantId: "outcomes", GroupBy: []string{"outcome"},
				From: timestamppb.New(time.Now().Add(-24 * time.Hour)), To: timestamppb.New(time.Now().Add(24 * time.Hour))})
			if err != nil {
				t.Fatalf("summarize: %v", err)
			}
			got = map[sessionv1.Outcome]int64{}
			for _, r := range res.GetRows() {
				got[r.GetOutcome()] += r.GetSessions()
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("sessions by outcome = %v, want %v", got, want)
	})
}

// analystClient is reporting's client with an analyst's token for tenant.
func analystClient(t *testing.T, info devstack.Info, tenant string) reportingv1.ReportingServiceClient {
	t.Helper()
	tok, err := info.AuthKeys.Mint(authn.Claims{Tenant: tenant, Roles: []string{authn.RoleAnalyst}, Name: "analyst",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "analyst"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return reportingv1.NewReportingServiceClient(dialWith(t, info.ReportingAddr, tok))
}

// dialWith is a gRPC connection to addr that presents tok, closed when
// the test ends.
func dialWith(t *testing.T, addr, tok string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// sessionOf is the id of the one session of a service, once reporting
// lists it.
func sessionOf(t *testing.T, ctx context.Context, rep reportingv1.ReportingServiceClient, tenant, service string) string {
	t.Helper()
	for ctx.Err() == nil {
		res, err := rep.ListSessions(ctx, &reportingv1.ListSessionsRequest{TenantId: tenant, ServiceId: service})
		if err == nil && len(res.GetSessions()) > 0 {
			if n := len(res.GetSessions()); n != 1 {
				t.Fatalf("service %s has %d sessions, want 1", service, n)
			}
			return res.GetSessions()[0].GetSessionId()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no session of service %s listed", service)
	return ""
}

// endedRecord polls GetSession until the session has ended.
func endedRecord(t *testing.T, ctx context.Context, rep reportingv1.ReportingServiceClient, tenant, sessionID string) *reportingv1.SessionRecord {
	t.Helper()
	var last *reportingv1.SessionRecord
	for ctx.Err() == nil {
		res, err := rep.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: tenant, SessionId: sessionID})
		if err == nil {
			last = res.GetSession()
			if last.GetState() == reportingv1.SessionState_SESSION_STATE_ENDED {
				// The other streams' events may trail the end: give them
				// until the record stops changing between two reads.
				return settled(t, ctx, rep, last)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("session %s never ended; last record %v", sessionID, last)
	return nil
}

// settled reads the record again until two reads a second apart agree.
func settled(t *testing.T, ctx context.Context, rep reportingv1.ReportingServiceClient, r *reportingv1.SessionRecord) *reportingv1.SessionRecord {
	t.Helper()
	for ctx.Err() == nil {
		time.Sleep(time.Second)
		res, err := rep.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: r.GetTenantId(), SessionId: r.GetSessionId()})
		if err != nil {
			t.Fatal(err)
		}
		if res.GetSession().String() == r.String() {
			t.Logf("record: %v", r)
			return r
		}
		r = res.GetSession()
	}
	t.Fatal("the record kept changing")
	return nil
}

func wantOutcome(t *testing.T, r *reportingv1.SessionRecord, outcome sessionv1.Outcome, reason string) {
	t.Helper()
	if r.GetOutcome() != outcome || r.GetEndReason() != reason {
		t.Errorf("outcome %v reason %q, want %v %q", r.GetOutcome(), r.GetEndReason(), outcome, reason)
	}
	if r.GetStartedAt() == nil || r.GetEndedAt() == nil || !r.GetEndedAt().AsTime().After(r.GetStartedAt().AsTime()) {
		t.Errorf("started %v ended %v, want an end after the start", r.GetStartedAt(), r.GetEndedAt())
	}
}

// wantHandled checks a session agents accepted and ended: where it
// started, the services it was queued in and the agents who accepted it
// (space-separated, in order; the last is its agent), the offers made,
// and a wait and a handle time.
func wantHandled(t *testing.T, r *reportingv1.SessionRecord, service, services, agents string, offers int32) {
	t.Helper()
	wantOutcome(t, r, sessionv1.Outcome_OUTCOME_HANDLED, "terminated by agent")
	last := agents[strings.LastIndex(agents, " ")+1:]
	if r.GetServiceId() != service || strings.Join(r.GetServices(), " ") != services || strings.Join(r.GetAgents(), " ") != agents || r.GetAgentId() != last {
		t.Errorf("service %q services %q agents %q agent %q, want %q, %q, %q and %q",
			r.GetServiceId(), r.GetServices(), r.GetAgents(), r.GetAgentId(), service, services, agents, last)
	}
	if r.GetOffers() != offers {
		t.Errorf("offers %d, want %d", r.GetOffers(), offers)
	}
	if wait := between(r.GetQueuedAt(), r.GetAcceptedAt()); wait <= 0 {
		t.Errorf("wait (queued %v → accepted %v) = %v, want > 0", r.GetQueuedAt(), r.GetAcceptedAt(), wait)
	}
	if handle := between(r.GetAcceptedAt(), r.GetEndedAt()); handle <= 0 {
		t.Errorf("handle time (accepted %v → ended %v) = %v, want > 0", r.GetAcceptedAt(), r.GetEndedAt(), handle)
	}
}

// wantMessages checks the customer's messages and those sent to them.
func wantMessages(t *testing.T, r *reportingv1.SessionRecord, in, out int32, which string) {
	t.Helper()
	if r.GetInboundMessages() != in || r.GetOutboundMessages() != out {
		t.Errorf("messages in %d out %d, want %d and %d (%s)", r.GetInboundMessages(), r.GetOutboundMessages(), in, out, which)
	}
}

// wantNeverQueued checks that the session never left its workflow.
func wantNeverQueued(t *testing.T, r *reportingv1.SessionRecord) {
	t.Helper()
	if r.GetQueuedAt() != nil || r.GetAcceptedAt() != nil || r.GetAgentId() != "" || len(r.GetServices())+len(r.GetAgents()) != 0 {
		t.Errorf("queued %v accepted %v agent %q services %q agents %q, want none: it never left the workflow",
			r.GetQueuedAt(), r.GetAcceptedAt(), r.GetAgentId(), r.GetServices(), r.GetAgents())
	}
}

// wantPath checks the workflow's steps, each "activity:branch", in order.
func wantPath(t *testing.T, r *reportingv1.SessionRecord, want ...string) {
	t.Helper()
	var got []string
	for i, s := range r.GetSteps() {
		if s.GetStep() != int64(i+1) {
			t.Errorf("step %d numbered %d", i+1, s.GetStep())
		}
		got = append(got, s.GetActivityId()+":"+s.GetBranch())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("workflow path %q, want %q", got, want)
	}
}

// wantPathStart checks the first steps of r's workflow path.
func wantPathStart(t *testing.T, r *reportingv1.SessionRecord, want ...string) {
	t.Helper()
	var got []string
	for _, s := range r.GetSteps() {
		got = append(got, s.GetActivityId()+":"+s.GetBranch())
	}
	if len(got) < len(want) || strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
		t.Errorf("workflow path starts %q, want %q", got[:min(len(got), len(want)+2)], want)
	}
}

// between is the time from a to b (0 when either is unknown).
func between(a, b *timestamppb.Timestamp) time.Duration {
	if a == nil || b == nil {
		return 0
	}
	return b.AsTime().Sub(a.AsTime())
}
