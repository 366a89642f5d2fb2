package devstack_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/grpcserver"
	"github.com/switchboard-cc/switchboard/services/devstack"
	"github.com/switchboard-cc/switchboard/services/devstack/devstacktest"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/twilio-sim/simclient"
)

// supportDistribution changes the demo's support service's distribution
// settings before any task has made distribution read them.
func supportDistribution(t *testing.T, ctx context.Context, info devstack.Info, change func(*configv1.DistributionSettings)) {
	t.Helper()
	conn, err := grpc.NewClient(info.ConfigAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcserver.BearerToken(info.AdminToken)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	services := configv1.NewServiceServiceClient(conn)
	got, err := services.GetService(ctx, &configv1.GetServiceRequest{TenantId: "demo", Id: "support"})
	if err != nil {
		t.Fatal(err)
	}
	svc := got.GetService()
	change(svc.Distribution)
	if _, err := services.UpdateService(ctx, &configv1.UpdateServiceRequest{Service: svc, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"distribution"}}}); err != nil {
		t.Fatal(err)
	}
}

func available(t *testing.T, ctx context.Context, c *agentclient.Conn) {
	t.Helper()
	if _, err := c.Request(ctx, "presence.set", map[string]string{"presence": "available"}); err != nil {
		t.Fatal(err)
	}
}

// acceptChat has the customer write and the agent accept the offer.
func acceptChat(t *testing.T, ctx context.Context, sim *simclient.Client, c *agentclient.Conn, customer, body string) offer {
	t.Helper()
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: body}); err != nil {
		t.Fatal(err)
	}
	o := waitOffer(t, ctx, c, customer)
	if _, err := c.Request(ctx, "offer.accept", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if _, err := c.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Fatal(err)
	}
	return o
}

// An agent parks a chat: replies are refused while it is parked, the
// customer's messages still arrive, a reconnecting console sees it parked,
// and (the service's parked chats not counting) a new chat is offered to
// the agent at capacity; resumed, replies go again.
func TestParkAndResume(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	supportDistribution(t, ctx, info, func(d *configv1.DistributionSettings) { d.MaxParallelTasks, d.ParkedCounts = 1, false })
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	available(t, ctx, alice)
	const first, second = "+15551230701", "+15551230702"
	o := acceptChat(t, ctx, sim, alice, first, "Where is my parcel?")

	if _, err := alice.Request(ctx, "session.resume", map[string]string{"session_id": o.SessionID}); !agentclient.IsCode(err, "conflict") {
		t.Errorf("resume of an active chat: %v, want conflict", err)
	}
	if _, err := alice.Request(ctx, "session.park", map[string]string{"session_id": "ss_not_hers"}); err == nil {
		t.Error("park of a chat not hers accepted")
	}
	if _, err := alice.Request(ctx, "session.park", map[string]string{"session_id": o.SessionID}); err != nil {
		t.Fatalf("park: %v", err)
	}
	if _, err := alice.WaitFor(ctx, "session.parked", func(f agentclient.Frame) bool {
		return f.Field("session_id") == o.SessionID && f.Field("by") == "alice"
	}); err != nil {
		t.Fatalf("no session.parked: %v", err)
	}
	if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": o.SessionID, "body": "one moment", "client_msg_id": "parked-1"}); !agentclient.IsCode(err, "conflict") {
		t.Errorf("send while parked: %v, want conflict", err)
	}
	// The customer's messages still reach the parked chat.
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: first, To: devstack.DemoSMSNumber, Body: "Hello?"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.WaitFor(ctx, "message.added", messageFrame("Hello?", "customer")); err != nil {
		t.Errorf("customer's message to the parked chat not shown: %v", err)
	}
	// At capacity 1 with the only chat parked (not counting), a new
	// chat is offered at once.
	second0 := acceptChat(t, ctx, sim, alice, second, "Second question")

	// A reconnecting console sees the parked chat as parked.
	again := agent(t, ctx, info, "alice@demo.example")
	var snap struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			Parked    bool   `json:"parked"`
		} `json:"sessions"`
	}
	for _, f := range again.Frames() {
		if f.Type == "snapshot" {
			if err := f.Decode(&snap); err != nil {
				t.Fatal(err)
			}
		}
	}
	parked := map[string]bool{}
	for _, s := range snap.Sessions {
		parked[s.SessionID] = s.Parked
	}
	if p, ok := parked[o.SessionID]; !ok || !p || parked[second0.SessionID] {
		t.Errorf("snapshot sessions = %+v, want %s parked and %s not", snap.Sessions, o.SessionID, second0.SessionID)
	}

	if _, err := alice.Request(ctx, "session.resume", map[string]string{"session_id": o.SessionID}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if _, err := again.WaitFor(ctx, "session.resumed", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Fatalf("no session.resumed on the other console: %v", err)
	}
	if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": o.SessionID, "body": "Back to you now", "client_msg_id": "resumed-1"}); err != nil {
		t.Errorf("send after resume: %v", err)
	}
}

