package sessions_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"google.golang.org/protobuf/types/known/timestamppb"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/sessions/agentclient"
)

// Frames other replicas push while this replica's NATS connection is down
// are gone (core NATS keeps nothing for an absent subscriber): once the
// connection is back, every agent socket here is sent its whole state
// again, so the console shows what it missed.
func TestAgentSocketsResyncWhenTheBrokerConnectionComesBack(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	if _, err := alice.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-rs", "+15550123", "still there?"), "SM-rs")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-rs", SessionId: sid, AgentId: "alice", OfferId: "of-rs", AcceptedAt: timestamppb.Now()}, "a-rs")
	if _, err := alice.WaitFor(ctx, "session.assigned", nil); err != nil {
		t.Fatal(err)
	}
	from := alice.Len()
	if err := h.bus.NC.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	snap, err := alice.WaitFrom(ctx, from, "snapshot", nil)
	if err != nil {
		t.Fatalf("no snapshot after the broker connection came back: %v", err)
	}
	if !strings.Contains(string(snap.Data), sid) || !strings.Contains(string(snap.Data), "still there?") {
		t.Errorf("the snapshot after the reconnect lacks the chat and its message: %s", snap.Data)
	}
	// The socket keeps working: a reply is acknowledged.
	if _, err := alice.Request(ctx, "message.send", map[string]string{"session_id": sid, "body": "yes", "client_msg_id": "rs1"}); err != nil {
		t.Fatal(err)
	}
}

// An agent's end that fails part way (the session ended in the store, its
// SESSION event not published because JetStream refused it) is refused as
// unavailable, and still finished once JetStream takes events again:
// distribution frees the agent's capacity only on that event, and the
// agent's console is told the chat ended. A socket that connects meanwhile
// is not handed the chat as one still to answer.
func TestAnInterruptedEndIsFinished(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	if _, err := alice.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-ie", "+15550124", "are you there?"), "SM-ie")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-ie", SessionId: sid, AgentId: "alice", OfferId: "of-ie", AcceptedAt: timestamppb.Now()}, "a-ie")
	if _, err := alice.WaitFor(ctx, "session.assigned", nil); err != nil {
		t.Fatal(err)
	}

	// The SESSION stream stops taking the tenant's events.
	stream, err := h.bus.JS.Stream(ctx, subjects.StreamSession)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	paused := cfg
	paused.Subjects = []string{"paused.session.>"}
	if _, err := h.bus.JS.UpdateStream(ctx, paused); err != nil {
		t.Fatal(err)
	}
	_, err = alice.Request(ctx, "session.terminate", map[string]string{"session_id": sid})
	var perr *agentclient.ProtocolError
	if !errors.As(err, &perr) || perr.Code != "unavailable" {
		t.Fatalf("terminate while SESSION refuses events = %v, want unavailable", err)
	}
	bob := h.agent(t, "alice@acme.example")
	snap, err := bob.WaitFor(ctx, "snapshot", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(snap.Data), sid) {
		t.Errorf("a snapshot during the outage hands out the ended chat: %s", snap.Data)
	}

	if _, err := h.bus.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the interrupted end announced", func() bool {
		return len(h.streamEvents(t, subjects.StreamSession, subjects.SessionEnded("acme"))) == 1
	})
	if _, err := alice.WaitFor(ctx, "session.ended", func(f agentclient.Frame) bool { return f.Field("session_id") == sid }); err != nil {
		t.Fatalf("the agent was not told the chat ended: %v", err)
	}
	// Asked again, the end is announced once (the same event id).
	if _, err := alice.Request(ctx, "session.terminate", map[string]string{"session_id": sid}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.streamEvents(t, subjects.StreamSession, subjects.SessionEnded("acme"))); n != 1 {
		t.Errorf("%d session.ended events, want 1", n)
	}
}

// A frame this replica published just before its NATS connection dropped
// may be lost with the connection, for a socket another replica holds:
// once back, this replica asks for the agents it pushed to before the
// drop to be sent a snapshot, and a replica asked so sends one to the
// sockets it holds.
func TestAgentsPushedToBeforeADropAreResyncedWhereverTheirSocketIs(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	if _, err := alice.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}
	// Another replica's view of NATS.
	other, err := nats.Connect(h.bus.NC.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	asks, err := other.SubscribeSync(subjects.AgentPush("acme", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-rp", "+15550125", "hello?"), "SM-rp")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-rp", SessionId: sid, AgentId: "alice", OfferId: "of-rp", AcceptedAt: timestamppb.Now()}, "a-rp")
	if _, err := alice.WaitFor(ctx, "session.assigned", nil); err != nil {
		t.Fatal(err)
	}

	if err := h.bus.NC.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := asks.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no resync asked for alice after the drop: %v", err)
		}
		if m.Header.Get("Sb-Push-Resync") != "" {
			break
		}
	}

	// Asked by another replica, this one re-sends alice her state.
	from := alice.Len()
	ask := &nats.Msg{Subject: subjects.AgentPush("acme", "alice"), Header: nats.Header{}}
	ask.Header.Set("Sb-Push-Origin", "gw_other")
	ask.Header.Set("Sb-Push-Resync", "1")
	if err := other.PublishMsg(ask); err != nil {
		t.Fatal(err)
	}
	snap, err := alice.WaitFrom(ctx, from, "snapshot", nil)
	if err != nil {
		t.Fatalf("no snapshot when another replica asked: %v", err)
	}
	if !strings.Contains(string(snap.Data), "hello?") {
		t.Errorf("the snapshot lacks the chat's message: %s", snap.Data)
	}
}

