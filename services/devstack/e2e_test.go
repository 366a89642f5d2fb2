package devstack_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	reportingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/reporting/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/pkg/mongodb/mongotest"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }

// stack boots the all-in-one stack on free ports for one test.
func stack(t *testing.T) devstack.Info { return devstacktest.Start(t) }

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func agent(t *testing.T, ctx context.Context, info devstack.Info, email string) *agentclient.Conn {
	t.Helper()
	return agentIn(t, ctx, info, "demo", email, "demo")
}

// agentIn signs a user of tenant in to the console and opens their
// websocket, once its snapshot has come.
func agentIn(t *testing.T, ctx context.Context, info devstack.Info, tenant, email, password string) *agentclient.Conn {
	t.Helper()
	tok, err := agentclient.Login(ctx, info.ConsoleURL, tenant, email, password)
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	c, err := agentclient.Dial(ctx, info.ConsoleURL, tok)
	if err != nil {
		t.Fatalf("dial as %s: %v", email, err)
	}
	t.Cleanup(c.Close)
	if _, err := c.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}
	return c
}

type offer struct {
	OfferID, SessionID, Customer, Channel, ServiceName string
	// frame is the offer.created frame itself.
	frame agentclient.Frame
}

func waitOffer(t *testing.T, ctx context.Context, c *agentclient.Conn, customer string) offer {
	t.Helper()
	f, err := c.WaitFor(ctx, "offer.created", func(f agentclient.Frame) bool { return f.Field("customer") == customer })
	if err != nil {
		t.Fatalf("no offer for %s: %v", customer, err)
	}
	return offer{OfferID: f.Field("offer_id"), SessionID: f.Field("session_id"), Customer: f.Field("customer"), Channel: f.Field("channel"), ServiceName: f.Field("service_name"), frame: f}
}

// acceptOffer accepts o for c and waits until the session is assigned.
func acceptOffer(t *testing.T, ctx context.Context, c *agentclient.Conn, o offer) agentclient.Frame {
	t.Helper()
	if _, err := c.Request(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	f, err := c.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID })
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type sessionView struct {
	SessionID string `json:"session_id"`
	Customer  string `json:"customer"`
	Messages  []struct {
		ID, Direction, Sender, Body string
	} `json:"messages"`
}

func reportingClient(t *testing.T, info devstack.Info) reportingv1.ReportingServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(info.ReportingAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(info.AdminToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return reportingv1.NewReportingServiceClient(conn)
}

// A customer texts, an agent is offered the task, accepts, sees the message,
// replies, and terminates; the customer gets exactly that reply and
// reporting shows the session handled. Once over SMS (Conversations path)
// and once over WhatsApp (Programmable Messaging path).
func TestConversationRoundTrip(t *testing.T) {
	info := stack(t)
	tests := []struct {
		name, customer, business, channel string
	}{
		{"sms via conversations", "+15551230001", devstack.DemoSMSNumber, "sms"},
		{"whatsapp via messaging", "whatsapp:+15551230002", "whatsapp:+12025550101", "whatsapp"},
	}
	sim := simclient.New(info.TwilioSimURL, nil)
	rep := reportingClient(t, info)
	alice := agent(t, timeout(t), info, "alice@demo.example")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := timeout(t)
			body := "Hello, my order has not arrived (" + tt.channel + ")"
			if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: tt.customer, To: tt.business, Body: body, ProfileName: "Ann"}); err != nil {
				t.Fatalf("customer send: %v", err)
			}
			o := waitOffer(t, ctx, alice, tt.customer)
			if o.Channel != tt.channel || o.ServiceName != "Customer Support" {
				t.Errorf("offer card = %+v, want channel %s and service Customer Support", o, tt.channel)
			}
			f := acceptOffer(t, ctx, alice, o)
			var sv sessionView
			if err := f.Decode(&sv); err != nil {
				t.Fatal(err)
			}
			var sawCustomer bool
			for _, m := range sv.Messages {
				if m.Sender == "customer" && m.Body == body {
					sawCustomer = true
				}
			}
			if !sawCustomer {
				t.Fatalf("assigned session transcript %+v lacks the customer's message %q", sv.Messages, body)
			}

			reply := "Sorry about that! Let me check your order (" + tt.channel + ")."
			if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": o.SessionID, "body": reply, "client_msg_id": "r1"}); err != nil {
				t.Fatalf("send reply: %v", err)
			}
			if _, err := sim.WaitInboxMessage(ctx, tt.customer, func(m simclient.OutboundMessage) bool { return m.Body == reply }); err != nil {
				t.Fatalf("reply never reached the customer: %v", err)
			}
			if _, err := alice.Request(ctx, "session.terminate", map[string]string{"session_id": o.SessionID}); err != nil {
				t.Fatalf("terminate: %v", err)
			}
			inbox, err := sim.Inbox(ctx, tt.customer)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, m := range inbox {
				if m.Body == reply {
					n++
				}
			}
			if n != 1 {
				t.Errorf("customer received the reply %d times, want 1 (inbox %+v)", n, inbox)
			}

			rec := waitRecord(t, ctx, rep, o.SessionID, func(r *reportingv1.SessionRecord) bool {
				return r.GetState() == reportingv1.SessionState_SESSION_STATE_ENDED
			})
			if rec.GetOutcome() != sessionv1.Outcome_OUTCOME_HANDLED || rec.GetAgentId() != "alice" {
				t.Errorf("session record outcome %v agent %q, want HANDLED by alice", rec.GetOutcome(), rec.GetAgentId())
			}
		})
	}
}

