package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	distributionv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/distribution/v1"

	"github.com/switchboard-cc/switchboard/pkg/authn"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

func TestResetAgentRonaWhoMay(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	svc := h.asService(t)
	if _, err := svc.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AVAILABLE}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		c     distributionv1.DistributionServiceClient
		agent string
		want  codes.Code
	}{
		{"alice for herself", h.withToken(t, h.token(t, h.keys, "acme", "alice", authn.RoleAgent)), "alice", codes.OK},
		{"bob for alice", h.withToken(t, h.token(t, h.keys, "acme", "bob", authn.RoleAgent)), "alice", codes.PermissionDenied},
		{"a supervisor", h.withToken(t, h.token(t, h.keys, "acme", "sue", authn.RoleSupervisor)), "alice", codes.OK},
		{"another tenant's supervisor", h.withToken(t, h.token(t, h.keys, "other", "sue", authn.RoleSupervisor)), "alice", codes.PermissionDenied},
		{"an agent distribution never saw", svc, "bob", codes.NotFound},
	} {
		_, err := tc.c.ResetAgentRona(ctx, &distributionv1.ResetAgentRonaRequest{TenantId: "acme", AgentId: tc.agent})
		if got := code(err); got != tc.want {
			t.Errorf("%s: ResetAgentRona = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// WatchQueues over gRPC: a snapshot at once, then one after each change;
// agents may not watch.
func TestWatchQueues(t *testing.T) {
	h := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agent := h.withToken(t, h.token(t, h.keys, "acme", "alice", authn.RoleAgent))
	st, err := agent.WatchQueues(ctx, &distributionv1.WatchQueuesRequest{TenantId: "acme"})
	if err == nil {
		_, err = st.Recv()
	}
	if code(err) != codes.PermissionDenied {
		t.Errorf("an agent watching: %v, want PermissionDenied", err)
	}
	sup := h.withToken(t, h.token(t, h.keys, "acme", "sue", authn.RoleSupervisor))
	if st, err := sup.WatchQueues(ctx, &distributionv1.WatchQueuesRequest{TenantId: "acme", ServiceIds: []string{"nope"}}); err == nil {
		if _, err := st.Recv(); code(err) != codes.NotFound {
			t.Errorf("watching an unknown service: %v, want NotFound", err)
		}
	}

	w, err := sup.WatchQueues(ctx, &distributionv1.WatchQueuesRequest{TenantId: "acme", ServiceIds: []string{"sales"}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.GetServices()) != 1 || first.GetServices()[0].GetWaiting() != 0 || len(first.GetAgents()) != 0 {
		t.Fatalf("first snapshot %v, want sales with nothing waiting and no agents", first)
	}
	// A task arrives: it waits.
	task := &engine.Task{ID: "tk_1", Tenant: "acme", SessionID: "ss_1", ServiceID: "sales", Service: wrapUpService, QueuedAt: time.Now()}
	if err := h.eng.Enqueue(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	next := func(what string, ok func(*distributionv1.WatchQueuesResponse) bool) *distributionv1.WatchQueuesResponse {
		t.Helper()
		for {
			m, err := w.Recv()
			if err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
			if ok(m) {
				return m
			}
		}
	}
	next("tk_1 waiting", func(m *distributionv1.WatchQueuesResponse) bool { return m.GetServices()[0].GetWaiting() == 1 })
	// Alice comes: the task is offered to her, and she shows up.
	if _, err := h.asService(t).SetAgentPresence(context.Background(), &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AVAILABLE}); err != nil {
		t.Fatal(err)
	}
	m := next("the offer", func(m *distributionv1.WatchQueuesResponse) bool { return m.GetServices()[0].GetOffered() == 1 })
	if len(m.GetAgents()) != 1 || m.GetAgents()[0].GetAgentId() != "alice" || len(m.GetAgents()[0].GetOffers()) != 1 {
		t.Errorf("agents after the offer: %v, want alice holding one offer", m.GetAgents())
	}
}