// A chat that ended stays on the agent's desk until they dismiss it: a
// socket that connects after the end gets it in its snapshot, ended, with
// its outcome and every message (one the agent's previous socket missed,
// as when that socket's replica was cut off from the broker while the
// customer wrote and the chat ended). Dismissed, it is gone from the next
// snapshot; an active chat cannot be dismissed, nor another agent's.
func TestEndedChatsStayOnTheDeskUntilDismissed(t *testing.T) {
	h := start(t)
	ctx := ctxT(t)
	alice := h.agent(t, "alice@acme.example")
	if _, err := alice.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-dm1", "+15550125", "hello"), "SM-dm1")
	waitFor(t, "session started", func() bool { return len(sessionIDs(t, h)) == 1 })
	sid := sessionIDs(t, h)[0]
	h.publish(t, subjects.TaskAccepted("acme"), &distributionv1.TaskAccepted{TenantId: "acme", TaskId: "tk-dm", SessionId: sid, AgentId: "alice", OfferId: "of-dm", AcceptedAt: timestamppb.Now()}, "a-dm")
	if _, err := alice.WaitFor(ctx, "session.assigned", nil); err != nil {
		t.Fatal(err)
	}
	var perr *agentclient.ProtocolError
	if _, err := alice.Request(ctx, "session.dismiss", map[string]string{"session_id": sid}); !errors.As(err, &perr) || perr.Code != "conflict" {
		t.Errorf("dismissing an active chat = %v, want conflict", err)
	}
	// Alice's first socket goes; the customer writes and, from her other
	// socket, the chat ends.
	other := h.agent(t, "alice@acme.example")
	if _, err := other.WaitFor(ctx, "snapshot", nil); err != nil {
		t.Fatal(err)
	}
	alice.Close()
	h.publish(t, subjects.ChatMessageReceived("acme"), inbound("SM-dm2", "+15550125", "one last thing"), "SM-dm2")
	if _, err := other.WaitFor(ctx, "message.added", func(f agentclient.Frame) bool { return strings.Contains(string(f.Data), "one last thing") }); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Request(ctx, "session.terminate", map[string]string{"session_id": sid}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.WaitFor(ctx, "session.ended", nil); err != nil {
		t.Fatal(err)
	}
	other.Close()

	later := h.agent(t, "alice@acme.example")
	snap, err := later.WaitFor(ctx, "snapshot", nil)
	if err != nil {
		t.Fatal(err)
	}
	var desk struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			State     string `json:"state"`
			Outcome   string `json:"outcome"`
			Messages  []struct {
				Body string `json:"body"`
			} `json:"messages"`
		} `json:"sessions"`
	}
	if err := snap.Decode(&desk); err != nil {
		t.Fatal(err)
	}
	if len(desk.Sessions) != 1 || desk.Sessions[0].SessionID != sid || desk.Sessions[0].State != "ended" || desk.Sessions[0].Outcome != "handled" {
		t.Fatalf("snapshot after the end = %s, want the chat, ended, handled", snap.Data)
	}
	if ms := desk.Sessions[0].Messages; len(ms) != 2 || ms[1].Body != "one last thing" {
		t.Errorf("the ended chat's messages = %+v, want both of the customer's", ms)
	}
	bob := h.agent(t, "bob@acme.example")
	if _, err := bob.Request(ctx, "session.dismiss", map[string]string{"session_id": sid}); !errors.As(err, &perr) || perr.Code != "forbidden" {
		t.Errorf("bob dismissing alice's chat = %v, want forbidden", err)
	}
	if _, err := later.Request(ctx, "session.dismiss", map[string]string{"session_id": sid}); err != nil {
		t.Fatal(err)
	}
	last := h.agent(t, "alice@acme.example")
	snap, err = last.WaitFor(ctx, "snapshot", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(snap.Data), sid) {
		t.Errorf("a dismissed chat is still in the snapshot: %s", snap.Data)
	}
}
