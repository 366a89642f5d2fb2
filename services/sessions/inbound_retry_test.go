package sessions_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"
	workflowv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/workflow/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// A customer message whose first delivery stored it in the transcript and
// then failed (its session.message.added publish was refused, as when the
// SESSION stream's leader dies) is completed by the redelivery, and the
// agent who holds the session is shown it. The redelivery finds the message
// already in the transcript; it must still push the frame, which the
// failed delivery never did: found by the chaos harness (customer messages
// answered 200 that never reached the agent holding their session).
func TestInboundRedeliveryAfterPartialFailureReachesTheAgent(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice, sid := acceptedChat(t, h)

	// SM2's first delivery appends it to the transcript, fails to announce
	// it, and is redelivered.
	restore := freezeSession(t, h)
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM2", "+15550001", "where is my order"), "SM2")
	waitFor(t, "SM2 in the transcript", func() bool { return inTranscript(t, h, sid, "SM2") })
	time.Sleep(500 * time.Millisecond) // at least one refused announcement
	if addedFor(t, h, "SM2") {
		t.Fatal("SM2 was announced while the SESSION stream refused events")
	}
	restore()

	// The redelivery completes the message; then a marker from the same
	// conversation (handled after SM2, in its lane) shows the frames are in.
	waitFor(t, "SM2's message.added after the redelivery", func() bool { return addedFor(t, h, "SM2") })
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM3", "+15550001", "marker"), "SM3")
	if _, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), `"id":"SM3"`) }); err != nil {
		t.Fatal(err)
	}
	if n := alice.Count("message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), `"id":"SM2"`) }); n != 1 {
		t.Errorf("SM2 reached alice, who holds its session, %d times; want 1", n)
	}
}

// The same for a message to the customer (a workflow's, here): the
// redelivery of a request whose first delivery stored it and failed to
// announce it shows it to the agent.
func TestOutboundRedeliveryAfterPartialFailureReachesTheAgent(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice, sid := acceptedChat(t, h)

	restore := freezeSession(t, h)
	h.publish(t, subjects.OutboundRequested("acme"), &outboundv1.OutboundMessageRequested{
		TenantId: "acme", RequestId: sid + "-wf-1", SessionId: sid, Conversation: inbound("", "+15550001", "").GetConversation(),
		Body: "Your order ships tomorrow", Origin: outboundv1.Origin_ORIGIN_WORKFLOW, RequestedAt: timestamppb.Now(),
	}, sid+"-wf-1")
	waitFor(t, "the workflow's message in the transcript", func() bool { return inTranscript(t, h, sid, sid+"-wf-1") })
	time.Sleep(500 * time.Millisecond)
	restore()

	waitFor(t, "its message.added after the redelivery", func() bool { return addedFor(t, h, sid+"-wf-1") })
	if _, err := alice.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), `"id":"`+sid+`-wf-1"`) }); err != nil {
		t.Fatalf("the workflow's message never reached alice: %v", err)
	}
}

// acceptedChat opens a chat with customer +15550001 (message SM1) and has
// alice accept it; it returns her connection and the session id.
func acceptedChat(t *testing.T, h *harness) (*agentclient.Conn, string) {
	t.Helper()
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM1", "+15550001", "hello"), "SM1")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]
	h.publish(t, subjects.TaskOffered("acme"), &distributionv1.TaskOffered{TenantId: "acme", TaskId: "tk1", SessionId: sid, AgentId: "alice", OfferId: "of-" + sid, ServiceName: "Support", Conversation: inbound("", "+15550001", "").GetConversation()}, "o1")
	if _, err := alice.WaitFor(ctx, "offer.created", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Request(ctx, "offer.accept", map[string]string{"offer_id": "of-" + sid}); err != nil {
		t.Fatal(err)
	}
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk1", SessionId: sid, AgentId: "alice", OfferId: "of-" + sid, AcceptedAt: timestamppb.Now()}, "a1")
	if _, err := alice.WaitFor(ctx, "session.assigned", nil); err != nil {
		t.Fatal(err)
	}
	// Let whatever the assignment publishes settle before the stream is
	// frozen.
	waitFor(t, "SM1's message.added", func() bool { return addedFor(t, h, "SM1") })
	time.Sleep(300 * time.Millisecond)
	return alice, sid
}

// freezeSession has the SESSION stream refuse every new event (a full
// stream that discards new ones stands for its leader being gone) until
// the returned function restores it.
func freezeSession(t *testing.T, h *harness) (restore func()) {
	t.Helper()
	ctx := ctxT(t)
	stream, err := h.bus.JS.Stream(ctx, subjects.StreamSession)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orig := info.Config
	frozen := orig
	frozen.MaxMsgs, frozen.Discard = int64(info.State.Msgs), jetstream.DiscardNew
	if _, err := h.bus.JS.UpdateStream(ctx, frozen); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := h.bus.JS.UpdateStream(ctx, orig); err != nil {
			t.Fatal(err)
		}
	}
}

