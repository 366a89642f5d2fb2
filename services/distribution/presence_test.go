package distribution_test

import (
	"context"
	"testing"
	"time"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/subjects"
)

// Stopping Run and starting it again gives the agent back as they were
// (presence, idle time, a running grace), from the KV bucket, and a queued
// task is offered to them without their console saying anything.
func TestPresenceSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.cfg.PresenceGrace = time.Hour
	c, stop := e.run(t)
	setAvailable(t, c)
	before, err := c.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	stop()

	c2, stop2 := e.run(t)
	var after *distributionv1.AgentState
	waitFor(t, "distribution to serve again", func() bool {
		res, err := c2.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
		after = res.GetState()
		return err == nil
	})
	if after.GetPresence() != distributionv1.Presence_PRESENCE_AVAILABLE || !after.GetIdleSince().AsTime().Equal(before.GetState().GetIdleSince().AsTime()) {
		t.Fatalf("alice after a restart: %v, want as before: %v", after, before.GetState())
	}
	e.publish(t, subjects.WorkflowTaskRequested("acme"), request("tk_1", "ss_1", "sales"), "req-1")
	offerOf(t, c2, "tk_1")

	// The sessions gateway says her last console closed: the grace runs,
	// and survives a restart too.
	res, err := c2.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_OFFLINE})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetState().GetGraceUntil() == nil {
		t.Fatalf("offline from the gateway: %v, want a grace", res.GetState())
	}
	stop2()
	c3, _ := e.run(t)
	waitFor(t, "the grace to be back", func() bool {
		res, err := c3.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
		return err == nil && res.GetState().GetGraceUntil() != nil && res.GetState().GetPresence() == distributionv1.Presence_PRESENCE_OFFLINE
	})
	// She is back within it: available, idle time as before she left.
	res, err = c3.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AVAILABLE})
	if err != nil {
		t.Fatal(err)
	}
	if st := res.GetState(); st.GetPresence() != distributionv1.Presence_PRESENCE_AVAILABLE || st.GetGraceUntil() != nil {
		t.Errorf("back within the grace: %v, want available", st)
	}
}