func waitRecord(t *testing.T, ctx context.Context, rep reportingv1.ReportingServiceClient, sessionID string, done func(*reportingv1.SessionRecord) bool) *reportingv1.SessionRecord {
	t.Helper()
	var last *reportingv1.SessionRecord
	for ctx.Err() == nil {
		res, err := rep.GetSession(ctx, &reportingv1.GetSessionRequest{TenantId: "demo", SessionId: sessionID})
		if err == nil {
			last = res.GetSession()
			if done(last) {
				return last
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("session %s record never reached the expected state; last %v", sessionID, last)
	return nil
}

// Twilio may deliver the same webhook more than once; the agent sees the
// message once.
func TestDuplicateWebhookReachesAgentOnce(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	bob := agent(t, ctx, info, "bob@demo.example")
	const customer = "+15551239999"
	first, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "first", Deliveries: 3})
	if err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, bob, customer)
	if _, err := bob.Request(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WaitFor(ctx, "session.assigned", nil); err != nil {
		t.Fatal(err)
	}
	second, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "second", Deliveries: 3})
	if err != nil {
		t.Fatal(err)
	}
	if second.Webhook.Attempts != 3 {
		t.Fatalf("emulator delivered the webhook %d times, want 3", second.Webhook.Attempts)
	}
	isSecond := func(f agentclient.Frame) bool {
		var d struct {
			Message struct{ ID string } `json:"message"`
		}
		_ = f.Decode(&d)
		return d.Message.ID == second.MessageSID
	}
	if _, err := bob.WaitFor(ctx, "message.added", isSecond); err != nil {
		t.Fatal(err)
	}
	// A marker message sent after the duplicates: once it arrives, any
	// duplicate of "second" would have arrived before it.
	marker, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "marker"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool {
		return strings.Contains(string(f.Data), marker.MessageSID)
	}); err != nil {
		t.Fatal(err)
	}
	if n := bob.Count("message.added", isSecond); n != 1 {
		t.Errorf("agent got message %s %d times, want 1", second.MessageSID, n)
	}
	// The first message, delivered three times before the session was
	// assigned, is in the transcript once.
	f, _ := bob.WaitFor(ctx, "session.assigned", nil)
	var sv sessionView
	_ = json.Unmarshal(f.Data, &sv)
	count := 0
	for _, m := range sv.Messages {
		if m.ID == first.MessageSID {
			count++
		}
	}
	if count != 1 {
		t.Errorf("transcript holds the first message %d times, want 1", count)
	}
}