// An offer nobody answers goes to the other agent, and the first is
// flagged (RONA); an offer declined goes to the other agent.
func TestRONAAndDeclineGoToTheOtherAgent(t *testing.T) {
	info := devstacktest.Start(t, func(c *devstack.Config) { c.DemoRONATimeout = 5 * time.Second })
	ctx := timeout(t)
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	bob := agent(t, ctx, info, "bob@demo.example")
	available(t, ctx, alice)
	available(t, ctx, bob)

	// Whoever is offered first lets it run out.
	const ronaCustomer = "+15551230801"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: ronaCustomer, To: devstack.DemoSMSNumber, Body: "Anyone there?"}); err != nil {
		t.Fatal(err)
	}
	first, other := whoIsOffered(t, ctx, ronaCustomer, alice, bob)
	if _, err := first.WaitFor(ctx, "offer.revoked", func(f agentclient.Frame) bool { return f.Field("reason") == "timed_out" }); err != nil {
		t.Fatalf("offer not revoked on RONA: %v", err)
	}
	if _, err := first.WaitFor(ctx, "presence", func(f agentclient.Frame) bool {
		var p struct {
			Rona bool `json:"rona"`
		}
		return f.Decode(&p) == nil && p.Rona
	}); err != nil {
		t.Fatalf("the agent who let the offer run out was not flagged (rona): %v", err)
	}
	ro := waitOffer(t, ctx, other, ronaCustomer)
	if _, err := other.Request(ctx, "offer.accept", map[string]string{"offer_id": ro.OfferID}); err != nil {
		t.Fatalf("accept after RONA: %v", err)
	}

	// The flagged agent is back (available clears the flag); a new chat's
	// first agent declines and the other is offered it.
	available(t, ctx, first)
	const declineCustomer = "+15551230802"
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: declineCustomer, To: devstack.DemoSMSNumber, Body: "Hello"}); err != nil {
		t.Fatal(err)
	}
	decliner, taker := whoIsOffered(t, ctx, declineCustomer, alice, bob)
	o := waitOffer(t, ctx, decliner, declineCustomer)
	if _, err := decliner.Request(ctx, "offer.decline", map[string]string{"offer_id": o.OfferID}); err != nil {
		t.Fatalf("decline: %v", err)
	}
	o2 := waitOffer(t, ctx, taker, declineCustomer)
	if o2.SessionID != o.SessionID {
		t.Errorf("declined chat offered as session %s, want %s", o2.SessionID, o.SessionID)
	}
}

