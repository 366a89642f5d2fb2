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

// Park and resume over the API: the same callers as TransferTask, and
// wrong states refused without a change.
func TestParkOverTheAPI(t *testing.T) {
	h := start(t)
	svc := h.asService(t)
	ctx := context.Background()
	if _, err := svc.SetAgentPresence(ctx, &distributionv1.SetAgentPresenceRequest{TenantId: "acme", AgentId: "alice", Presence: distributionv1.Presence_PRESENCE_AVAILABLE}); err != nil {
		t.Fatal(err)
	}
	sales := engine.ServiceInfo{ID: "sales", Name: "Sales", RONATimeout: time.Hour, MaxParallelTasks: 1}
	if err := h.eng.Enqueue(ctx, &engine.Task{ID: "t1", Tenant: "acme", SessionID: "ss_t1", ServiceID: "sales", Service: sales}); err != nil {
		t.Fatal(err)
	}
	st, err := svc.GetAgentState(ctx, &distributionv1.GetAgentStateRequest{TenantId: "acme", AgentId: "alice"})
	if err != nil || len(st.GetState().GetOffers()) != 1 {
		t.Fatalf("alice's state = %v, %v; want one offer", st, err)
	}
	alice := h.withToken(t, h.token(t, h.keys, "acme", "alice", authn.RoleAgent))
	bob := h.withToken(t, h.token(t, h.keys, "acme", "bob", authn.RoleAgent))
	sup := h.withToken(t, h.token(t, h.keys, "acme", "sue", authn.RoleSupervisor))

	if _, err := alice.ParkTask(ctx, &distributionv1.ParkTaskRequest{TenantId: "acme", TaskId: "t1"}); code(err) != codes.FailedPrecondition {
		t.Errorf("parking an offered task: code %v (%v), want FailedPrecondition", code(err), err)
	}
	if _, err := svc.AcceptTask(ctx, &distributionv1.AcceptTaskRequest{TenantId: "acme", AgentId: "alice", OfferId: st.GetState().GetOffers()[0].GetOfferId()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		client distributionv1.DistributionServiceClient
		req    *distributionv1.ParkTaskRequest
		want   codes.Code
	}{
		{"another agent's task", bob, &distributionv1.ParkTaskRequest{TenantId: "acme", TaskId: "t1"}, codes.PermissionDenied},
		{"for another agent", bob, &distributionv1.ParkTaskRequest{TenantId: "acme", TaskId: "t1", AgentId: "alice"}, codes.PermissionDenied},
		{"another tenant", alice, &distributionv1.ParkTaskRequest{TenantId: "globex", TaskId: "t1"}, codes.PermissionDenied},
		{"no task", alice, &distributionv1.ParkTaskRequest{TenantId: "acme"}, codes.InvalidArgument},
		{"unknown task", sup, &distributionv1.ParkTaskRequest{TenantId: "acme", TaskId: "t9"}, codes.NotFound},
	} {
		if _, err := c.client.ParkTask(ctx, c.req); code(err) != c.want {
			t.Errorf("%s: code %v (%v), want %v", c.name, code(err), err, c.want)
		}
	}
	if _, err := alice.ResumeTask(ctx, &distributionv1.ResumeTaskRequest{TenantId: "acme", TaskId: "t1"}); code(err) != codes.FailedPrecondition {
		t.Errorf("resuming an active task: code %v (%v), want FailedPrecondition", code(err), err)
	}

	res, err := alice.ParkTask(ctx, &distributionv1.ParkTaskRequest{TenantId: "acme", TaskId: "t1"})
	if err != nil || res.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_PARKED {
		t.Fatalf("ParkTask = %v, %v; want parked", res, err)
	}
	// A supervisor resumes it for alice.
	r2, err := sup.ResumeTask(ctx, &distributionv1.ResumeTaskRequest{TenantId: "acme", TaskId: "t1"})
	if err != nil || r2.GetTask().GetState() != distributionv1.TaskState_TASK_STATE_ACCEPTED || r2.GetTask().GetAgentId() != "alice" {
		t.Fatalf("ResumeTask = %v, %v; want accepted by alice", r2, err)
	}
}
