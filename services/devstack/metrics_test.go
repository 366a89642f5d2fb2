package devstack_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

func scrape(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", url, res.StatusCode, err)
	}
	return string(b)
}

// MetricNames are what docs/operate.md and deploy/ (alerts, dashboard)
// refer to; each must be on the endpoint after a conversation.
var MetricNames = []string{
	"switchboard_webhook_requests_total",
	"switchboard_webhook_duration_seconds_bucket",
	"switchboard_bus_publish_duration_seconds_bucket",
	"switchboard_bus_consumer_messages_total",
	"switchboard_bus_consumer_redeliveries_total",
	"switchboard_bus_consumer_dead_letters_total",
	"switchboard_bus_consumer_pending",
	"switchboard_bus_consumer_ack_pending",
	"switchboard_workflow_steps_total",
	"switchboard_workflow_failures_total",
	"switchboard_distribution_queue_waiting",
	"switchboard_distribution_queue_longest_wait_seconds",
	"switchboard_distribution_offers_total",
	"switchboard_distribution_accepts_total",
	"switchboard_distribution_ronas_total",
	"switchboard_outbound_messages_total",
	"switchboard_outbound_twilio_calls_total",
	"switchboard_outbound_twilio_duration_seconds_bucket",
	"switchboard_sessions_websocket_connections",
	"switchboard_grpc_server_requests_total",
	"switchboard_grpc_server_duration_seconds_bucket",
}

// After a conversation (a RONA, an accept, a reply, a refused webhook, a
// message dead-lettered), every metric the docs name is on the one
// devstack endpoint, with bounded labels.
func TestMetricsAfterConversation(t *testing.T) {
	info := devstacktest.Start(t, devstacktest.Metrics(), func(c *devstack.Config) { c.DemoRONATimeout = 5 * time.Second })
	if info.MetricsURL == "" {
		t.Fatal("no metrics URL")
	}
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	bob := agent(t, ctx, info, "bob@demo.example")
	const customer = "+15551237701"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "metrics please"}); err != nil {
		t.Fatal(err)
	}
	// The first offer goes unanswered (RONA); bob goes available again
	// and takes the next one.
	first := waitOffer(t, ctx, bob, customer)
	if _, err := bob.WaitFor(ctx, "presence", func(f agentclient.Frame) bool {
		var p struct{ Rona bool }
		return f.Decode(&p) == nil && p.Rona
	}); err != nil {
		t.Fatalf("no RONA: %v", err)
	}
	if _, err := bob.Request(ctx, "presence.set", map[string]string{"presence": "available"}); err != nil {
		t.Fatal(err)
	}
	next, err := bob.WaitFor(ctx, "offer.created", func(f agentclient.Frame) bool {
		return f.Field("customer") == customer && f.Field("offer_id") != first.OfferID
	})
	if err != nil {
		t.Fatalf("no second offer after the RONA: %v", err)
	}
	if _, err := bob.Request(ctx, "offer.accept", map[string]string{"offer_id": next.Field("offer_id")}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	sessionID := next.Field("session_id")
	if _, err := bob.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == sessionID }); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Request(ctx, "message.send", map[string]string{"session_id": sessionID, "body": "on it", "client_msg_id": "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.WaitInboxMessage(ctx, customer, func(m simclient.OutboundMessage) bool { return m.Body == "on it" }); err != nil {
		t.Fatal(err)
	}
	// An unsigned webhook is refused and counted with its reason.
	res, err := http.Post(info.ChatHandlerURL+"/api/acs/chat-handler/tenants/demo/messaging/inbound", "application/x-www-form-urlencoded", strings.NewReader("To=%2B12025550100&From=%2B15550000000&Body=x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()

	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		body = scrape(t, ctx, info.MetricsURL)
		var missing []string
		for _, name := range MetricNames {
			if !strings.Contains(body, "\n"+name) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("missing from /metrics: %v", missing)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, want := range []string{
		`switchboard_webhook_requests_total{endpoint="inbound",reason="unauthenticated",result="rejected"}`,
		`switchboard_webhook_requests_total{endpoint="conversations",reason="none",result="accepted"}`,
		`switchboard_bus_consumer_messages_total{consumer="sessions-inbound",outcome="ack"}`,
		`switchboard_outbound_messages_total{code="0",outcome="sent",reason="none"}`,
		`code="OK",method="/switchboard.distribution.v1.DistributionService/`,
		`switchboard_distribution_queue_waiting{service="support",tenant="demo"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, "+1555") || strings.Contains(line, "+1202") {
			t.Errorf("a phone number in a label: %s", line)
		}
	}
}

// A test can start only the services it needs: config and sessions here,
// nothing listening for the others.
func TestOnlySomeServices(t *testing.T) {
	info := devstacktest.Start(t, devstacktest.Only("config", "sessions"))
	if got := strings.Join(info.Services, ","); got != "config,sessions" {
		t.Errorf("Services = %s", got)
	}
	ctx := timeout(t)
	if _, err := agentclient.Login(ctx, info.ConsoleURL, "demo", "alice@demo.example", "demo"); err != nil {
		t.Fatalf("login through sessions and config: %v", err)
	}
	c := &http.Client{Timeout: time.Second}
	if res, err := c.Get(info.TwilioSimURL + "/sim/health"); err == nil {
		_ = res.Body.Close()
		t.Errorf("twilio-sim answers at %s though it was not asked for", info.TwilioSimURL)
	}
}

func TestParseServices(t *testing.T) {
	got, err := devstack.ParseServices(" chat-handler, sessions ,chat-handler")
	if err != nil || strings.Join(got, ",") != "chat-handler,sessions" {
		t.Errorf("ParseServices = %v, %v", got, err)
	}
	if got, err := devstack.ParseServices("all"); err != nil || got != nil {
		t.Errorf("ParseServices(all) = %v, %v; want every service", got, err)
	}
	_, err = devstack.ParseServices("sessions,chathandler")
	if err == nil || !strings.Contains(err.Error(), `"chathandler"`) || !strings.Contains(err.Error(), "chat-handler, distribution") {
		t.Errorf("ParseServices(unknown) = %v, want the unknown name and the known ones", err)
	}
}