// addedFor reports whether SESSION holds a session.message.added for the
// message.
func addedFor(t *testing.T, h *harness, messageID string) bool {
	for _, m := range h.streamEvents(t, subjects.StreamSession, subjects.SessionMessageAdded("acme")) {
		var ev sessionv1.MessageAdded
		if proto.Unmarshal(m.Data, &ev) == nil && ev.GetMessageId() == messageID {
			return true
		}
	}
	return false
}

// inTranscript reports whether the session's transcript holds the message.
func inTranscript(t *testing.T, h *harness, session, messageID string) bool {
	t.Helper()
	s, err := h.bus.JS.Stream(context.Background(), subjects.StreamTranscript)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subjects.Transcript("acme", session))
	if err != nil {
		return false
	}
	return strings.Contains(string(m.Data), `"`+messageID+`"`)
}

// A session another replica ended, which this replica still remembers as
// the conversation's (and its watch of the state bucket may still show
// active: the watch lags while a NATS node is down): the customer's next
// message opens a new session rather than going into the ended chat,
// where no one would see it.
func TestAMessageAfterAnEndSeenLateOpensANewSession(t *testing.T) {
	h, db, first := startWithSession(t, "SM-late1", "+15550126")
	// What the other replica's end leaves: the record ended, the key gone.
	if _, err := db.Collection("sessions").UpdateOne(context.Background(),
		bson.M{"_id": store.SessionKey("acme", first)}, bson.M{"$set": bson.M{"state": store.StateEnded}}); err != nil {
		t.Fatal(err)
	}
	kv, err := h.bus.JS.KeyValue(context.Background(), subjects.BucketSessionStates)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(context.Background(), "acme."+first); err != nil {
		t.Fatal(err)
	}
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-late2", "+15550126", "second"), "SM-late2")
	wantInNextSession(t, h, first, "SM-late2")
}

// startWithSession starts sessions with a first customer message open a
// session, and returns the service's database and that session.
func startWithSession(t *testing.T, sid, customer string) (*harness, *mongo.Database, string) {
	t.Helper()
	var mc *mongo.Client
	var name string
	h := start(t, func(c *sessions.Config, d *sessions.Deps) { mc, name = d.Mongo, c.Database })
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound(sid, customer, "first"), sid)
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	return h, mc.Database(name), sessionIDs(t, h)[0]
}

// wantInNextSession waits for a second session holding the message, and
// checks the first, ended one does not.
func wantInNextSession(t *testing.T, h *harness, first, messageID string) {
	t.Helper()
	waitFor(t, "a new session", func() bool { return len(sessionIDs(t, h)) == 2 })
	second := sessionIDs(t, h)[1]
	waitFor(t, "the message in the new session", func() bool { return inTranscript(t, h, second, messageID) })
	if inTranscript(t, h, first, messageID) {
		t.Error("the message went into the ended session too")
	}
}

// A message claimed for a session that then ended before the message
// reached its transcript (its handling held up by an outage past the
// agent's end) goes to the conversation's next session, where someone sees
// it, not into the ended chat.
func TestAMessageHeldUpPastItsSessionsEndOpensTheNext(t *testing.T) {
	h, db, first := startWithSession(t, "SM-held1", "+15550127")
	// A first delivery of the next message claimed it for that session,
	// then failed; the session ends meanwhile.
	if _, err := db.Collection("inbound").InsertOne(context.Background(),
		bson.M{"_id": "acme/SM-held2", "session_id": first, "done": false, "at": time.Now()}); err != nil {
		t.Fatal(err)
	}
	h.publish(t, subjects.WorkflowEndRequested("acme"), &workflowv1.SessionEndRequested{TenantId: "acme", SessionId: first, Activity: "bye"}, "end-held")
	waitFor(t, "session ended", func() bool {
		return len(h.streamEvents(t, subjects.StreamSession, subjects.SessionEnded("acme"))) == 1
	})
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-held2", "+15550127", "second"), "SM-held2")
	wantInNextSession(t, h, first, "SM-held2")
	// A redelivery changes nothing.
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-held2", "+15550127", "second"), "SM-held2-again")
	time.Sleep(300 * time.Millisecond)
	if n := len(sessionIDs(t, h)); n != 2 {
		t.Errorf("%d sessions after a redelivery, want 2", n)
	}
}
