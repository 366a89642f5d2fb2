package sessions_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"
	sessionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/session/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
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

	// The SESSION stream refuses every new event (a full stream that
	// discards new ones stands for its leader being gone): SM2's first
	// delivery appends it to the transcript, fails to announce it, and is
	// redelivered.
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
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM2", "+15550001", "where is my order"), "SM2")
	waitFor(t, "SM2 in the transcript", func() bool { return inTranscript(t, h, sid, "SM2") })
	time.Sleep(500 * time.Millisecond) // at least one refused announcement
	if addedFor(t, h, "SM2") {
		t.Fatal("SM2 was announced while the SESSION stream refused events")
	}
	if _, err := h.bus.JS.UpdateStream(ctx, orig); err != nil {
		t.Fatal(err)
	}

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