// whoIsOffered waits for the customer's first offer to either agent and
// returns that agent, then the other.
func whoIsOffered(t *testing.T, ctx context.Context, customer string, a, b *agentclient.Conn) (*agentclient.Conn, *agentclient.Conn) {
	t.Helper()
	is := func(f agentclient.Frame) bool { return f.Field("customer") == customer }
	for ctx.Err() == nil {
		if a.Count("offer.created", is) > 0 {
			return a, b
		}
		if b.Count("offer.created", is) > 0 {
			return b, a
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no offer for %s", customer)
	return nil, nil
}

// A customer's next chat goes first to the agent who took their last one
// (the service's preferred_agent_within), though another agent has been
// idle longer.
func TestPreferredAgentEndToEnd(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	supportDistribution(t, ctx, info, func(d *configv1.DistributionSettings) {
		d.PreferredAgentWithin, d.PreferredAgentWait = durationpb.New(7*24*time.Hour), durationpb.New(30*time.Second)
	})
	sim := simclient.New(info.TwilioSimURL, nil)
	bob := agent(t, ctx, info, "bob@demo.example")
	available(t, ctx, bob)
	const customer = "+15551230901"
	o := acceptChat(t, ctx, sim, bob, customer, "First question")
	if _, err := bob.Request(ctx, "session.terminate", map[string]string{"session_id": o.SessionID}); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	if _, err := bob.WaitFor(ctx, "session.ended", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Fatal(err)
	}
	// alice becomes available; bob comes back after her, so she has been
	// idle longest.
	alice := agent(t, ctx, info, "alice@demo.example")
	available(t, ctx, alice)
	if _, err := bob.Request(ctx, "presence.set", map[string]string{"presence": "away"}); err != nil {
		t.Fatal(err)
	}
	available(t, ctx, bob)
	mark := bob.Len()
	if _, err := sim.SendMessage(ctx, simclient.CustomerMessage{From: customer, To: devstack.DemoSMSNumber, Body: "Me again"}); err != nil {
		t.Fatal(err)
	}
	again, err := bob.WaitFrom(ctx, mark, "offer.created", func(f agentclient.Frame) bool { return f.Field("customer") == customer })
	if err != nil {
		t.Fatalf("bob was not offered the returning customer's chat: %v", err)
	}
	if again.Field("session_id") == o.SessionID {
		t.Fatalf("offered the ended session %s again", o.SessionID)
	}
	if n := alice.Count("offer.created", func(f agentclient.Frame) bool { return f.Field("customer") == customer }); n != 0 {
		t.Errorf("alice was offered the returning customer's chat %d times, want none (bob is preferred)", n)
	}
}

// The service's first-reply time with requeue: an agent who accepts and
// does not reply loses the chat to the queue (their desk is told), and the
// other agent is offered it; one who replies in time keeps theirs.
func TestFirstReplyRequeueEndToEnd(t *testing.T) {
	info := stack(t)
	ctx := timeout(t)
	supportDistribution(t, ctx, info, func(d *configv1.DistributionSettings) {
		d.FirstReplyTimeout, d.FirstReplyRequeue = durationpb.New(2*time.Second), true
	})
	sim := simclient.New(info.TwilioSimURL, nil)
	alice := agent(t, ctx, info, "alice@demo.example")
	available(t, ctx, alice)
	const quiet = "+15551231001"
	o := acceptChat(t, ctx, sim, alice, quiet, "Hello, anyone?")
	bob := agent(t, ctx, info, "bob@demo.example")
	available(t, ctx, bob)
	if _, err := alice.WaitFor(ctx, "session.transferred", func(f agentclient.Frame) bool {
		return f.Field("session_id") == o.SessionID && f.Field("to_service_id") == "support"
	}); err != nil {
		t.Fatalf("alice kept the chat she did not answer: %v", err)
	}
	again := waitOffer(t, ctx, bob, quiet)
	if again.SessionID != o.SessionID {
		t.Errorf("bob offered session %s, want the requeued %s", again.SessionID, o.SessionID)
	}

	// bob takes it, answers at once and keeps it past the time.
	if _, err := bob.Request(ctx, "offer.accept", map[string]string{"offer_id": again.OfferID}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if _, err := bob.WaitFor(ctx, "session.assigned", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Request(ctx, "message.send", map[string]string{"session_id": o.SessionID, "body": "Hi, I am here", "client_msg_id": "fast-1"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // past the first-reply time: nothing may happen
	if n := bob.Count("session.transferred", func(f agentclient.Frame) bool { return f.Field("session_id") == o.SessionID }); n != 0 {
		t.Errorf("bob lost the chat he answered in time")
	}
}
